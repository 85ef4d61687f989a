"""The servers the benchmarks measure against, each run as its own uvicorn process.

- `upstream`: a minimal raw-ASGI vLLM stand-in. POST chat/completions answers a fixed ~1 KB
  JSON, or with `"stream": true` the same answer as SSE chunks (`bench_delay` seconds
  between chunks, each stamped with `sent_at`, so the relay delay of every chunk can be
  measured); GET /v1/models a small list.
- `bare`: a bare Starlette app returning the cached answer's bytes: the ceiling of a Python
  cache hit on this machine.
- `forwarder`: the minimal raw-ASGI + aiohttp forwarder (no cache, no metrics, body read
  whole): a reference for what the aiohttp client itself costs per request.
- `floor`: the same minimal forwarder on the proxy's own upstream client and the proxy's
  server protocol (`podmgr.proxy.protocol`): the floor of a pass-through on this stack,
  what is left when everything podmgr does per request is taken away.
- `bare-proxied`: the bare app on the proxy's server protocol (one write a response, one
  keep-alive timer a connection, where stock uvicorn has two and one a request): what the
  cache-hit ratio owes to the protocol.

`python -m bench.apps upstream|bare|bare-proxied PORT` or `python -m bench.apps
forwarder|floor PORT UPSTREAM`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

CONTENT = "def add(a, b):\n    return a + b\n" * 22
ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": CONTENT},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 200, "total_tokens": 212},
    }
).encode()
MODELS = b'{"object":"list","data":[{"id":"bench-model","object":"model","max_model_len":4096}]}'
CHUNKS = 20


def _chunk(piece: dict[str, Any]) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        **piece,
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _stream_events() -> list[bytes]:
    size = len(CONTENT) // CHUNKS + 1
    parts = [CONTENT[i : i + size] for i in range(0, len(CONTENT), size)]
    events = [
        _chunk({"choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]})
        for part in parts
    ]
    events[-1] = _chunk(
        {"choices": [{"index": 0, "delta": {"content": parts[-1]}, "finish_reason": "stop"}]}
    )
    usage = {"prompt_tokens": 12, "completion_tokens": 200, "total_tokens": 212}
    return [*events, _chunk({"choices": [], "usage": usage})]


EVENTS = _stream_events()


async def _read(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def upstream(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] == "GET":
        await _respond(send, MODELS)
        return
    request = json.loads(await _read(receive) or b"{}")
    if not request.get("stream"):
        await _respond(send, ANSWER)
        return
    delay = float(request.get("bench_delay") or 0)
    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    events = EVENTS if include_usage else EVENTS[:-1]
    if delay:
        for event in events:
            await asyncio.sleep(delay)
            # Stamp each chunk with its send time, so a client can tell the relay delay.
            stamped = event[:-3] + b', "sent_at": ' + repr(time.time()).encode() + b"}\n\n"
            await send({"type": "http.response.body", "body": stamped, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
    else:
        await send({"type": "http.response.body", "body": b"".join([*events, b"data: [DONE]\n\n"])})


async def _respond(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def bare() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def answer(_request: Request) -> Response:
        return Response(ANSWER, media_type="application/json")

    return Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])


Fetch = Callable[[str, str, bytes], Awaitable[tuple[int, bytes]]]


def _forwarding(
    upstream_url: str, fetch: Fetch, opened: Callable[[], Awaitable[None]],
    closed: Callable[[], Awaitable[None]],
) -> Any:  # fmt: skip
    """A raw-ASGI app sending each request on to `upstream_url` with `fetch` (status and
    body back), its client `opened` at start-up and `closed` at shutdown."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await opened()
                await send({"type": "lifespan.startup.complete"})
            await closed()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await _read(receive)
        status, answer = await fetch(scope["method"], upstream_url + scope["path"], body)
        if status != 200:
            raise RuntimeError(f"upstream answered {status}")
        await _respond(send, answer)

    return app


def forwarder(upstream_url: str) -> Any:
    import aiohttp

    state: dict[str, aiohttp.ClientSession] = {}

    async def opened() -> None:
        state["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))

    async def closed() -> None:
        await state["session"].close()

    async def fetch(method: str, url: str, body: bytes) -> tuple[int, bytes]:
        async with state["session"].request(method, url, data=body or None) as response:
            return response.status, await response.read()

    return _forwarding(upstream_url, fetch, opened, closed)


def floor(upstream_url: str) -> Any:
    from podmgr.proxy.upstream.client import UpstreamClient

    client = UpstreamClient()
    headers = {"content-type": "application/json"}

    async def opened() -> None:
        return None

    async def fetch(method: str, url: str, body: bytes) -> tuple[int, bytes]:
        async with client.request(method, url, body, headers) as response:
            return response.status, await response.read()

    return _forwarding(upstream_url, fetch, opened, client.close)


if __name__ == "__main__":
    from podmgr.proxy.protocol import ProxyProtocol

    kind, port = sys.argv[1], int(sys.argv[2])
    apps = {
        "upstream": lambda: upstream,
        "bare": bare,
        "bare-proxied": bare,
        "forwarder": lambda: forwarder(sys.argv[3]),
        "floor": lambda: floor(sys.argv[3]),
    }
    app = apps[kind]()
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop",
        http=ProxyProtocol if kind in ("floor", "bare-proxied") else "httptools",
        log_level="warning", access_log=False,
    )  # fmt: skip
