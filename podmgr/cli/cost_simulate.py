"""`podmgr cost simulate --trace FILE [--config A --config B ...] [--json]`.

Replays the trace through the real `plan()` for each config (podmgr/whatif/replay.py) and
prints what each would have cost, beside an always-on pod. Everything is read and checked
before anything is replayed: a bad trace line or config is exit 2 naming it, and no
partial table is printed.

Prices come from where `podmgr gpus` takes them (podmgr/cli/prices.py): the cached
catalog, else RunPod's read with RUNPOD_API_KEY (and cached); without either, or when
RunPod cannot be reached, the simulator's plausible prices, and the output says so.

Several models (config `pods`, issue 23): the trace's `model` column sends each request to
the pod serving that model (podmgr/whatif/pods.py drives the real `plan_set()`); the
output gives each pod's figures (hours, cost, cold starts, requests served / waited /
unserved) and the total, and counts requests for a model no pod serves as refused. The
always-on comparison is then every pod up over the whole trace, each at its first GPU
type's on-demand price, and its total. A one-pod config prints what it printed before
(its JSON row gains `pods`, one entry, and `refused_requests`, 0).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from podmgr.config import Config
    from podmgr.whatif.replay import PodResult, Prices, ReplayResult
    from podmgr.whatif.trace import TraceRequest

__all__ = ["register"]


def register(subparsers: Any) -> None:
    simulate = subparsers.add_parser(
        "simulate",
        help="what a config would have cost on a trace of requests",
        description=(
            "Replay a trace of requests (CSV with a header row or JSON lines: timestamp, "
            "optional model, prompt_tokens, completion_tokens) through the watchdog's real "
            "plan() on a virtual clock with a model of RunPod. With wake_on_request a request "
            "starts a session; otherwise a person is modelled running `podmgr up` at their "
            "first request after the pod went down. After a budget, crash-loop or "
            "no-container end, nothing starts a session until the next UTC day. With "
            "several pods (config `pods`) each request goes to the pod of its model and "
            "wakes that pod only; the output is per pod and in total."
        ),
    )
    simulate.add_argument("--trace", required=True, help="CSV or JSON-lines file")
    simulate.add_argument(
        "--config", action="append", help="pod_config.json to compare (repeat; default: yours)"
    )
    simulate.add_argument("--json", action="store_true", help="one JSON object")
    simulate.add_argument("--pull-seconds", type=float, default=150.0, help="image pull")
    simulate.add_argument("--download-seconds", type=float, default=40.0, help="model download")
    simulate.add_argument("--load-seconds", type=float, default=60.0, help="model load")
    simulate.add_argument(
        "--preemptions-per-hour", type=float, default=0.0, help="spot pods only (default 0)"
    )
    simulate.add_argument("--price-per-hour", type=float, help="instead of the catalog's")
    simulate.add_argument("--seed", type=int, default=1, help="for the preemptions")
    simulate.set_defaults(handler=run_simulate)


def _check_numbers(args: argparse.Namespace) -> None:
    from podmgr.errors import ConfigError

    for flag in ("pull_seconds", "download_seconds", "load_seconds", "preemptions_per_hour"):
        if getattr(args, flag) < 0:
            raise ConfigError(f"--{flag.replace('_', '-')}: must be 0 or more")
    if args.price_per_hour is not None and args.price_per_hour <= 0:
        raise ConfigError("--price-per-hour: must be more than 0")


def run_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from podmgr.config import load_config
    from podmgr.whatif.prices import prices_by_pod
    from podmgr.whatif.trace import read_trace

    _check_numbers(args)
    requests = read_trace(Path(args.trace))
    paths: list[str | None] = list(args.config or [None])
    configs = [(path, load_config(path)) for path in paths]
    rows = []
    for path, config in configs:
        if args.price_per_hour is None:
            _cache_catalog(config)
        prices = prices_by_pod(config, args.price_per_hour)
        rows.append(_simulate_one(args, path, config, requests, prices))
    summary = {
        "trace": str(args.trace),
        "requests": len(requests),
        "span_hours": round((requests[-1].at - requests[0].at) / 3600, 4),
        "configs": rows,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(summary)
    return 0


def _cache_catalog(config: Config) -> None:
    """Read RunPod's catalog into the cache when none is there and a key is set; else the
    replay takes the simulator's prices (its output names the source)."""
    import sys

    from podmgr.cli.prices import catalog_path, load_catalog, quick_client, read_cached
    from podmgr.errors import PodmgrError

    client = quick_client(config)
    if read_cached(catalog_path(config)) is not None or client is None:
        return
    try:
        load_catalog(config, client=client)
    except PodmgrError as error:
        print(
            f"note: RunPod's prices not read ({error.message}); the simulator's are used",
            file=sys.stderr,
        )


