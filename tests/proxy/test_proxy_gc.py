"""A request through the proxy leaves no reference cycle behind.

The proxy process collects its youngest objects only every 10,000 allocations and freezes
its start-up heap (podmgr/proxy/server.py `quiet_garbage_collector`): that is cheap only
while a request's objects die with it. Each upstream response used to hold its parser and
the parser the response's methods, so every request left about ten objects for the
collector, and collections took a tenth of a pass-through's CPU time under load.

The proxy's app runs in this process (the collector can only be asked here), sending to a
simulated vLLM pod in its own process through the proxy's own upstream client.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from simkit import SimUpstream

from bench.profile import receive_once
from podmgr.config import build_config
from podmgr.proxy.app import create_app

from .proxykit import VLLM_KEY

ROUNDS = 8  # requests per connection
CONNECTIONS = 8


def _scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip


async def _drive(app: Any, bodies: list[bytes]) -> list[int]:
    """Each body ROUNDS times on each of CONNECTIONS concurrent "connections"; the statuses."""
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def connection() -> None:
        for _ in range(ROUNDS):
            for body in bodies:
                await app(_scope(body), receive_once(body), send)

    await asyncio.gather(*[connection() for _ in range(CONNECTIONS)])
    return statuses


def _body(model: str, **extra: Any) -> bytes:
    messages = [{"role": "user", "content": "say hi"}]
    return json.dumps({"model": model, "messages": messages, "max_tokens": 4, **extra}).encode()


@pytest.mark.parametrize("cache_mode", ["off", "all"])
async def test_requests_leave_no_cycles_for_the_collector(
    cache_mode: str, upstream: SimUpstream, tmp_path: Path
) -> None:
    fields = {"cache_dir": "cache", "state_file": "state.json", "log_level": "warning",
              "upstream_url": upstream.url, "upstream_api_key": VLLM_KEY,
              "cache_mode": cache_mode}  # fmt: skip
    app = create_app(build_config(fields, base_dir=tmp_path))
    bodies = [_body(upstream.model), _body(upstream.model, stream=True)]
    async with app.router.lifespan_context(app):
        await _drive(app, bodies)  # connections opened, cache filled, code warm
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            statuses = await _drive(app, bodies)
            gc.collect()
            left = Counter(type(thing).__qualname__ for thing in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert set(statuses) == {200}
    # Before the fix: about ten objects a request (UpstreamResponse, HttpResponseParser,
    # its bound methods, the headers). Some start-up garbage may still turn up once.
    assert sum(left.values()) < len(statuses) / 4, left.most_common(8)
    assert left["UpstreamResponse"] == 0
