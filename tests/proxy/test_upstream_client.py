"""The proxy's upstream HTTP client against small real servers on loopback ports.

Each server is a raw asyncio server that answers with exact bytes, so the tests control
what a model server (or RunPod's edge) could send: keep-alive, chunked and read-to-close
bodies, a connection closed while idle or mid-answer, garbage, silence, and TLS.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from podmgr.proxy.upstream.client import UpstreamClient, UpstreamDropped, UpstreamUnreachable
from podmgr.sim.testkit import free_port

from .proxykit import self_signed

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Server:
    """A loopback server; counts connections and remembers whether clients hung up."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(handler)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield server
    finally:
        listener.close()


async def keep_alive_after(
    answer: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    while True:
        try:
            await read_request(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(answer)
        await writer.drain()


async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await keep_alive_after(OK, reader, writer)


async def test_keep_alive_reuses_one_connection() -> None:
    client = UpstreamClient(read_timeout=5)
    async with serving(keep_alive) as server:
        for _ in range(5):
            async with client.request("POST", server.url + "/v1/x", b"{}") as response:
                assert response.status == 200 and await response.read() == b"{}"
                assert response.content_type == "application/json"
        assert server.connections == 1
    await client.close()


async def test_an_interim_100_continue_is_skipped() -> None:
    async def continues(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await keep_alive_after(b"HTTP/1.1 100 Continue\r\n\r\n" + OK, reader, writer)

    client = UpstreamClient(read_timeout=5)
    async with serving(continues) as server:
        for _ in range(2):
            async with client.request("POST", server.url + "/v1/x", b"{}") as response:
                assert response.status == 200 and await response.read() == b"{}"
        assert server.connections == 1
    await client.close()


async def test_the_request_target_is_encoded() -> None:
    seen: list[bytes] = []

    async def records(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await read_request(reader)).split(b"\r\n", 1)[0])
        writer.write(OK)

    client = UpstreamClient(read_timeout=5)
    async with serving(records) as server:
        url = server.url + "/v1/models x/ü%41?q=a b"
        async with client.request("GET", url) as response:
            assert response.status == 200
    assert seen == [b"GET /v1/models%20x/%C3%BC%41?q=a%20b HTTP/1.1"]
    await client.close()


async def test_chunked_and_read_to_close_bodies() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"data: 1\n\n", b"data: [DONE]\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")

    async def to_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")

    client = UpstreamClient(read_timeout=5)
    async with serving(chunked) as server:
        async with client.request("GET", server.url + "/s") as response:
            pieces = [piece async for piece in response.chunks()]
        assert pieces == [b"data: 1\n\n", b"data: [DONE]\n\n"]  # one by one, as sent
    async with serving(to_close) as server, client.request("GET", server.url + "/c") as response:
        assert await response.read() == b"all of it"
    await client.close()


async def test_idle_connection_closed_by_the_server_is_retried_once() -> None:
    async def closes_when_reused(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(OK)  # keep-alive promised...
        await writer.drain()
        await read_request(reader)  # ...but the next request meets its idle timeout

    client = UpstreamClient(read_timeout=5)
    async with serving(closes_when_reused) as server:
        for _ in range(2):
            async with client.request("POST", server.url + "/v1/x", b"{}") as response:
                assert await response.read() == b"{}"
        assert server.connections == 2  # the second request went again, on a new connection
    await client.close()


async def test_the_retry_takes_a_new_connection_even_with_more_idle_ones() -> None:
    async def closes_when_reused(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        await asyncio.sleep(0.05)  # both first requests are in flight at once
        writer.write(OK)
        await writer.drain()
        await read_request(reader)

    async def post(client: UpstreamClient, url: str) -> bytes:
        async with client.request("POST", url, b"{}") as response:
            return await response.read()

    client = UpstreamClient(read_timeout=5)
    async with serving(closes_when_reused) as server:
        url = server.url + "/v1/x"
        assert await asyncio.gather(post(client, url), post(client, url)) == [b"{}", b"{}"]
        assert await post(client, url) == b"{}"  # two stale idle connections, then a new one
        assert server.connections == 3
    await client.close()


async def test_a_fresh_connection_that_fails_is_not_retried() -> None:
    async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    client = UpstreamClient(read_timeout=5)
    async with serving(hangs_up) as server:
        with pytest.raises(UpstreamDropped):
            async with client.request("POST", server.url + "/v1/x", b"{}"):
                pass
        assert server.connections == 1
    await client.close()


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", b"this is not http\r\n\r\n"],
    ids=["cut-mid-body", "garbage"],
)
async def test_cut_or_malformed_answers_are_dropped(answer: bytes) -> None:
    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    client = UpstreamClient(read_timeout=5)
    async with serving(bad) as server:
        with pytest.raises(UpstreamDropped):
            async with client.request("POST", server.url + "/v1/x", b"{}") as response:
                await response.read()
    await client.close()


async def test_refused_connection_is_unreachable() -> None:
    client = UpstreamClient(read_timeout=5)
    with pytest.raises(UpstreamUnreachable):
        async with client.request("GET", f"http://127.0.0.1:{free_port()}/v1/models"):
            pass
    await client.close()


async def test_silence_is_a_timeout_and_leaving_closes_the_connection() -> None:
    closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # returns when the client closes its end
        closed.set()

    client = UpstreamClient(read_timeout=0.2)
    async with serving(silent) as server:
        with pytest.raises(TimeoutError):
            async with client.request("POST", server.url + "/v1/x", b"{}"):
                pass
        await asyncio.wait_for(closed.wait(), 2)
        closed.clear()
        patient = UpstreamClient(read_timeout=30)
        task = asyncio.ensure_future(
            patient.request("POST", server.url + "/v1/x", b"{}").__aenter__()
        )
        await asyncio.sleep(0.1)
        task.cancel()  # a client that went away: the model server must see it at once
        await asyncio.wait_for(closed.wait(), 2)
        await patient.close()
    await client.close()


async def test_tls_upstream(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client = UpstreamClient(read_timeout=5, tls=ssl.create_default_context(cafile=str(cert)))
    async with serving(keep_alive, tls=server_tls) as server:
        async with client.request("POST", server.url + "/v1/x", b"{}") as response:
            assert response.status == 200 and await response.read() == b"{}"
        untrusting = UpstreamClient(read_timeout=5)  # the system CAs do not know this cert
        with pytest.raises(UpstreamUnreachable):
            async with untrusting.request("POST", server.url + "/v1/x", b"{}"):
                pass
        await untrusting.close()
    await client.close()


async def test_leaving_mid_answer_closes_the_connection() -> None:
    closed = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await reader.read()  # returns when the client closes its end
        closed.set()

    client = UpstreamClient(read_timeout=5)
    async with serving(endless) as server:
        async with client.request("POST", server.url + "/v1/x", b"{}") as response:
            async for piece in response.chunks():
                assert piece == b"first"
                break  # the proxy's client went away after the first chunk
        await asyncio.wait_for(closed.wait(), 2)
        async with client.request("POST", server.url + "/v1/x", b"{}") as response:
            assert server.connections == 2  # the cut connection was not reused
    await client.close()
