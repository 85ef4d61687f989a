"""`--refresh-catalog`: RunPod's GPU types with prices, VRAM, stock and CUDA, and a check.

Read from REST v2 alone (`GET /catalog/gpus?include=AVAILABILITY&product=POD`, once per
cloud: podmgr/runpod/client.py `gpu_catalog`), scoped by the config's CUDA floor. The table
is also saved as `catalog.json` beside the state file (for people, scripts and the
what-if's prices). A GPU id in the config that RunPod does not list, or that is not
offered in the config's cloud, is a problem (the command then exits 2); a type with no
stock or no usable CUDA version now is only noted: stock changes by the minute.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from podmgr.config import Config, PodSection
from podmgr.runpod.client import GpuType, RunPodClient
from podmgr.runpod.placement import clouds_of, cuda_usable

__all__ = ["HEADER", "check_choices", "format_row", "refresh_catalog"]

HEADER = (
    f"{'GPU type':<32} {'VRAM':>5} {'secure $/h':>10} {'community $/h':>13} "
    f"{'stock S/C':>13}  CUDA with free machines (S | C)"
)


def _price(value: float | None) -> str:
    return f"{value:.2f}" if value else "-"


def format_row(gpu: GpuType, chosen: bool) -> str:
    mark = "*" if chosen else " "
    memory = f"{gpu.memory_gb:g}GB" if gpu.memory_gb else "-"
    stock = f"{gpu.secure_stock or '-'}/{gpu.community_stock or '-'}"
    cuda = f"{' '.join(gpu.secure_cuda) or '-'} | {' '.join(gpu.community_cuda) or '-'}"
    return (
        f"{mark}{gpu.id[:31]:<31} {memory:>5} {_price(gpu.secure_price):>10} "
        f"{_price(gpu.community_price):>13} {stock:>13}  {cuda}"
    )


def check_choices(pod: PodSection, catalog: list[GpuType]) -> tuple[list[str], list[str]]:
    """(problems, notes) of the config's GPU list against the catalog."""
    known = {gpu.id: gpu for gpu in catalog}
    by_name = {gpu.display_name: gpu.id for gpu in catalog}
    exact = tuple(pod.allowed_cuda_versions or ())
    floor = None if exact else pod.cuda_floor
    problems: list[str] = []
    notes: list[str] = []
    for gpu_id in pod.gpu_type_ids:
        gpu = known.get(gpu_id)
        if gpu is None:
            hint = f" (did you mean {by_name[gpu_id]!r}?)" if gpu_id in by_name else ""
            problems.append(f"gpu_type_id {gpu_id!r} is not a RunPod GPU type{hint}")
            continue
        clouds = clouds_of(pod.cloud_type)
        if not any(gpu.offered(cloud) is not False for cloud in clouds):
            problems.append(f"{gpu_id} is not offered in the {pod.cloud_type} cloud")
            continue
        for cloud in clouds:
            if gpu.stock(cloud) == "NONE":
                notes.append(f"{gpu_id} ({cloud}): stock NONE now; a create skips it")
            elif not cuda_usable(gpu.cuda_available(cloud), floor, exact):
                notes.append(
                    f"{gpu_id} ({cloud}): no free machine on CUDA {floor or exact} now; "
                    "a create skips it"
                )
    return problems, notes


def _save(path: Path, catalog: list[GpuType]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([dataclasses.asdict(g) for g in catalog], indent=2))
    os.replace(tmp, path)


def refresh_catalog(
    config: Config, client: RunPodClient | None = None
) -> tuple[list[str], list[str], list[str]]:
    """Table rows (chosen GPU types marked *), problems and notes about the config."""
    client = client or RunPodClient(
        retry_initial_seconds=config.watchdog.api_retry_initial_seconds,
        retry_max_seconds=config.watchdog.api_retry_max_seconds,
    )
    exact = config.pod.allowed_cuda_versions
    catalog = client.gpu_catalog(
        config.pod.gpu_count, min_cuda=None if exact else config.pod.cuda_floor
    )
    _save(config.state_path.parent / "catalog.json", catalog)
    chosen = set(config.pod.gpu_type_ids)
    ordered = sorted(catalog, key=lambda g: (g.id not in chosen, g.secure_price or 1e9))
    problems, notes = check_choices(config.pod, catalog)
    return [format_row(g, g.id in chosen) for g in ordered], problems, notes
