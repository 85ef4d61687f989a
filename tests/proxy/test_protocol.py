"""The proxy's server protocol: a response's writes of one loop step leave together, and a
connection has one keep-alive timer.

The first tests count the writes that reach the transport, which only a recording transport
can show (the bytes a socket peer reads may be split or merged by TCP either way). The
others serve through a real uvicorn server on a loopback port: an event the app wrote
reaches the client while the app still waits (nothing is held past the loop's step); a
connection idle for the keep-alive time is closed, and one that keeps serving is not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from podmgr.proxy.protocol import HeldWrites, ProxyProtocol
from podmgr.sim.process import free_port


class RecordingTransport:
    """Stands in for a socket transport: records each write it is given."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)


async def next_step() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_writes_of_one_step_leave_as_one() -> None:
    raw = RecordingTransport()
    held = HeldWrites(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    held.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    held.write(b"{}")
    assert raw.writes == []
    assert held.get_write_buffer_size() == 40
    await next_step()
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    held.write(b"data: 1\n\n")
    await next_step()
    held.write(b"data: 2\n\n")
    await next_step()
    assert raw.writes[1:] == [b"data: 1\n\n", b"data: 2\n\n"]


async def test_close_sends_what_is_held_first_and_a_closed_transport_gets_nothing() -> None:
    raw = RecordingTransport()
    held = HeldWrites(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    held.write(b"last words")
    held.close()
    assert raw.writes == [b"last words"]
    assert raw.closed
    held.write(b"after the end")
    await next_step()
    assert raw.writes == [b"last words"]
    assert held.get_extra_info("peername") == ("127.0.0.1", 5)  # the rest is the transport's


async def until_started(server: uvicorn.Server) -> None:
    while not server.started:
        await asyncio.sleep(0.01)


async def answer_ok(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=60)
    return head + await asyncio.wait_for(reader.readexactly(2), timeout=60)


@asynccontextmanager
async def served(app: Any, **settings: Any) -> AsyncIterator[tuple[Any, Any]]:
    """`app` on a uvicorn server with the proxy's protocol (in this loop, a free loopback
    port); yields a (reader, writer) connection to it."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=ProxyProtocol, lifespan="off",
        log_level="warning", **settings,
    )  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await asyncio.wait_for(until_started(server), timeout=60)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        yield reader, writer
        writer.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=60)


async def test_keep_alive_closes_an_idle_connection_and_spares_a_busy_one() -> None:
    async with served(answer_ok, timeout_keep_alive=1) as (reader, writer):
        # Busy: a request every 0.1 s for 2.5 s, more than twice the keep-alive time.
        loop = asyncio.get_running_loop()
        until = loop.time() + 2.5
        answered = 0
        while loop.time() < until:
            assert (await exchange(reader, writer)).endswith(b"\r\n\r\n{}")
            answered += 1
            await asyncio.sleep(0.1)
        assert answered >= 5
        # Idle: the server closes it (an EOF), as stock uvicorn does after the same time.
        assert await asyncio.wait_for(reader.read(), timeout=60) == b""


async def test_pipelined_requests_are_answered_in_order_then_the_idle_timer_runs() -> None:
    """Two requests in one write: the second starts when the first is answered (uvicorn's
    own code, no timer), then the connection idles out as any other."""
    async with served(answer_ok, timeout_keep_alive=1) as (reader, writer):
        writer.write(b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\n" * 2)
        for _ in range(2):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=60)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), timeout=60) == b"{}"
        assert await asyncio.wait_for(reader.read(), timeout=60) == b""


async def test_a_stream_is_not_held_while_the_app_waits() -> None:
    first_seen = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        # Held until the response ended, the first event would never reach the client.
        await asyncio.wait_for(first_seen.wait(), timeout=60)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async with served(app) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        received = b""
        while b"data: 1\n\n" not in received:
            received += await asyncio.wait_for(reader.read(4096), timeout=60)
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        first_seen.set()
        received += await asyncio.wait_for(reader.read(), timeout=60)
        assert received.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
