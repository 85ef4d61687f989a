"""`python -m bench.profile [hit|refused] [--cprofile]`: CPU per `/v1` request in process.

Drives the proxy's own ASGI app (`create_app`) with cache hits (or requests refused for
want of an upstream), no sockets and no uvicorn, so the figure is the proxy's Python
code alone: what `python -m bench` adds on top of a bare app, minus the server's share.
It also times the observe side alone (`Recorder.begin` + `record` for one hit), so a
regression there shows apart from the forward side. With `--cprofile`, the top functions
by own time are printed (cProfile inflates small functions; read shares, not absolutes).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

from bench.fill import bench_body, fill_cache
from podmgr.config import build_config
from podmgr.proxy.app import create_app
from podmgr.proxy.observe.metrics import ProxyMetrics, Snapshot
from podmgr.proxy.observe.outcome import CacheResult, Recorder
from podmgr.proxy.observe.stats import RecentStats

ROUNDS = 10_000
REPEATS = 5
BODY = json.dumps(bench_body(0)).encode()


def _scope(port: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", f"127.0.0.1:{port}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", port),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": BODY, "more_body": False}


async def _drive(app: Any, rounds: int, profile: cProfile.Profile | None) -> float:
    """Seconds of CPU per request through `app` (the best of REPEATS runs of `rounds`)."""
    sent: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    scope = _scope(8000)
    for _ in range(100):  # warm up: the first hit reads the entry from disk
        await app(dict(scope), _receive, send)
    sent.clear()
    best = float("inf")
    for _ in range(REPEATS):  # the least of several runs: other work on the machine only adds
        if profile is not None:
            profile.enable()
        started = time.process_time()
        for _ in range(rounds):
            await app(dict(scope), _receive, send)
        best = min(best, time.process_time() - started)
        if profile is not None:
            profile.disable()
    if set(sent) - {200, 503}:
        raise RuntimeError(f"unexpected answers: {sorted(set(sent))}")
    return best / rounds


async def _run(kind: str, rounds: int, profile: cProfile.Profile | None) -> float:
    with tempfile.TemporaryDirectory(prefix="podmgr-profile-") as tmp:
        fields = {"cache_dir": "cache", "state_file": "state.json", "log_level": "warning"}
        if kind == "hit":
            fill_cache(Path(tmp) / "cache", 1)  # the answer to bench_body(0)
            fields["upstream_url"] = "http://127.0.0.1:9"  # never called: every request hits
        app = create_app(build_config(fields, base_dir=tmp))
        async with app.router.lifespan_context(app):
            return await _drive(app, rounds, profile)


def observe_cost(rounds: int = 200_000) -> float:
    """Seconds of CPU for recording one cache hit (begin + record), the observe side."""
    recorder = Recorder(ProxyMetrics(lambda: Snapshot(0, 0, None, True)), RecentStats())

    def one() -> None:
        outcome = recorder.begin("chat/completions")
        outcome.status = 200
        outcome.cache = CacheResult.HIT
        recorder.record(outcome)

    return min(timeit.repeat(one, number=rounds, repeat=3)) / rounds


def main() -> None:
    kind = next((a for a in sys.argv[1:] if not a.startswith("-")), "hit")
    profile = cProfile.Profile() if "--cprofile" in sys.argv else None
    per_request = asyncio.run(_run(kind, ROUNDS, profile))
    print(f"{kind}: {per_request * 1e6:.1f} us CPU per request through the app (in process)")
    print(f"observe side (Recorder.begin + record, one hit): {observe_cost() * 1e6:.2f} us")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
