"""The check of a config's GPU choices against RunPod's catalog (`podmgr gpus`, which
replaced `--refresh-catalog`'s table: podmgr/cli/gpus.py).

A GPU id in the config that RunPod does not list, or that is not offered in the config's
cloud, is a problem (the command then exits 2); a type with no stock or no usable CUDA
version now is only noted: stock changes by the minute.
"""

from __future__ import annotations

from podmgr.config import PodSection
from podmgr.runpod.placement import clouds_of, cuda_usable
from podmgr.runpod.values import GpuType

__all__ = ["check_choices"]


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
