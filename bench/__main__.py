"""`python -m bench` (or `make bench`): run every proxy benchmark and print one table.

Each figure is a ratio against a baseline measured in the same run on this machine:
- cache-hit throughput at 32 connections / a bare Starlette app returning the same bytes
  (and, for reference, / the same app on the proxy's server protocol, podmgr/proxy/protocol.py);
- pass-through throughput at 32 connections / calling the upstream directly (a static local
  `upstream_url`: no edge limit, so requests go as they are), and the same for the
  edge-safe path a RunPod pod takes (non-streaming requests sent upstream as streams);
  for reference, two minimal forwarders in the same row (aiohttp's client; the proxy's own
  client and server protocol: the floor of a pass-through on this stack);
- added p50 latency at 1 connection (hit vs bare app, pass-through vs direct);
- streams: added time to first byte and added delay per chunk;
- hit latency with 100k entries / with 1k entries.
Load and servers share the machine's cores, as they would on a laptop.

Each 32-connection ratio is the median of `BENCH_ROUNDS` (4) rounds' ratios: in a round
every URL of the row runs for half of BENCH_SECONDS, in order and in the next round in
reverse, so each round's two figures were measured seconds apart. After the table, these
ratios are compared with the figures stored for this machine class (bench/guard.py,
bench/baselines.json): one that falls more than 10 % below its figure prints a banner and
the exit code is 1. `--record` (or BENCH_RECORD=1) stores this run's ratios instead.
BENCH_SECONDS and BENCH_ROUNDS shorten the runs while iterating.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.fill import bench_body, fill_cache
from bench.guard import TARGETS, markdown_table, report
from bench.load import LoadResult, generator_name, run_load
from bench.servers import serve_app, serve_proxy
from bench.streams import measure_streams

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
LATENCY_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "3"))
# Rounds per 32-connection row: one round's ratio moved by a fifth on an idle machine
# (docs/bench.md); the median of four is what the guard compares.
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "4")))
CHAT = "/v1/chat/completions"
HIT_BODY = [json.dumps(bench_body(0))]
# The ratios the guard compares with their stored figures, filled in as the rows are run.
Ratios = dict[str, float]


def _row(name: str, value: str, baseline: str, figure: str, target: str) -> list[str]:
    return [name, value, baseline, figure, target]


def _print_table(rows: list[list[str]]) -> None:
    print("\n".join(markdown_table(["benchmark", "proxy", "baseline", "result", "target"], rows)))


def _target(name: str) -> str:
    return f">= {TARGETS[name]:.2f}x"


def _hit_rows(work: Path, upstream: str, ratios: Ratios) -> list[list[str]]:
    with (
        serve_app("bare") as bare,
        serve_app("bare-proxied") as proxied,
        serve_proxy(work / "hit", upstream_url=upstream) as proxy,
    ):
        run_load(proxy + CHAT, 1, 0.5, HIT_BODY)  # miss once, then it is a hit
        base, hit, base_proxied = _interleaved(
            [bare + CHAT, proxy + CHAT, proxied + CHAT], HIT_BODY
        )
        base1 = run_load(bare + CHAT, 1, LATENCY_SECONDS, HIT_BODY)
        hit1 = run_load(proxy + CHAT, 1, LATENCY_SECONDS, HIT_BODY)
    ratios["cache_hit"] = _ratio(hit, base)
    return [
        _row("cache hit, 32 conns (req/s)", f"{_rps(hit):,.0f}",
             f"{_rps(base):,.0f} bare Starlette", f"{_ratio(hit, base):.2f}x",
             _target("cache_hit")),
        _row("  same, bare app on the proxy's protocol (ref.)", f"{_rps(hit):,.0f}",
             f"{_rps(base_proxied):,.0f} bare, proxy's", f"{_ratio(hit, base_proxied):.2f}x", "-"),
        _row("cache hit, 1 conn, p50 added", f"{hit1.p50_ms:.3f} ms", f"{base1.p50_ms:.3f} ms",
             f"{hit1.p50_ms - base1.p50_ms:+.3f} ms", "<= 0.3 ms"),
    ]  # fmt: skip


def _abba(first: str, second: str, bodies: list[str] | None) -> tuple[LoadResult, LoadResult]:
    """Throughput of two URLs measured in alternating order (so a drift in the machine's
    load falls on both alike); each figure is the median of its rounds."""
    one, two = _interleaved([first, second], bodies)
    return _median(one), _median(two)


Rounds = list[LoadResult]  # one URL's figures, a round each


def _interleaved(urls: list[str], bodies: list[str] | None) -> list[Rounds]:
    """Throughput of each URL at 32 connections in `ROUNDS` rounds of half of SECONDS:
    in order, then in reverse order, and so on (a drift in the machine's load falls on all
    alike; on a shared machine a single run beside another job's burst was off by 50%)."""
    rounds: list[Rounds] = [[] for _ in urls]
    for number in range(ROUNDS):
        order = list(enumerate(urls))
        for index, url in order if number % 2 == 0 else reversed(order):
            rounds[index].append(run_load(url, 32, SECONDS / 2, bodies))
    return rounds


def _ratio(measured: Rounds, baseline: Rounds) -> float:
    """The median of the rounds' ratios: each round's two figures were measured seconds
    apart, so one round beside a burst of other work moves one ratio, not the median."""
    return statistics.median(one.rps / two.rps for one, two in zip(measured, baseline, strict=True))


def _rps(rounds: Rounds) -> float:
    return statistics.median(result.rps for result in rounds)


def _median(rounds: Rounds) -> LoadResult:
    return LoadResult(
        _rps(rounds),
        statistics.median(result.p50_ms for result in rounds),
        sum(result.non_2xx for result in rounds),
    )


def _pass_rows(work: Path, upstream: str, ratios: Ratios) -> list[list[str]]:
    """Pass-through with each upstream client (`upstream_client`) in the same run: the own
    client is kept only while it beats aiohttp's by >= 1.3x (podmgr/proxy/upstream/client.py)."""
    rows = []
    with (
        serve_proxy(work / "pass", upstream_url=upstream, cache_mode="off") as own,
        serve_proxy(work / "pass-aio", upstream_url=upstream, cache_mode="off",
                    upstream_client="aiohttp") as aio,
        serve_app("forwarder", upstream) as forwarder,
        serve_app("floor", upstream) as floor,
    ):  # fmt: skip
        for label, name, path, bodies in (
            ("chat", "pass_through", CHAT, HIT_BODY),
            ("GET models", "pass_through_models", "/v1/models", None),
        ):
            run_load(own + path, 4, 1, bodies)
            run_load(aio + path, 4, 1, bodies)
            direct, through, through_aio = _interleaved(
                [upstream + path, own + path, aio + path], bodies
            )
            minimal = run_load(forwarder + path, 32, SECONDS, bodies)
            least = run_load(floor + path, 32, SECONDS, bodies)
            direct1 = run_load(upstream + path, 1, LATENCY_SECONDS, bodies)
            through1 = run_load(own + path, 1, LATENCY_SECONDS, bodies)
            ratios[name] = _ratio(through, direct)
            rows += [
                _row(f"pass-through {label}, 32 conns (req/s)", f"{_rps(through):,.0f}",
                     f"{_rps(direct):,.0f} direct", f"{_ratio(through, direct):.2f}x",
                     _target(name) if name in TARGETS else "-"),
                _row("  same, upstream_client=aiohttp", f"{_rps(through_aio):,.0f}",
                     f"{_rps(direct):,.0f} direct", f"{_ratio(through_aio, direct):.2f}x", "-"),
                _row("  own client / aiohttp", f"{_rps(through):,.0f}", f"{_rps(through_aio):,.0f}",
                     f"{_ratio(through, through_aio):.2f}x", ">= 1.3x to keep it"),
                _row("  same, minimal aiohttp forwarder (ref.)", f"{minimal.rps:,.0f}",
                     f"{_rps(direct):,.0f} direct", f"{minimal.rps / _rps(direct):.2f}x", "-"),
                _row("  same, minimal forwarder on the proxy's client (ref.)", f"{least.rps:,.0f}",
                     f"{_rps(direct):,.0f} direct", f"{least.rps / _rps(direct):.2f}x", "-"),
                _row(f"pass-through {label}, 1 conn, p50 added", f"{through1.p50_ms:.3f} ms",
                     f"{direct1.p50_ms:.3f} ms", f"{through1.p50_ms - direct1.p50_ms:+.3f} ms",
                     "<= 0.5 ms"),
            ]  # fmt: skip
    return rows


def _edge_rows(work: Path, upstream: str, ratios: Ratios) -> list[list[str]]:
    """The path a RunPod pod takes: a non-streaming request sent upstream as a stream and
    the JSON rebuilt from it (rows above use a static local upstream, sent as it is)."""
    with serve_proxy(work / "edge", pod_url=upstream, cache_mode="off") as proxy:
        run_load(proxy + CHAT, 4, 1, HIT_BODY)
        direct, through = _interleaved([upstream + CHAT, proxy + CHAT], HIT_BODY)
        direct1 = run_load(upstream + CHAT, 1, LATENCY_SECONDS, HIT_BODY)
        through1 = run_load(proxy + CHAT, 1, LATENCY_SECONDS, HIT_BODY)
    ratios["edge_safe"] = _ratio(through, direct)
    return [
        _row("edge-safe chat (pod, sent as stream), 32 conns", f"{_rps(through):,.0f}",
             f"{_rps(direct):,.0f} direct", f"{_ratio(through, direct):.2f}x", "(>= 0.2x)"),
        _row("edge-safe chat, 1 conn, p50 added", f"{through1.p50_ms:.3f} ms",
             f"{direct1.p50_ms:.3f} ms", f"{through1.p50_ms - direct1.p50_ms:+.3f} ms",
             "(<= 0.5 ms)"),
    ]  # fmt: skip


def _stream_rows(work: Path, upstream: str) -> list[list[str]]:
    with serve_proxy(work / "stream", upstream_url=upstream, cache_mode="off") as proxy:
        timing = measure_streams(upstream, proxy)
    return [
        _row("stream, added time to first byte", f"{timing.added_ttfb_ms:+.2f} ms", "direct",
             f"{timing.added_ttfb_ms:+.2f} ms", "<= 2 ms"),
        _row(f"stream, added delay per chunk ({timing.chunks})",
             f"p50 {timing.added_chunk_p50_ms:+.2f} ms", "direct",
             f"max {timing.added_chunk_max_ms:+.2f} ms", "<= 2 ms"),
    ]  # fmt: skip


def _scale_rows(work: Path, upstream: str, rounds: int = 3) -> list[list[str]]:
    bodies = {}
    for count in (1_000, 100_000):
        fill_cache(work / f"scale{count}" / "cache", count)
        step = max(1, count // 500)
        bodies[count] = [json.dumps(bench_body(i)) for i in range(0, count, step)]
    p50: dict[int, list[float]] = {1_000: [], 100_000: []}
    with (
        serve_proxy(work / "scale1000", upstream_url=upstream, max_cache_size=200_000) as small,
        serve_proxy(work / "scale100000", upstream_url=upstream, max_cache_size=200_000) as big,
    ):
        for url, count in ((small, 1_000), (big, 100_000)):
            run_load(url + CHAT, 1, 1, bodies[count])  # first reads come from disk
        for _ in range(rounds):  # alternate, so machine noise falls on both alike
            for url, count in ((small, 1_000), (big, 100_000)):
                p50[count].append(run_load(url + CHAT, 1, 2, bodies[count]).p50_ms)
    small_p50, big_p50 = statistics.median(p50[1_000]), statistics.median(p50[100_000])
    return [
        _row("hit p50, 100k entries vs 1k", f"{big_p50:.3f} ms", f"{small_p50:.3f} ms",
             f"{big_p50 / small_p50:.2f}x", "<= 1.5x"),
    ]  # fmt: skip


def main() -> int:
    recording = "--record" in sys.argv[1:] or os.environ.get("BENCH_RECORD") == "1"
    print(
        f"load generator: {generator_name()}; {os.cpu_count()} cores; {SECONDS:g} s per run; "
        f"32-connection ratios: median of {ROUNDS} rounds"
    )
    rows: list[list[str]] = []
    ratios: Ratios = {}
    with tempfile.TemporaryDirectory(prefix="podmgr-bench-") as tmp, serve_app("upstream") as up:
        work = Path(tmp)
        rows += _hit_rows(work, up, ratios)
        rows += _pass_rows(work, up, ratios)
        rows += _edge_rows(work, up, ratios)
        rows += _stream_rows(work, up)
        rows += _scale_rows(work, up)
    _print_table(rows)
    return report(ratios, recording=recording)


if __name__ == "__main__":
    sys.exit(main())
