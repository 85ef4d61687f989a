"""`python -m bench.routing`: does choosing among several upstreams cost anything?

Two proxies in front of the same local upstream, measured in the same run (ABBA order,
so a drift in the machine's load falls on both alike):
- `single`: today's config, `upstream_url` (one upstream, no routing);
- `routed`: `upstreams: [pod, local]` with no pod serving, so every request passes over
  the pod, picks `local`, and its cache key names the upstream: the full routing path.
Rows: cache-hit and pass-through throughput at 32 connections (routed / single), and the
p50 at 1 connection (routed - single). Target: within noise (>= 0.9x, <= +0.1 ms).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.__main__ import CHAT, HIT_BODY, LATENCY_SECONDS, _abba, _print_table, _row
from bench.load import LoadResult, generator_name, run_load
from bench.servers import serve_app, serve_proxy

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))


def _p50(first: str, second: str) -> tuple[float, float]:
    """p50 at 1 connection of two URLs, ABBA, each the mean of its two runs."""
    a1 = run_load(first, 1, LATENCY_SECONDS / 2, HIT_BODY)
    b1 = run_load(second, 1, LATENCY_SECONDS / 2, HIT_BODY)
    b2 = run_load(second, 1, LATENCY_SECONDS / 2, HIT_BODY)
    a2 = run_load(first, 1, LATENCY_SECONDS / 2, HIT_BODY)
    return (a1.p50_ms + a2.p50_ms) / 2, (b1.p50_ms + b2.p50_ms) / 2


def _rows(
    label: str, single: LoadResult, routed: LoadResult, p50: tuple[float, float]
) -> list[list[str]]:
    return [
        _row(f"{label}, 32 conns (req/s)", f"{routed.rps:,.0f}", f"{single.rps:,.0f} single",
             f"{routed.rps / single.rps:.2f}x", ">= 0.9x"),
        _row(f"{label}, 1 conn, p50", f"{p50[1]:.3f} ms", f"{p50[0]:.3f} ms single",
             f"{p50[1] - p50[0]:+.3f} ms", "<= +0.1 ms"),
    ]  # fmt: skip


def main() -> None:
    print(f"load generator: {generator_name()}; {os.cpu_count()} cores; {SECONDS:g} s per run")
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="podmgr-bench-") as tmp, serve_app("upstream") as up:
        work = Path(tmp)
        routed_fields = {
            "upstreams": [
                {"name": "pod", "kind": "pod"},
                {"name": "local", "kind": "openai", "base_url": up},
            ]
        }
        for label, mode in (("cache hit", "all"), ("pass-through chat", "off")):
            with (
                serve_proxy(work / f"single-{mode}", upstream_url=up, cache_mode=mode) as single,
                serve_proxy(work / f"routed-{mode}", cache_mode=mode, **routed_fields) as routed,
            ):
                for url in (single, routed):
                    run_load(url + CHAT, 4, 1, HIT_BODY)  # warm up (and fill the cache)
                one, two = _abba(single + CHAT, routed + CHAT, HIT_BODY)
                rows += _rows(label, one, two, _p50(single + CHAT, routed + CHAT))
    _print_table(rows)


if __name__ == "__main__":
    main()
