"""`--refresh-catalog`: RunPod's GPU types with prices and stock, and a check of the config.

The table is also saved as `catalog.json` beside the state file (for people and scripts).
A GPU id in the config that RunPod does not list, or that is not offered in the config's
cloud type, is reported as a problem (the command then exits 2).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from podmgr.config import Config
from podmgr.runpod_client import GpuType, RunPodClient

__all__ = ["check_choices", "format_row", "refresh_catalog"]


def _price(value: float | None) -> str:
    return f"{value:.2f}" if value else "-"


def format_row(gpu: GpuType, chosen: bool) -> str:
    mark = "*" if chosen else " "
    memory = f"{gpu.memory_gb:g}GB" if gpu.memory_gb else "-"
    return (
        f"{mark}{gpu.id[:31]:<31} {memory:>7} {_price(gpu.secure_price):>10} "
        f"{_price(gpu.community_price):>13}  {gpu.stock_status or 'unknown'}"
    )


def check_choices(config: Config, catalog: list[GpuType]) -> list[str]:
    """Problems with the config's GPU list against the catalog (empty: all good)."""
    known = {gpu.id: gpu for gpu in catalog}
    problems = []
    for gpu_id in config.gpu_type_ids:
        gpu = known.get(gpu_id)
        if gpu is None:
            problems.append(f"gpu_type_id {gpu_id!r} is not a RunPod GPU type")
        elif config.cloud_type == "SECURE" and gpu.secure_cloud is False:
            problems.append(f"{gpu_id} is not offered in the SECURE cloud")
        elif config.cloud_type == "COMMUNITY" and gpu.community_cloud is False:
            problems.append(f"{gpu_id} is not offered in the COMMUNITY cloud")
    return problems


def _save(path: Path, catalog: list[GpuType]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([dataclasses.asdict(g) for g in catalog], indent=2))
    os.replace(tmp, path)


def refresh_catalog(
    config: Config, client: RunPodClient | None = None
) -> tuple[list[str], list[str]]:
    """Table rows (chosen GPU types marked *) and problems with the config's choices."""
    client = client or RunPodClient(
        retry_initial_seconds=config.api_retry_initial_seconds,
        retry_max_seconds=config.api_retry_max_seconds,
    )
    catalog = client.gpu_catalog(config.gpu_count)
    _save(config.state_path.parent / "catalog.json", catalog)
    chosen = set(config.gpu_type_ids)
    ordered = sorted(catalog, key=lambda g: (g.id not in chosen, g.secure_price or 1e9))
    return [format_row(g, g.id in chosen) for g in ordered], check_choices(config, catalog)
