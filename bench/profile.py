"""`python -m bench.profile [hit|refused|pass|models] [--cprofile]`: CPU per `/v1` request.

Drives the proxy's own ASGI app (`create_app`) with cache hits (or requests refused for
want of an upstream), no sockets and no uvicorn, so the figure is the proxy's Python
code alone: what `python -m bench` adds on top of a bare app, minus the server's share.
`pass` (chat with the cache off) and `models` (GET /v1/models) go through to a real
upstream process (bench/apps.py) on loopback, 32 requests at a time on uvloop, as
`python -m bench` sends them: the figure is this process's CPU (app and upstream client),
not the upstream's.
It also times the observe side alone (`Recorder.begin` + `record` for one hit), so a
regression there shows apart from the forward side. With `--cprofile`, the top functions
by own time are printed (cProfile inflates small functions; read shares, not absolutes).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

from bench.fill import bench_body, fill_cache
from bench.servers import serve_app
from podmgr.config import build_config
from podmgr.proxy.app import create_app
from podmgr.proxy.observe.metrics import ProxyMetrics, Snapshot
from podmgr.proxy.observe.outcome import CacheResult, Recorder
from podmgr.proxy.observe.stats import RecentStats

ROUNDS = 10_000
CONNECTIONS = 32
REPEATS = 5
BODY = json.dumps(bench_body(0)).encode()


def _scope(port: int, method: str = "POST", path: str = "/v1/chat/completions") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
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


async def _drive_through(
    app: Any, scope: dict[str, Any], rounds: int, profile: cProfile.Profile | None
) -> float:
    """Seconds of CPU per request through `app` to a real upstream, 32 at a time (the
    least of REPEATS runs of `rounds`)."""
    sent: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    body = BODY if scope["method"] == "POST" else b""

    async def one_connection(count: int) -> None:
        for _ in range(count):
            await app(dict(scope), receive_once(body), send)

    async def run(count: int) -> None:
        await asyncio.gather(*[one_connection(count // CONNECTIONS) for _ in range(CONNECTIONS)])

    await run(CONNECTIONS * 20)  # warm up: connections to the upstream opened
    best = float("inf")
    for _ in range(REPEATS):
        if profile is not None:
            profile.enable()
        started = time.process_time()
        await run(rounds)
        best = min(best, time.process_time() - started)
        if profile is not None:
            profile.disable()
    if set(sent) != {200}:
        raise RuntimeError(f"unexpected answers: {sorted(set(sent))}")
    return best / rounds


def receive_once(body: bytes) -> Any:
    """An ASGI `receive` for one request: the body once, then nothing until the client
    leaves, as a server's is (a watch on the client must wait, not spin)."""
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


async def _through(kind: str, rounds: int, profile: cProfile.Profile | None) -> float:
    with (
        tempfile.TemporaryDirectory(prefix="podmgr-profile-") as tmp,
        serve_app("upstream") as upstream,
    ):
        fields = {"cache_dir": "cache", "state_file": "state.json", "log_level": "warning",
                  "upstream_url": upstream, "cache_mode": "off"}  # fmt: skip
        app = create_app(build_config(fields, base_dir=tmp))
        scope = _scope(8000) if kind == "pass" else _scope(8000, "GET", "/v1/models")
        async with app.router.lifespan_context(app):
            return await _drive_through(app, scope, rounds, profile)


async def _run(kind: str, rounds: int, profile: cProfile.Profile | None) -> float:
    if kind in ("pass", "models"):
        return await _through(kind, rounds, profile)
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
    rounds = ROUNDS // 2 if kind in ("pass", "models") else ROUNDS
    if kind in ("pass", "models"):
        import uvloop  # as the proxy serves (podmgr/proxy/server.py)

        per_request = uvloop.run(_run(kind, rounds, profile))
    else:
        per_request = asyncio.run(_run(kind, rounds, profile))
    print(f"{kind}: {per_request * 1e6:.1f} us CPU per request through the app (in process)")
    print(f"observe side (Recorder.begin + record, one hit): {observe_cost() * 1e6:.2f} us")
    if profile is not None:
        order, top = os.environ.get("BENCH_SORT", "tottime"), os.environ.get("BENCH_TOP", "25")
        pstats.Stats(profile).sort_stats(order).print_stats(int(top))


if __name__ == "__main__":
    main()
