"""The check of a config's GPU choices against RunPod's catalog (`podmgr gpus`, which
replaced `--refresh-catalog`'s table: podmgr/cli/gpus.py; the catalog itself, cached as
`catalog.json` beside the state file, is read by podmgr/cli/prices.py).

A GPU id in the config that RunPod does not list, or that is not offered in the config's
cloud, is a problem (the command then exits 2, naming the closest ids); a type with no
stock or no usable CUDA version now is only noted: stock changes by the minute.
`saved_catalog` reads the cached table back, so `config validate` and `podmgr up` can
refuse a GPU id RunPod does not list (`check_gpu_ids`) before anything starts or bills.
"""

from __future__ import annotations

from podmgr.cli.prices import catalog_path, read_cached
from podmgr.config import Config, PodSection
from podmgr.errors import ConfigError
from podmgr.runpod.gpu_ids import unknown_ids, unknown_ids_message
from podmgr.runpod.placement import clouds_of, cuda_usable
from podmgr.runpod.values import GpuType

__all__ = [
    "catalog_path",
    "check_choices",
    "check_every_pod",
    "check_gpu_ids",
    "saved_catalog",
]


def check_choices(pod: PodSection, catalog: list[GpuType]) -> tuple[list[str], list[str]]:
    """(problems, notes) of the config's GPU list against the catalog."""
    known = {gpu.id: gpu for gpu in catalog}
    exact = tuple(pod.allowed_cuda_versions or ())
    floor = None if exact else pod.cuda_floor
    problems: list[str] = []
    notes: list[str] = []
    for gpu_id in pod.gpu_type_ids:
        gpu = known.get(gpu_id)
        if gpu is None:
            problems.append(f"gpu_type_id: {unknown_ids_message([gpu_id], catalog)}")
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


def check_gpu_ids(
    pod: PodSection, catalog: list[GpuType], source: str, field: str = "pod.gpu_type_id"
) -> None:
    """ConfigError (exit 2) naming `field` (the pod's gpu_type_id: `pods.1.gpu_type_id` for
    the second entry of `pods`) and the closest ids when the catalog read from `source`
    lacks any of the pod's GPU ids."""
    unknown = unknown_ids(pod.gpu_type_ids, catalog)
    if unknown:
        said = unknown_ids_message(unknown, catalog)
        raise ConfigError(f"{said} (RunPod's catalog: {source})", field=field)


def check_every_pod(config: Config, catalog: list[GpuType], source: str) -> None:
    """`check_gpu_ids` for each configured pod, in the file's order; the error names the
    entry (`pods.N.gpu_type_id`, its name in the message) when the file lists `pods`."""
    for index, entry in enumerate(config.pods):
        field = config.pod_field(index, "gpu_type_id")
        try:
            check_gpu_ids(entry, catalog, source, field)
        except ConfigError as error:
            if not config.lists_pods:
                raise
            said = error.message.removeprefix(f"{field}: ")
            raise ConfigError(f"pod {entry.name!r}: {said}", field=field) from None


def saved_catalog(config: Config) -> list[GpuType] | None:
    """The cached catalog, or None when there is none or it is unreadable."""
    return read_cached(catalog_path(config)) or None
