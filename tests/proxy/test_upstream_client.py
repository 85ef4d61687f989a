"""The proxy's upstream HTTP client against small real servers on loopback ports.

Each server is a raw asyncio server that answers with exact bytes, so the tests control
what a model server (or RunPod's edge) could send: keep-alive, chunked and read-to-close
bodies, a connection closed while idle or mid-answer, garbage, silence, and TLS; and what
reached them (a POST must never arrive twice, a header never split in two).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from podmgr.proxy.upstream.aiohttp_transport import AiohttpTransport
from podmgr.proxy.upstream.client import UpstreamClient
from podmgr.proxy.upstream.transport import (
    ConnectTimeout,
    InvalidUpstreamRequest,
    PoolTimeout,
    ReadTimeout,
    Transport,
    UpstreamDropped,
    UpstreamUnreachable,
)
from podmgr.sim.process import free_port

from .proxykit import self_signed

Make = Callable[..., Transport]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@pytest.fixture(params=[UpstreamClient, AiohttpTransport], ids=["own", "aiohttp"])
def make(request: pytest.FixtureRequest) -> Make:
    """Each test runs against both transports: they promise the same behaviour."""
    return request.param  # type: ignore[no-any-return]


class Server:
    """A loopback server; counts connections and remembers whether clients hung up."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.url = ""
        self.hung_up = asyncio.Event()  # set when the server has closed a connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()
            await writer.wait_closed()
            self.hung_up.set()


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


async def test_keep_alive_reuses_one_connection(make: Make) -> None:
    client = make(read_timeout=5)
    async with serving(keep_alive) as server:
        for _ in range(5):
            async with client.request("POST", server.url + "/v1/x", b"{}") as response:
                assert response.status == 200 and await response.read() == b"{}"
                assert response.content_type == "application/json"
        assert server.connections == 1
    await client.close()


async def test_an_interim_100_continue_is_skipped(make: Make) -> None:
    async def continues(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await keep_alive_after(b"HTTP/1.1 100 Continue\r\n\r\n" + OK, reader, writer)

    client = make(read_timeout=5)
    async with serving(continues) as server:
        for _ in range(2):
            async with client.request("POST", server.url + "/v1/x", b"{}") as response:
                assert response.status == 200 and await response.read() == b"{}"
        assert server.connections == 1
    await client.close()


async def test_the_request_target_is_encoded(make: Make) -> None:
    seen: list[bytes] = []

    async def records(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await read_request(reader)).split(b"\r\n", 1)[0])
        writer.write(OK)

    client = make(read_timeout=5)
    async with serving(records) as server:
        url = server.url + "/v1/models x/ü%41?q=a b"
        async with client.request("GET", url) as response:
            assert response.status == 200
    assert seen == [b"GET /v1/models%20x/%C3%BC%41?q=a%20b HTTP/1.1"]
    await client.close()


async def test_chunked_and_read_to_close_bodies(make: Make) -> None:
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

    client = make(read_timeout=5)
    async with serving(chunked) as server:
        async with client.request("GET", server.url + "/s") as response:
            pieces = [piece async for piece in response.chunks()]
        assert pieces == [b"data: 1\n\n", b"data: [DONE]\n\n"]  # one by one, as sent
    async with serving(to_close) as server, client.request("GET", server.url + "/c") as response:
        assert await response.read() == b"all of it"
    await client.close()


