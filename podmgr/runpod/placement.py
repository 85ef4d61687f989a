"""Which (GPU type, cloud) candidates a create tries, in which order: a pure decision.

REST v2 places one GPU type per create and "does not search for capacity, and it does not
fall back to a different GPU" (RunPod OpenAPI v2, CreateGpuConfig/createPod; RunPod's
migration notes: "server-side GPU fallback disappears"). So podmgr reads
`GET /catalog/gpus?include=AVAILABILITY&product=POD` first ("read-then-create ... orders
candidates; it is not a reservation", createPod) and tries the configured GPU types in the
user's order, each in Secure Cloud then Community Cloud for `cloud_type: ALL`, skipping:

  - a type the catalog does not list (a typo, or a display name instead of the id);
  - a type not offered in that cloud (GpuType.secure / .community false);
  - stock NONE (GpuType.availability);
  - no CUDA version with free machines at or above the floor, or in the exact set
    (GpuType.cudaVersions; "Treat a missing cudaVersions the same as an empty one").

Without a catalog (its read failed) every configured pair is tried: a create must not
wait on the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

from podmgr.cuda import cuda_key
from podmgr.runpod.values import GpuType

__all__ = ["Candidate", "Placement", "clouds_of", "place"]


@dataclass(frozen=True)
class Candidate:
    """One create to try: a GPU type in a cloud, with its list price per GPU when known."""

    gpu_type_id: str
    cloud: str
    price: float | None = None


@dataclass(frozen=True)
class Placement:
    """The candidates in order, and why each configured pair left out was skipped."""

    candidates: tuple[Candidate, ...]
    skipped: tuple[str, ...] = ()


def clouds_of(cloud_type: str) -> tuple[str, ...]:
    """The clouds a create may use: ALL is Secure first, then Community (v2's create takes
    SECURE or COMMUNITY: CreatePodRequest.cloud)."""
    return ("SECURE", "COMMUNITY") if cloud_type == "ALL" else (cloud_type,)


def place(
    gpu_type_ids: list[str] | tuple[str, ...],
    cloud_type: str,
    catalog: list[GpuType] | None,
    *,
    min_cuda: str | None = None,
    exact_cuda: tuple[str, ...] = (),
) -> Placement:
    """The candidates for these GPU types (the user's order) in these clouds."""
    known = {gpu.id: gpu for gpu in catalog} if catalog is not None else None
    chosen: list[Candidate] = []
    skipped: list[str] = []
    for gpu_id in gpu_type_ids:
        for cloud in clouds_of(cloud_type):
            gpu = known.get(gpu_id) if known is not None else None
            why = None if known is None else _why_not(gpu_id, gpu, cloud, min_cuda, exact_cuda)
            if why is not None:
                skipped.append(f"{gpu_id} ({cloud}): {why}")
                continue
            chosen.append(Candidate(gpu_id, cloud, gpu.price(cloud) if gpu else None))
    return Placement(tuple(chosen), tuple(skipped))


def _why_not(
    gpu_id: str, gpu: GpuType | None, cloud: str, min_cuda: str | None, exact: tuple[str, ...]
) -> str | None:
    if gpu is None:
        return "not a GPU type id in RunPod's catalog (the id, not the display name)"
    if gpu.offered(cloud) is False:
        return f"not offered in the {cloud} cloud"
    if gpu.stock(cloud) == "NONE":
        return "stock NONE in RunPod's catalog"
    usable = cuda_usable(gpu.cuda_available(cloud), min_cuda, exact)
    if not usable:
        wanted = f"one of {', '.join(exact)}" if exact else f"{min_cuda or 'any'} or newer"
        return f"no machine with free capacity on CUDA {wanted}"
    return None


def cuda_usable(
    available: tuple[str, ...], min_cuda: str | None, exact: tuple[str, ...]
) -> tuple[str, ...]:
    """The available CUDA versions the pod may land on (exact set, or at/above the floor)."""
    if exact:
        return tuple(v for v in available if v in exact)
    if min_cuda:
        return tuple(v for v in available if cuda_key(v) >= cuda_key(min_cuda))
    return available
