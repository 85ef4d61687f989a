"""`--refresh-catalog`: RunPod's GPU types with prices, VRAM, stock and CUDA, and a check.

`saved_catalog` reads the saved table back, so `config validate` and `podmgr up` can
refuse a GPU id RunPod does not list (`check_gpu_ids`, exit 2 with the closest ids) before
anything starts or bills (issue 22).

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
from typing import TYPE_CHECKING, Any

from podmgr.config import Config, PodSection
from podmgr.errors import ConfigError
from podmgr.runpod.gpu_ids import unknown_ids, unknown_ids_message
from podmgr.runpod.placement import clouds_of, cuda_usable
from podmgr.runpod.values import GpuType

if TYPE_CHECKING:
    from podmgr.runpod.client import RunPodClient

__all__ = [
    "HEADER",
    "catalog_path",
    "check_choices",
    "check_gpu_ids",
    "format_row",
    "refresh_catalog",
    "saved_catalog",
]

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


def check_gpu_ids(pod: PodSection, catalog: list[GpuType], source: str) -> None:
    """ConfigError (exit 2) naming pod.gpu_type_id and the closest ids when the catalog
    read from `source` lacks any of the config's GPU ids."""
    unknown = unknown_ids(pod.gpu_type_ids, catalog)
    if unknown:
        said = unknown_ids_message(unknown, catalog)
        raise ConfigError(f"{said} (RunPod's catalog: {source})", field="pod.gpu_type_id")


def catalog_path(config: Config) -> Path:
    """Where `--refresh-catalog` saves the catalog: beside the state file."""
    return config.state_path.parent / "catalog.json"


def saved_catalog(config: Config) -> list[GpuType] | None:
    """The catalog `--refresh-catalog` saved, or None when there is none or it is unreadable."""
    try:
        rows = json.loads(catalog_path(config).read_text())
        return [_gpu_type(row) for row in rows] or None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _gpu_type(row: dict[str, Any]) -> GpuType:
    cuda = {key: tuple(row.get(key) or ()) for key in ("secure_cuda", "community_cuda")}
    return GpuType(**(row | cuda))


def _save(path: Path, catalog: list[GpuType]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([dataclasses.asdict(g) for g in catalog], indent=2))
    os.replace(tmp, path)


def refresh_catalog(
    config: Config, client: RunPodClient | None = None
) -> tuple[list[str], list[str], list[str]]:
    """Table rows (chosen GPU types marked *), problems and notes about the config."""
    from podmgr.runpod.client import RunPodClient

    client = client or RunPodClient(
        retry_initial_seconds=config.watchdog.api_retry_initial_seconds,
        retry_max_seconds=config.watchdog.api_retry_max_seconds,
    )
    exact = config.pod.allowed_cuda_versions
    catalog = client.gpu_catalog(
        config.pod.gpu_count, min_cuda=None if exact else config.pod.cuda_floor
    )
    _save(catalog_path(config), catalog)
    chosen = set(config.pod.gpu_type_ids)
    ordered = sorted(catalog, key=lambda g: (g.id not in chosen, g.secure_price or 1e9))
    problems, notes = check_choices(config.pod, catalog)
    return [format_row(g, g.id in chosen) for g in ordered], problems, notes
