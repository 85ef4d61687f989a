"""Hourly pod prices for the replay: RunPod's catalog as `podmgr gpus` saved it, else
the simulator's catalog (podmgr/sim/catalog.py: plausible, not RunPod's current prices).

A pod's price is its GPU type's price in the config's cloud (ALL: the cheaper cloud) times
`gpu_count`, as RunPod bills (docs pods/pricing); spot uses the spot price of that cloud.
With several pods (config `pods`) each pod is priced on its own section (`prices_by_pod`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from podmgr.config import Config
from podmgr.whatif.replay import Prices

__all__ = ["prices_by_pod", "prices_for"]


def _cloud_price(row: dict[str, Any], cloud: str, spot: bool) -> float | None:
    secure = row.get("secure_spot_price" if spot else "secure_price")
    community = row.get("community_spot_price" if spot else "community_price")
    if cloud == "SECURE":
        return secure
    if cloud == "COMMUNITY":
        return community
    known = [p for p in (secure, community) if p is not None]
    return min(known) if known else None


def _simulator_rows() -> list[dict[str, Any]]:
    from podmgr.sim.catalog import GPU_TYPES, spot_price

    return [
        {
            "id": gpu.id,
            "secure_price": gpu.secure_price,
            "community_price": gpu.community_price,
            "secure_spot_price": spot_price(gpu, "SECURE"),
            "community_spot_price": spot_price(gpu, "COMMUNITY"),
        }
        for gpu in GPU_TYPES
    ]


def prices_for(config: Config, price_per_hour: float | None = None) -> Prices:
    """Prices of the config's GPU types; `price_per_hour` overrides (on-demand and spot)."""
    if price_per_hour is not None:
        table = {gpu: price_per_hour for gpu in config.pod.gpu_type_ids}
        return Prices(table, dict(table), "--price-per-hour")
    saved = config.state_path.parent / "catalog.json"
    rows, source = _rows(saved)
    on_demand: dict[str, float] = {}
    spot: dict[str, float] = {}
    for row in rows:
        price = _cloud_price(row, config.pod.cloud_type, spot=False)
        if price is not None:
            on_demand[row["id"]] = price * config.pod.gpu_count
        cheap = _cloud_price(row, config.pod.cloud_type, spot=True)
        if cheap is not None:
            spot[row["id"]] = cheap * config.pod.gpu_count
    return Prices(on_demand, spot, source)


def prices_by_pod(config: Config, price_per_hour: float | None = None) -> dict[str, Prices]:
    """Each configured pod's prices (config `pods`: its own GPU types, cloud and
    gpu_count; a one-pod config: the one entry "pod"). `price_per_hour` is every pod's."""
    from podmgr.watchdog.focus import pod_config

    return {name: prices_for(pod_config(config, name), price_per_hour) for name in config.pod_names}


def _rows(saved: Path) -> tuple[list[dict[str, Any]], str]:
    try:
        rows = json.loads(saved.read_text())
        if isinstance(rows, list) and rows:
            return rows, f"RunPod's catalog as `podmgr gpus` saved it ({saved})"
    except (OSError, ValueError):
        pass
    return _simulator_rows(), "the simulator's catalog (`podmgr gpus --refresh` for RunPod's)"