def _simulate_one(
    args: argparse.Namespace,
    path: str | None,
    config: Config,
    requests: list[TraceRequest],
    prices: Mapping[str, Prices],
) -> dict[str, Any]:
    from podmgr.errors import ConfigError
    from podmgr.whatif.pods import replay_pods
    from podmgr.whatif.replay import always_on, wait_percentiles
    from podmgr.whatif.runpod_model import StartupPace

    always: dict[str, tuple[float, float]] = {}
    for entry in config.pods:
        gpu, own = entry.gpu_type_ids[0], prices[entry.name]
        if own.of(gpu, False) <= 0:
            raise ConfigError(
                f"gpu_type_id {gpu}: no price known ({own.source}); give --price-per-hour"
            )
        always[entry.name] = always_on(requests, own.of(gpu, False))
    pace = StartupPace(args.pull_seconds, args.download_seconds, args.load_seconds)
    result = replay_pods(
        config, requests, prices, pace=pace,
        preemptions_per_hour=args.preemptions_per_hour, seed=args.seed,
    )  # fmt: skip
    p50, p95 = wait_percentiles(result)
    on_hours = max(hours for hours, _ in always.values())
    on_cost = sum(cost for _, cost in always.values())
    row = _row(path, config, result, prices[config.pod_names[0]], p50, p95, on_hours, on_cost)
    row["pods"] = [_pod_row(part, always[part.name]) for part in result.by_pod]
    if len(config.pods) > 1:
        row["gpu_type_id"] = ", ".join(part.gpu_type_id for part in result.by_pod)
        row["always_on"]["billed_hours"] = _round(sum(h for h, _ in always.values()))
    return row


