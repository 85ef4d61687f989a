"""The proxy's HTTP/1.1 client to the model server: keep-alive connections, streamed bodies.

Built on asyncio protocols and `httptools` (the response parser uvicorn's own server uses)
because the client is most of a pass-through request's cost: in a minimal forwarder
benchmarked on the same machine (`bench/`-style, wrk, 32 connections) this client reached
0.60x of calling the upstream directly where aiohttp reached 0.22x, aiosonic 0.22x and
httpx 0.02x. It does only what the proxy needs: one request per connection at a time,
Content-Length request bodies, responses with Content-Length, chunked or read-to-close
bodies, TLS for `https` upstreams (RunPod's edge), no redirects, no cookies, no proxies.

- Idle connections are reused for `IDLE_SECONDS` (less than uvicorn's 5 s keep-alive); a
  request on a reused connection that the server closed before answering is retried once on
  a new connection (the server never saw it), as urllib3 and Go's net/http do.
- Errors: `UpstreamUnreachable` (could not connect), `UpstreamDropped` (the connection
  ended or sent nonsense before the response was complete), `TimeoutError` (connecting
  took longer than `connect_timeout`, or no data for `read_timeout`).
- A response used in `async with` is complete when the block ends having read it all; the
  connection then goes back to the pool. Leaving early (an exception, a cancelled task)
  closes the connection, so the model server stops generating at once.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote, urlsplit

import httptools

from podmgr.proxy.upstream.transport import UpstreamDropped, UpstreamError, UpstreamUnreachable

__all__ = [
    "IDLE_SECONDS",
    "UpstreamClient",
    "UpstreamDropped",
    "UpstreamError",
    "UpstreamResponse",
    "UpstreamUnreachable",
]

IDLE_SECONDS = 4.0
_PAUSE_BYTES = 1 << 20  # stop reading from the socket while this much waits unconsumed
# What may stand as it is in a request target; anything else (a space, non-ASCII from a
# decoded path) is percent-encoded, and existing %XX escapes are kept, as yarl does.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


class _Connection(asyncio.Protocol):
    """One keep-alive connection; feeds the response of the request in progress."""

    def __init__(self, on_lost: Callable[[_Connection], None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.response: UpstreamResponse | None = None
        self.reusable = True
        self.idle_since = 0.0
        self._on_lost = on_lost

    # --- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self.response is not None:
            self.response._ended_by_close()
        self._on_lost(self)

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # bytes nobody asked for: this connection is spoiled
            self.close()
            return
        self.response._feed(data)

    def hold_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def go_on_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    """A response in progress: status and headers, then the body as it arrives."""

    def __init__(self, connection: _Connection, read_timeout: float | None) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._connection = connection
        self._read_timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._headers_done = False
        self._complete = False
        self._failed: UpstreamError | None = None
        self._got_bytes = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    # --- httptools callbacks -------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self.headers = {}
            return
        self.status = status
        self._headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _PAUSE_BYTES and not self._paused:
            self._paused = True
            self._connection.hold_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self._headers_done:  # the end of an interim answer
            return
        self._complete = True
        if not self._parser.should_keep_alive():
            self._connection.reusable = False
        self._wake()

    # --- fed by the connection -----------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(UpstreamDropped(f"malformed answer from the model server: {error}"))
            self._connection.close()

    def _ended_by_close(self) -> None:
        if self._complete:
            return
        if self._headers_done and self._reads_to_close():
            self._complete = True  # the body was "everything until the connection closed"
            self._wake()
            return
        self._fail(UpstreamDropped("the model server closed the connection"))

    def _reads_to_close(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        )

    def _fail(self, error: UpstreamError) -> None:
        if self._failed is None and not self._complete:
            self._failed = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = (
            loop.call_later(self._read_timeout, _expire, waiter)
            if self._read_timeout is not None
            else None
        )
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    # --- for the caller ------------------------------------------------------------------
    async def _wait_headers(self) -> None:
        while not self._headers_done:
            if self._failed is not None:
                raise self._failed
            await self._wait()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, piece by piece as it arrives."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _PAUSE_BYTES // 2:
                    self._paused = False
                    self._connection.go_on_reading()
                yield chunk
                continue
            if self._complete:
                return
            if self._failed is not None:
                raise self._failed
            await self._wait()

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, or its first `limit` bytes (the rest is left unread)."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            parts.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit:
                break
        data = b"".join(parts)
        return data if limit is None else data[:limit]


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no data from the model server in time"))


class _Exchange:
    """`async with client.request(...) as response`: see the module docstring."""

    def __init__(self, client: UpstreamClient, method: str, url: str, body: bytes, headers: Any):
        self._client = client
        self._args = (method, url, body, headers)
        self._response: UpstreamResponse | None = None
        self._key: tuple[str, str, int] | None = None

    async def __aenter__(self) -> UpstreamResponse:
        self._key, self._response = await self._client._send(*self._args)
        return self._response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        response = self._response
        if response is None or self._key is None:
            return
        connection = response._connection
        connection.response = None
        if exc_type is None and response._complete and not response._chunks:
            self._client._release(self._key, connection)
        else:
            connection.close()


class UpstreamClient:
    """A pool of keep-alive connections per upstream (scheme, host, port)."""

    def __init__(
        self,
        connect_timeout: float = 10.0,
        read_timeout: float | None = None,
        max_connections: int = 256,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._all: set[_Connection] = set()
        self._tls = tls  # default: the system's trusted CAs, made on first use

    def request(
        self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> _Exchange:
        return _Exchange(self, method, url, body, headers or {})

    async def close(self) -> None:
        for connection in list(self._all):
            connection.close()
        self._all.clear()
        self._idle.clear()

    # --- inside --------------------------------------------------------------------------
    async def _send(
        self, method: str, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[tuple[str, str, int], UpstreamResponse]:
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        path = quote(parts.path, safe=_PATH_SAFE) if parts.path else "/"
        target = path + (f"?{quote(parts.query, safe=_QUERY_SAFE)}" if parts.query else "")
        head = [f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body)}\r\n")
        request = "".join(head).encode("latin-1") + b"\r\n" + body
        for attempt in range(2):
            connection = self._reuse(key) if attempt == 0 else None
            fresh = connection is None
            if connection is None:
                connection = await self._connect(key)
            response = UpstreamResponse(connection, self.read_timeout)
            connection.response = response
            assert connection.transport is not None
            connection.transport.write(request)
            try:
                await response._wait_headers()
                if method == "HEAD":  # a length but no body follows
                    response._complete = True
                    connection.reusable = False
            except UpstreamDropped:
                connection.response = None
                connection.close()
                if fresh or response._got_bytes:
                    raise
                continue  # a reused connection the server had closed: once more, on a new one
            except BaseException:
                connection.response = None
                connection.close()
                raise
            return key, response
        raise AssertionError("unreachable")  # pragma: no cover

    def _reuse(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.reusable and now - connection.idle_since < IDLE_SECONDS:
                return connection
            self._forget(connection)
        return None

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        tls = self._tls_context() if scheme == "https" else None
        await self._slots.acquire()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self._forget),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                )
        except TimeoutError:
            self._slots.release()
            raise
        except OSError as error:
            self._slots.release()
            raise UpstreamUnreachable(f"cannot connect to {host}:{port}: {error}") from error
        except BaseException:
            self._slots.release()
            raise
        self._all.add(connection)  # its slot is freed in `_forget`, whoever closes it
        return connection

    def _release(self, key: tuple[str, str, int], connection: _Connection) -> None:
        if not connection.reusable or connection.transport is None:
            connection.close()
            return
        if connection.transport.is_closing():
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(key, []).append(connection)

    def _forget(self, connection: _Connection) -> None:
        connection.close()
        if connection in self._all:
            self._all.discard(connection)
            self._slots.release()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls
