"""Which GPU type id a person meant: the closest ids of RunPod's catalog to a name it lacks.

Issue 22: `"gpu_type_id": "RTX 4090"` (the display name, not the id) passed `config
validate` and cost minutes in `podmgr up`. RunPod's create takes the id ("NVIDIA GeForce
RTX 4090"; RunPod OpenAPI v2, CreateGpuConfig.id), so a name is matched against both the
ids and the display names of the catalog (difflib), and a name contained in either (as
text or word by word) ranks high. Pure: no I/O; `config validate`, `podmgr up` and a
pass's create use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher

from podmgr.runpod.values import GpuType

__all__ = ["closest_ids", "unknown_ids", "unknown_ids_message"]

# Below this similarity (difflib's ratio) an id is no suggestion.
CUTOFF = 0.5
# A name found inside an id or a display name ("4090" in "NVIDIA GeForce RTX 4090").
CONTAINED = 0.9


def _score(wanted: str, gpu: GpuType) -> float:
    best = 0.0
    for known in (gpu.id.casefold(), gpu.display_name.casefold()):
        if wanted == known:
            return 1.0
        if wanted in known or set(wanted.split()) <= set(known.split()):
            best = max(best, CONTAINED)
        best = max(best, SequenceMatcher(None, wanted, known).ratio())
    return best


def closest_ids(name: str, catalog: Iterable[GpuType], limit: int = 3) -> list[GpuType]:
    """Up to `limit` catalog entries closest to `name`, the closest first."""
    wanted = " ".join(name.casefold().split())
    scored = [(_score(wanted, gpu), gpu.id, gpu) for gpu in catalog]
    ranked = sorted((s for s in scored if s[0] >= CUTOFF), key=lambda s: (-s[0], s[1]))
    return [gpu for _score_, _id, gpu in ranked[:limit]]


def unknown_ids(gpu_type_ids: Sequence[str], catalog: Iterable[GpuType]) -> list[str]:
    """The configured ids the catalog does not list, in the config's order."""
    known = {gpu.id for gpu in catalog}
    return [gpu_id for gpu_id in gpu_type_ids if gpu_id not in known]


def unknown_ids_message(unknown: Sequence[str], catalog: Sequence[GpuType]) -> str:
    """What to tell a person about ids RunPod does not know, with the closest ids."""
    parts = []
    for gpu_id in unknown:
        near = closest_ids(gpu_id, catalog)
        hint = f"did you mean {near[0].id!r}?" if near else "`podmgr gpus` lists the ids"
        if len(near) > 1:
            hint += " (also close: " + ", ".join(repr(g.id) for g in near[1:]) + ")"
        parts.append(f"{gpu_id!r} is not a RunPod GPU type id (the id, not the name): {hint}")
    return "; ".join(parts)