def closes_when_reused(seen: list[bytes]) -> Handler:
    """Answers one request, then reads the next and hangs up without answering (as a
    server does when its keep-alive timer fires just as a request arrives)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        await asyncio.sleep(0.05)  # so concurrent first requests take a connection each
        writer.write(OK)
        await writer.drain()
        seen.append(await read_request(reader))

    return handler


async def test_a_post_the_server_read_is_never_sent_again(make: Make) -> None:
    seen: list[bytes] = []
    client = make(read_timeout=5)
    async with serving(closes_when_reused(seen)) as server:
        async with client.request("POST", server.url + "/v1/x", b"{}") as response:
            assert await response.read() == b"{}"
        with pytest.raises(UpstreamDropped):  # it may have been generated (and billed)
            async with client.request("POST", server.url + "/v1/x", b"{}"):
                pass
        assert len(seen) == 2 and server.connections == 1
    await client.close()


async def test_a_get_the_server_read_is_sent_again_once(make: Make) -> None:
    seen: list[bytes] = []
    client = make(read_timeout=5)
    async with serving(closes_when_reused(seen)) as server:
        for _ in range(2):
            async with client.request("GET", server.url + "/v1/models") as response:
                assert await response.read() == b"{}"
        assert len(seen) == 3 and server.connections == 2  # again, on a new connection
    await client.close()


async def test_an_idle_connection_the_server_closed_is_not_written_to(make: Make) -> None:
    seen: list[bytes] = []

    async def answers_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(OK)  # keep-alive promised, then the connection is closed while idle

    client = make(read_timeout=5)
    async with serving(answers_once) as server:
        async with client.request("POST", server.url + "/v1/x", b"{}") as response:
            assert await response.read() == b"{}"
        await asyncio.wait_for(server.hung_up.wait(), 5)
        async with client.request("POST", server.url + "/v1/x", b"{}") as response:
            assert await response.read() == b"{}"
        assert len(seen) == 2 and server.connections == 2
    await client.close()


async def test_the_resend_takes_a_new_connection_even_with_more_idle_ones(make: Make) -> None:
    seen: list[bytes] = []

    async def get(client: Transport, url: str) -> bytes:
        async with client.request("GET", url) as response:
            return await response.read()

    if make is AiohttpTransport:
        pytest.skip("aiohttp resends on the next pooled connection, which may be stale too")
    client = make(read_timeout=5)
    async with serving(closes_when_reused(seen)) as server:
        url = server.url + "/v1/models"
        assert list(await asyncio.gather(get(client, url), get(client, url))) == [b"{}"] * 2
        assert await get(client, url) == b"{}"  # a stale idle connection, then a new one
        assert server.connections == 3
    await client.close()


async def test_a_fresh_connection_that_fails_is_not_retried(make: Make) -> None:
    async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    client = make(read_timeout=5)
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
async def test_cut_or_malformed_answers_are_dropped(answer: bytes, make: Make) -> None:
    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    client = make(read_timeout=5)
    async with serving(bad) as server:
        with pytest.raises(UpstreamDropped):
            async with client.request("POST", server.url + "/v1/x", b"{}") as response:
                await response.read()
    await client.close()


async def test_refused_connection_is_unreachable(make: Make) -> None:
    client = make(read_timeout=5)
    with pytest.raises(UpstreamUnreachable):
        async with client.request("GET", f"http://127.0.0.1:{free_port()}/v1/models"):
            pass
    await client.close()


async def test_silence_is_a_timeout_and_leaving_closes_the_connection(make: Make) -> None:
    arrived, closed = asyncio.Event(), asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        arrived.set()
        await reader.read()  # returns when the client closes its end
        closed.set()

    client = make(read_timeout=0.2)
    async with serving(silent) as server:
        with pytest.raises(ReadTimeout):
            async with client.request("POST", server.url + "/v1/x", b"{}"):
                pass
        # Generous waits (a loaded machine), returning as soon as the server saw the event.
        await asyncio.wait_for(closed.wait(), 30)
        arrived.clear()
        closed.clear()
        patient = make(read_timeout=30)
        task = asyncio.ensure_future(
            patient.request("POST", server.url + "/v1/x", b"{}").__aenter__()
        )
        await asyncio.wait_for(arrived.wait(), 30)  # the request reached the server
        task.cancel()  # a client that went away: the model server must see it
        await asyncio.wait_for(closed.wait(), 30)
        await patient.close()
    await client.close()


async def test_the_read_timeout_counts_silence_not_the_length_of_an_answer(make: Make) -> None:
    """On one kept-alive connection: a stream longer than the read timeout whose chunks keep
    coming is read whole; the next request, met with silence, times out."""
    chunks = 25  # one every 0.1 s: 2.5 s in all, against a read timeout of 2 s

    async def steady_then_silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(chunks):
            await asyncio.sleep(0.1)
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await read_request(reader)  # the second request: never answered
        await reader.read()

    client = make(read_timeout=2.0)
    async with serving(steady_then_silent) as server:
        async with client.request("POST", server.url + "/v1/x", b"{}") as response:
            assert await response.read() == b"x" * chunks
        with pytest.raises(ReadTimeout):
            async with client.request("POST", server.url + "/v1/x", b"{}"):
                pass
        assert server.connections == 1
    await client.close()


async def test_tls_upstream(tmp_path: Path, make: Make) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client = make(read_timeout=5, tls=ssl.create_default_context(cafile=str(cert)))
    async with serving(keep_alive, tls=server_tls) as server:
        async with client.request("POST", server.url + "/v1/x", b"{}") as response:
            assert response.status == 200 and await response.read() == b"{}"
        untrusting = make(read_timeout=5)  # the system CAs do not know this cert
        with pytest.raises(UpstreamUnreachable):
            async with untrusting.request("POST", server.url + "/v1/x", b"{}"):
                pass
        await untrusting.close()
    await client.close()


async def test_leaving_mid_answer_closes_the_connection(make: Make) -> None:
    closed = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await reader.read()  # returns when the client closes its end
        closed.set()

    client = make(read_timeout=5)
    async with serving(endless) as server:
        async with client.request("POST", server.url + "/v1/x", b"{}") as response:
            async for piece in response.chunks():
                assert piece == b"first"
                break  # the proxy's client went away after the first chunk
        await asyncio.wait_for(closed.wait(), 30)  # generous: returns once the server saw it
        async with client.request("POST", server.url + "/v1/x", b"{}") as response:
            assert server.connections == 2  # the cut connection was not reused
    await client.close()


async def test_waiting_for_a_free_connection_is_bounded(make: Make) -> None:
    release = asyncio.Event()

    async def holds_the_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
        await release.wait()  # the answer is under way: its connection stays taken
        writer.write(b"1\r\n}\r\n0\r\n\r\n")
        await keep_alive(reader, writer)

    client = make(read_timeout=30, max_connections=1, pool_timeout=0.3)
    async with serving(holds_the_first) as server, client.request("GET", server.url) as response:
        with pytest.raises(PoolTimeout):
            async with client.request("GET", server.url + "/b"):
                pass
        release.set()
        assert await response.read() == b"{}"
    await client.close()


async def test_a_freed_connection_goes_to_a_waiting_request(make: Make) -> None:
    async def get(client: Transport, url: str) -> bytes:
        async with client.request("GET", url) as response:
            return await response.read()

    client = make(read_timeout=5, max_connections=1, pool_timeout=30)
    async with serving(keep_alive) as server:
        url = server.url + "/v1/models"
        three = asyncio.gather(*(get(client, url) for _ in range(3)))
        assert await asyncio.wait_for(three, 20) == [b"{}"] * 3, "requests waited for a slot"
        assert server.connections == 1
    await client.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Test": "a\r\nX-Injected: 1"},
        {"X-Test": "a\nb"},
        {"X-Test": "a\x00b"},
        {"X Bad": "a"},
        {"X-Test:": "a"},
        {"X-Test": "\u20ac"},  # not Latin-1
    ],
    ids=["crlf", "lf", "nul", "space-in-name", "colon-in-name", "not-latin-1"],
)
async def test_bad_request_headers_are_refused_before_sending(
    headers: dict[str, str], make: Make
) -> None:
    seen: list[bytes] = []

    async def records(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read())

    client = make(read_timeout=5)
    async with serving(records) as server:
        with pytest.raises(InvalidUpstreamRequest):
            async with client.request("POST", server.url + "/v1/x", b"{}", headers):
                pass
    assert b"X-Injected" not in b"".join(seen)
    await client.close()


async def test_a_client_that_sent_good_headers_still_refuses_bad_ones() -> None:
    """The own client remembers header fields it found good and request lines it made:
    neither lets a bad field or URL through, however often it is asked."""
    client = UpstreamClient(read_timeout=5)
    async with serving(keep_alive) as server:
        for _ in range(2):
            async with client.request("POST", server.url + "/v1/x", b"{}", {"X-Test": "a"}):
                pass
            with pytest.raises(InvalidUpstreamRequest):
                bad = {"X-Test": "a\r\nX-Injected: 1"}
                async with client.request("POST", server.url + "/v1/x", b"{}", bad):
                    pass
            with pytest.raises(InvalidUpstreamRequest):
                async with client.request("POST", "http://127.0.0.1:99999/v1/x", b"{}"):
                    pass
    await client.close()


async def test_the_host_header_carries_no_credentials(make: Make) -> None:
    seen: list[bytes] = []

    async def records(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(OK)

    client = make(read_timeout=5)
    async with serving(records) as server:
        url = server.url.replace("://", "://user:secret@") + "/v1/models"
        async with client.request("GET", url) as response:
            assert response.status == 200
        host = server.url.split("://")[1].encode()
    assert b"\r\nHost: " + host + b"\r\n" in seen[0] and b"secret" not in seen[0]
    await client.close()


async def test_an_oversized_response_head_is_dropped(make: Make) -> None:
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n")
        writer.write(b"Content-Length: 2\r\n\r\n{}")
        await writer.drain()
        await reader.read()

    client = make(read_timeout=5)
    async with serving(huge) as server:
        with pytest.raises(UpstreamDropped):
            async with client.request("GET", server.url + "/v1/models"):
                pass
    await client.close()


async def test_repeated_headers_stay_apart(make: Make) -> None:
    async def cookies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )

    client = make(read_timeout=5)
    async with serving(cookies) as server, client.request("GET", server.url) as response:
        assert await response.read() == b"{}"
        assert [v for k, v in response.headers if k == "set-cookie"] == ["a=1", "b=2"]
        assert response.content_type == "application/json"
    await client.close()


async def test_bytes_after_a_complete_answer_are_not_part_of_it(make: Make) -> None:
    extra = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]"

    async def says_too_much(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await keep_alive_after(OK + extra, reader, writer)

    client = make(read_timeout=5)
    async with serving(says_too_much) as server:
        for _ in range(2):
            async with client.request("GET", server.url + "/v1/models") as response:
                assert await response.read() == b"{}"
        assert server.connections == 2  # the spoiled connection was not reused
    await client.close()


async def test_a_connect_that_hangs_is_a_connect_timeout(
    monkeypatch: pytest.MonkeyPatch, make: Make
) -> None:
    async def hangs(*_args: object, **_kwargs: object) -> None:
        await asyncio.sleep(3600)

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "create_connection", hangs)
    monkeypatch.setattr(loop, "sock_connect", hangs)  # aiohttp connects the socket itself
    client = make(connect_timeout=0.2, read_timeout=5)
    with pytest.raises(ConnectTimeout):
        async with client.request("GET", f"http://127.0.0.1:{free_port()}/v1/models"):
            pass
    await client.close()


async def test_an_idle_connection_to_another_upstream_gives_way(make: Make) -> None:
    client = make(read_timeout=5, max_connections=1, pool_timeout=30)
    async with serving(keep_alive) as first, serving(keep_alive) as second:
        for server in (first, second, first):
            request = client.request("GET", server.url + "/v1/models")
            async with asyncio.timeout(20), request as response:  # waits for no free slot
                assert await response.read() == b"{}"
    await client.close()
