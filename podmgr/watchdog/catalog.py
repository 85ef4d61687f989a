"""`--refresh-catalog`: RunPod's GPU types with prices and stock, and a check of the config.

The table is also saved as `catalog.json` beside the state file (for people and scripts).
A GPU id in the config that RunPod does not list, or that is not offered in the config's
cloud type, or (with `interruptible`) that has no spot price there, is reported as a
problem (the command then exits 2).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from podmgr.config import Config
from podmgr.runpod_client import GpuType, RunPodClient

__all__ = ["HEADER", "check_choices", "format_row", "refresh_catalog", "spot_price"]

HEADER = (
    f"{'GPU type':<32} {'memory':>7} {'secure $/h':>10} {'community $/h':>13} "
    f"{'spot S/C $/h':>13}  available"
)


def _price(value: float | None) -> str:
    return f"{value:.2f}" if value else "-"


def spot_price(gpu: GpuType, cloud_type: str) -> float | None:
    """The spot price in that cloud (ALL: the cheaper of the two), None: no spot offer."""
    secure, community = gpu.secure_spot_price, gpu.community_spot_price
    if cloud_type == "SECURE":
        return secure
    if cloud_type == "COMMUNITY":
        return community
    prices = [p for p in (secure, community) if p]
    return min(prices) if prices else None


def format_row(gpu: GpuType, chosen: bool) -> str:
    mark = "*" if chosen else " "
    memory = f"{gpu.memory_gb:g}GB" if gpu.memory_gb else "-"
    spot = f"{_price(gpu.secure_spot_price)}/{_price(gpu.community_spot_price)}"
    return (
        f"{mark}{gpu.id[:31]:<31} {memory:>7} {_price(gpu.secure_price):>10} "
        f"{_price(gpu.community_price):>13} {spot:>13}  {gpu.stock_status or 'unknown'}"
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
        elif config.interruptible and not spot_price(gpu, config.cloud_type):
            problems.append(
                f"interruptible: {gpu_id} has no spot price in the {config.cloud_type} cloud; "
                "drop it from gpu_type_id or set interruptible false"
            )
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
