"""`podmgr gpus [--config P] [--refresh] [--json]`: RunPod's GPU types with their prices.

The catalog as its own command (SkyPilot has `sky show-gpus`, dstack `dstack offer`):
GPU id, display name, VRAM, $/h in the secure and the community cloud, stock now, and the
newest CUDA version with free machines, the config's choices marked `*` and listed first.
Prices come from podmgr/cli/prices.py: the cached `catalog.json`, or RunPod's catalog
read with `RUNPOD_API_KEY` (`--refresh` always reads it, and saves it;
`podmgr watchdog --refresh-catalog` is the same as `podmgr gpus --refresh`). The config's
GPU ids are checked against the catalog (podmgr/cli/catalog.py): an unknown id, or one
not offered in the config's cloud, is exit 2.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podmgr.config import Config
    from podmgr.runpod.values import GpuType

__all__ = ["register", "run_gpus", "show_catalog"]

HEADER = (
    f" {'GPU id':<31} {'name':<14} {'VRAM GiB':>8} {'secure $/h':>10} {'community $/h':>13}"
    f"  {'stock S/C':<13} max CUDA"
)


def register(subparsers: Any) -> None:
    gpus = subparsers.add_parser(
        "gpus", help="RunPod's GPU types: VRAM, $/h per cloud, stock, CUDA (yours marked *)"
    )
    gpus.add_argument("--config", help="path to pod_config.json")
    gpus.add_argument(
        "--refresh", action="store_true", help="read RunPod's catalog now (and cache it)"
    )
    gpus.add_argument("--json", action="store_true", help="print JSON")
    gpus.set_defaults(handler=run_gpus)


def _price(value: float | None) -> str:
    return f"{value:.2f}" if value else "-"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def max_cuda(gpu: GpuType) -> str | None:
    """The newest CUDA version with free machines in either cloud, if RunPod said."""
    versions = {*gpu.secure_cuda, *gpu.community_cuda}
    return max(versions, key=_version_key) if versions else None


def format_row(gpu: GpuType, chosen: bool) -> str:
    mark = "*" if chosen else " "
    memory = f"{gpu.memory_gb:g}" if gpu.memory_gb else "-"
    stock = f"{gpu.secure_stock or '-'}/{gpu.community_stock or '-'}"
    return (
        f"{mark}{gpu.id[:31]:<31} {gpu.display_name[:14]:<14} {memory:>8} "
        f"{_price(gpu.secure_price):>10} {_price(gpu.community_price):>13}  {stock:<13} "
        f"{max_cuda(gpu) or '-'}"
    )


def ordered(config: Config, gpus: list[GpuType]) -> list[GpuType]:
    """The config's choices first, in its order, then the rest by their cheapest price."""
    chosen = config.pod.gpu_type_ids

    def key(gpu: GpuType) -> tuple[int, float, str]:
        if gpu.id in chosen:
            return (0, chosen.index(gpu.id), gpu.id)
        prices = [p for p in (gpu.secure_price, gpu.community_price) if p]
        return (1, min(prices) if prices else 1e9, gpu.id)

    return sorted(gpus, key=key)


def _as_json(gpu: GpuType, chosen: bool) -> dict[str, Any]:
    return {
        "id": gpu.id,
        "name": gpu.display_name,
        "vram_gib": gpu.memory_gb,
        "secure_per_hour": gpu.secure_price or None,
        "community_per_hour": gpu.community_price or None,
        "secure_stock": gpu.secure_stock,
        "community_stock": gpu.community_stock,
        "max_cuda": max_cuda(gpu),
        "chosen": chosen,
    }


def show_catalog(config: Config, *, refresh: bool, as_json: bool) -> int:
    """Print the catalog and the check of the config's choices; 2 when a choice is wrong."""
    from podmgr.cli.catalog import check_choices
    from podmgr.cli.prices import load_catalog

    catalog = load_catalog(config, refresh=refresh)
    chosen = set(config.pod.gpu_type_ids)
    gpus = ordered(config, catalog.gpus)
    problems, notes = check_choices(config.pod, catalog.gpus)
    if as_json:
        print(
            json.dumps(
                {
                    "source": catalog.source,
                    "gpus": [_as_json(g, g.id in chosen) for g in gpus],
                    "problems": problems,
                    "notes": notes,
                },
                indent=2,
            )
        )
        return 2 if problems else 0
    print(HEADER)
    for gpu in gpus:
        print(format_row(gpu, gpu.id in chosen))
    print(f"* your config's choices ({config.pod.cloud_type} cloud); prices: {catalog.source}")
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(f"config: {problem}")
    _warnings(config)
    return 2 if problems else 0


def _warnings(config: Config) -> None:
    from podmgr.guard.launch import guard_problem

    if config.guard.enabled and (why := guard_problem(config)) is not None:
        print(f"warning: no guard in the pod ({why}); the limits hold only while passes run")
    if config.pod.interruptible:
        from podmgr.runpod.spot import GRAPHQL_RETIREMENT

        print(f"warning: {GRAPHQL_RETIREMENT}")


def run_gpus(args: argparse.Namespace) -> int:
    from podmgr.config import load_config

    return show_catalog(load_config(args.config), refresh=args.refresh, as_json=args.json)