def _pod_row(part: PodResult, always: tuple[float, float]) -> dict[str, Any]:
    """One pod's figures in the JSON row (`pods`)."""
    from podmgr.whatif.replay import wait_percentiles

    p50, p95 = wait_percentiles(part)
    return {
        "name": part.name,
        "model": part.model,
        "gpu_type_id": part.gpu_type_id,
        "billed_hours": _round(part.billed_seconds / 3600),
        "cost_usd": _round(part.cost_usd),
        "cold_starts": part.cold_starts,
        "served_requests": part.served,
        "waited_requests": len(part.waits),
        "wait_p50_seconds": _round(p50, 1),
        "wait_p95_seconds": _round(p95, 1),
        "fallback_requests": part.fallback,
        "unserved_requests": part.unserved,
        "always_on": {"billed_hours": _round(always[0]), "cost_usd": _round(always[1])},
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _row(
    path: str | None,
    config: Config,
    result: ReplayResult,
    prices: Prices,
    p50: float | None,
    p95: float | None,
    on_hours: float,
    on_cost: float,
) -> dict[str, Any]:
    return {
        "config": path or "(default)",
        "gpu_type_id": config.pod.gpu_type_ids[0],
        "price_source": prices.source,
        "billed_hours": _round(result.billed_seconds / 3600),
        "cost_usd": _round(result.cost_usd),
        "pod_cost_usd": _round(result.pod_cost_usd),
        "fallback_cost_usd": _round(result.fallback_cost_usd),
        "sessions": len(result.sessions),
        "cold_starts": result.cold_starts,
        "preemptions": result.preemptions,
        "waited_requests": len(result.waits),
        "wait_p50_seconds": _round(p50, 1),
        "wait_p95_seconds": _round(p95, 1),
        "pod_requests": result.pod_requests,
        "fallback_requests": result.fallback_requests,
        "fallback_requests_without_tokens": result.fallback_without_tokens,
        "unserved_requests": result.unserved_requests,
        "refused_requests": result.refused_requests,
        "refused_models": dict(sorted(result.refused_models.items())),
        "session_ends": _end_counts(result),
        "always_on": {"billed_hours": _round(on_hours), "cost_usd": _round(on_cost)},
    }


def _end_counts(result: ReplayResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for session in result.sessions:
        reason = session.end_reason or "running"
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}s"


def _print_table(summary: dict[str, Any]) -> None:
    print(
        f"trace {summary['trace']}: {summary['requests']} requests over "
        f"{summary['span_hours']:.1f} h"
    )
    for row in summary["configs"]:
        print(f"\n{row['config']} ({row['gpu_type_id']}; prices: {row['price_source']})")
        print(
            f"  pod billed {row['billed_hours']:.2f} h, ${row['cost_usd']:.2f} "
            f"(pod ${row['pod_cost_usd']:.2f} + fallback tokens ${row['fallback_cost_usd']:.2f})"
        )
        ends = ", ".join(f"{k} {v}" for k, v in sorted(row["session_ends"].items()))
        print(
            f"  {row['sessions']} sessions ({ends}), {row['cold_starts']} cold starts, "
            f"{row['preemptions']} preemptions"
        )
        print(
            f"  {row['waited_requests']} requests waited for the pod: p50 "
            f"{_seconds(row['wait_p50_seconds'])}, p95 {_seconds(row['wait_p95_seconds'])}; "
            f"{row['fallback_requests']} served by a fallback, {row['unserved_requests']} unserved"
        )
        if row["fallback_requests_without_tokens"]:
            print(
                f"  note: {row['fallback_requests_without_tokens']} fallback requests had no "
                "token counts in the trace; their cost counts as $0"
            )
        if len(row["pods"]) > 1:
            _print_pods(row)
            continue
        always = row["always_on"]
        print(
            f"  always-on pod for comparison: {always['billed_hours']:.2f} h, "
            f"${always['cost_usd']:.2f}"
        )


def _print_pods(row: dict[str, Any]) -> None:
    """Several pods: one line per pod, then the total, and the always-on comparison."""
    if row["refused_requests"]:
        models = ", ".join(f"{m} ({n})" for m, n in row["refused_models"].items())
        print(
            f"  {row['refused_requests']} requests refused, no pod or fallback serves their "
            f"model: {models}"
        )
    print("  per pod:")
    width = max(len(pod["name"]) for pod in row["pods"])
    for pod in row["pods"]:
        print(
            f"    {pod['name']:<{width}}  {pod['model']} on {pod['gpu_type_id']}: "
            f"{pod['billed_hours']:.2f} h, ${pod['cost_usd']:.2f}, {pod['cold_starts']} cold "
            f"starts; {pod['served_requests']} served ({pod['waited_requests']} waited), "
            f"{pod['unserved_requests']} unserved; always on ${pod['always_on']['cost_usd']:.2f}"
        )
    served = sum(pod["served_requests"] for pod in row["pods"])
    print(
        f"    {'total':<{width}}  {row['billed_hours']:.2f} h, ${row['pod_cost_usd']:.2f} "
        f"(+ fallback tokens ${row['fallback_cost_usd']:.2f}), {row['cold_starts']} cold "
        f"starts; {served} served ({row['waited_requests']} waited), "
        f"{row['unserved_requests']} unserved, {row['refused_requests']} refused"
    )
    always = row["always_on"]
    print(
        f"  every pod always on for comparison: {always['billed_hours']:.2f} pod-hours, "
        f"${always['cost_usd']:.2f}"
    )
