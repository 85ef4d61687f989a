"""The proxy's HTTP/1.1 client to the model server: keep-alive connections, streamed bodies.

An implementation of `transport.Transport` built on asyncio protocols and `httptools` (the
response parser uvicorn's own server uses). It does only what the proxy needs: one request
per connection at a time, Content-Length request bodies, responses with Content-Length,
chunked or read-to-close bodies, TLS for `https` upstreams (RunPod's edge), no redirects,
no cookies, no proxies.

Why own it: it is kept only while, hardened as below, it beats aiohttp (already a
dependency) by >= 1.3x on the pass-through rows of `python -m bench`, which run the proxy
with each client (`upstream_client: own | aiohttp`, `upstream/aiohttp_transport.py`) in the same
run. Measured 2026-12-02 on 2 cores shared with four other jobs (load average 4-10, wrk,
32 connections), own/aiohttp requests per second, chat / GET models:

    pass-through rows alone, one after the other, 5 s      1.33 / 1.33
    pass-through rows alone, ABBA order, 5 s runs          1.78 / 1.58, 1.17 / 1.65
    pass-through rows alone, ABBA order, 8 s runs          2.05 / 1.67, 2.23 / 1.68
    whole `python -m bench`, ABBA order, 5 s runs          1.41 / 1.94, 1.96 / 1.08
    median of the 7 runs                                   1.78 / 1.65

and, steadier on a busy machine, the proxy process's CPU time per request (3 runs each,
ABBA): aiohttp needs 1.64x / 1.86x and 1.98x / 1.94x of the own client's. Decision: the
own client stays the default; aiohttp stays selectable, and both pass
tests/proxy/test_upstream_client.py.

- Pool: at most `max_connections` connections (open or being opened); a request that finds
  none free waits at most `pool_timeout` for one (`PoolTimeout`). Idle connections are
  reused for `IDLE_SECONDS` (less than uvicorn's 5 s keep-alive); one the server has closed
  (or sent anything to) while idle is seen before reuse (a zero-timeout poll of its socket,
  as urllib3's `is_connection_dropped` does) and replaced, so nothing is written to it.
- Resending: a request whose answer never started on a reused connection is sent again once,
  on a new connection, only when it is safe to repeat (GET, HEAD, OPTIONS, TRACE, the set
  Go's net/http replays); a POST that reached the socket is never sent twice (a second
  completion would be generated and billed).
- What is sent is checked: header names must be tokens and values free of CR, LF, NUL and
  other controls (RFC 9110 5.5, 5.6.2), the method a token, everything Latin-1; `Host` is
  the URL's host[:port] without any credentials. Otherwise `InvalidUpstreamRequest`. The
  request line of a URL and the header fields found good are remembered (a proxy sends
  the same few over and over; parsing the URL was a tenth of the client's own time).
- What is read is bounded: the response head (status line and headers, interim 1xx
  included) may take `MAX_HEAD_BYTES`; more is `UpstreamDropped`. Repeated headers are
  kept as separate pairs. Bytes after a complete response are never part of it: the
  connection is spoiled and closed (aiohttp's `client_proto.py` does the same with its tail).
- Errors leave as `transport.UpstreamError` only, made where they arise: `ConnectTimeout`,
  `UpstreamUnreachable` (connect, DNS, TLS), `ReadTimeout` (no data for `read_timeout`),
  `PoolTimeout`, `UpstreamDropped` (cut, malformed, too large).
- A response used in `async with` is complete when the block ends having read it all; the
  connection then goes back to the pool. Leaving early (an exception, a cancelled task)
  closes the connection, so the model server stops generating at once.
"""

from __future__ import annotations

import asyncio
import functools
import re
import select
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

from podmgr.proxy.upstream.transport import (
    ConnectTimeout,
    InvalidUpstreamRequest,
    PoolTimeout,
    ReadTimeout,
    UpstreamDropped,
    UpstreamError,
    UpstreamUnreachable,
    media_type,
    read_body,
)

__all__ = [
    "IDLE_SECONDS",
    "MAX_HEAD_BYTES",
    "UpstreamClient",
    "UpstreamResponse",
    "check_request",
    "plain_url",
]

IDLE_SECONDS = 4.0
# 64 KiB for the whole response head: aiohttp's client allows 8190-byte lines and 128
# headers, Node.js's http module 16 KiB in all; vLLM's heads are a few hundred bytes.
MAX_HEAD_BYTES = 64 * 1024
_PAUSE_BYTES = 1 << 20  # stop reading from the socket while this much waits unconsumed
# What may stand as it is in a request target; anything else (a space, non-ASCII from a
# decoded path) is percent-encoded, and existing %XX escapes are kept, as yarl does.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.6.2
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # RFC 9110 5.5: no CR, LF, NUL, CTLs
_AUTHORITY = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space
_CHECKED_SIZE = 1024  # header fields a client remembers as good (_check_headers)
_RESENDABLE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})  # as Go's net/http replays

_Key = tuple[str, str, int]
# What a response's parser becomes once it is released: a parser nothing is fed to.
_RELEASED = httptools.HttpResponseParser(object())


class _Surplus(Exception):
    """Bytes after the complete response (raised inside the parser, caught in `_feed`)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; feeds the response of the request in progress."""

    def __init__(self, on_lost: Callable[[_Connection], None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.response: UpstreamResponse | None = None
        self.reusable = True
        self.idle_since = 0.0
        self._on_lost = on_lost
        self._poller: select.poll | None = None
        self._read_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._stop_read_timer()
        if self.response is not None:
            self.response._ended_by_close(exc)
        self._on_lost(self)

    def eof_received(self) -> bool | None:
        self.reusable = False
        return None  # the transport closes itself; the answer in progress ends there

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # bytes nobody asked for: this connection is spoiled
            self.close()
            return
        self.response._feed(data)

    # --- for the client ------------------------------------------------------------------
    def fit_for_reuse(self, now: float) -> bool:
        """Still open, not idle too long, and nothing (an EOF, stray bytes) waiting on it."""
        transport = self.transport
        if not self.reusable or transport is None or transport.is_closing():
            return False
        if now - self.idle_since >= IDLE_SECONDS:
            return False
        if self._poller is None:
            self._poller = _poller_of(transport)
        return self._poller is None or not self._poller.poll(0)

    def hold_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def go_on_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def close(self) -> None:
        self.reusable = False
        self._stop_read_timer()
        if self.transport is not None:
            self.transport.close()
        self._on_lost(self)  # frees its pool slot now, not one loop turn later

    # --- the read timeout: one timer per connection, not one per wait --------------------
    def watch_reads(self, seconds: float) -> None:
        """See that a timer looks at this connection's waiting reader within `seconds`.

        A timer per wait (two or three a request) cost a sixth of a pass-through's CPU
        time under uvloop, where each is a libuv handle made and closed. This one is made
        at the first wait and looks when it fires: a reader silent for `seconds` since its
        wait began gets `ReadTimeout`; one that waited less is looked at again when its
        time is up; with nobody waiting, the next wait makes it again."""
        if self._read_timer is None:
            loop = asyncio.get_running_loop()
            self._read_timer = loop.call_later(seconds, self._look_at_reader, seconds)

    def _look_at_reader(self, seconds: float) -> None:
        self._read_timer = None
        response = self.response
        waiter = response._waiter if response is not None else None
        if response is None or waiter is None:
            return
        left = response._waiting_since + seconds - time.monotonic()
        if left <= 0:
            _expire(waiter, seconds)
            return
        loop = asyncio.get_running_loop()
        self._read_timer = loop.call_later(left, self._look_at_reader, seconds)

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None


def _poller_of(transport: asyncio.Transport) -> select.poll | None:
    """A poll object on the connection's socket, made once per connection: `poll(0)` then
    says whether the kernel holds unread bytes or an EOF for it while it is idle (one
    system call per reuse; making the object each time was 4% of a pass-through's CPU)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return poller


class UpstreamResponse:
    """A response in progress: status and headers, then the body as it arrives."""

    def __init__(self, connection: _Connection, read_timeout: float | None) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self._connection = connection
        self._read_timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._head_bytes = 0
        self._paused = False
        self._headers_done = False
        self._complete = False
        self._failed: UpstreamError | None = None
        self._got_bytes = False
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_since = 0.0  # when the wait in progress began (the read timeout's)

    def release_parser(self) -> None:
        """Let go of the parser once nothing more is fed: it holds this response's
        methods, and the cycle left every response to the garbage collector (a tenth of a
        pass-through's CPU time under load went to collections)."""
        self._parser = _RELEASED

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower case), None if absent."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def content_type(self) -> str:
        return media_type(self.headers)

    # --- httptools callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request: not ours to read
            raise _Surplus

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self.headers = []
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
        if self._complete:  # more after the whole answer: the connection is spoiled
            self._connection.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, _Surplus):
                self._connection.close()  # the answer is whole; what followed is dropped
                return
            self._fail(UpstreamDropped(f"malformed answer from the model server: {error}"))
            self._connection.close()
            return
        if not self._headers_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(UpstreamDropped(f"answer headers exceed {MAX_HEAD_BYTES} bytes"))
                self._connection.close()

    def _ended_by_close(self, exc: Exception | None) -> None:
        if self._complete:
            return
        if self._headers_done and self._reads_to_close():
            self._complete = True  # the body was "everything until the connection closed"
            self._wake()
            return
        reason = f": {exc}" if exc else ""
        self._fail(UpstreamDropped(f"the model server closed the connection{reason}"))

    def _reads_to_close(self) -> bool:
        return self.header("content-length") is None and "chunked" not in (
            self.header("transfer-encoding") or ""
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
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        if self._read_timeout is not None:
            self._waiting_since = time.monotonic()
            self._connection.watch_reads(self._read_timeout)
        try:
            await waiter
        finally:
            self._waiter = None

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
        if self._complete and limit is None:  # all here already: no iterator to run
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._buffered = 0
            if self._paused:
                self._paused = False
                self._connection.go_on_reading()
            return data
        return await read_body(self.chunks(), limit)


def _expire(waiter: asyncio.Future[None], seconds: float) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout(f"no data from the model server for {seconds:g} s"))


def _encode_request(
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    checked: set[tuple[str, str]],
) -> tuple[_Key, bytes]:
    """The pool key and the bytes of the request; `InvalidUpstreamRequest` if it cannot be
    sent as given. `checked`: header fields already found good (kept by the client)."""
    key, start = _request_start(method, url)
    _check_headers(headers, checked)
    head = [start]
    head += [f"{name}: {value}\r\n" for name, value in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(body)}\r\n")
    return key, "".join(head).encode("latin-1") + b"\r\n" + body


@functools.lru_cache(maxsize=256)
def _request_start(method: str, url: str) -> tuple[_Key, str]:
    """The pool key and the request line with its Host header, for `method` and `url`
    (remembered: a proxy sends to a few URLs over and over, and parsing one took a tenth
    of the client's CPU time per request; a refused one raises again each time)."""
    parts = urlsplit(url)
    scheme = parts.scheme
    authority = parts.netloc.rpartition("@")[2]  # host[:port], never user:password@
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as error:
        raise InvalidUpstreamRequest(f"bad port in the upstream URL: {error}") from None
    host = parts.hostname or ""
    if scheme not in ("http", "https") or not host or not _AUTHORITY.fullmatch(authority):
        raise InvalidUpstreamRequest("the upstream URL needs http(s)://host[:port]")
    if not _TOKEN.fullmatch(method):
        raise InvalidUpstreamRequest("the method is not an HTTP token")
    start = f"{method} {_target(parts.path, parts.query)} HTTP/1.1\r\nHost: {authority}\r\n"
    return (scheme, host, port), start


def _check_headers(headers: Mapping[str, str], checked: set[tuple[str, str]]) -> None:
    """`check_request`'s test of the header fields, skipping those in `checked` and adding
    the ones found good (most requests repeat the same few; at most `_CHECKED_SIZE`)."""
    for field in headers.items():
        if field not in checked:
            _check_field(*field)
            if len(checked) >= _CHECKED_SIZE:
                checked.clear()
            checked.add(field)


def _target(path: str, query: str) -> str:
    """The request target, percent-encoded where needed (see `_PATH_SAFE`)."""
    target = quote(path, safe=_PATH_SAFE) if path else "/"
    return target + (f"?{quote(query, safe=_QUERY_SAFE)}" if query else "")


def plain_url(url: str) -> str:
    """`url` without credentials and with its target encoded as this client sends it."""
    parts = urlsplit(url)
    authority = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{authority}{_target(parts.path, parts.query)}"


def check_request(method: str, headers: Mapping[str, str]) -> None:
    """`InvalidUpstreamRequest` unless the method and header names are tokens and the
    values hold no CR, LF, NUL or other controls (RFC 9110 5.5, 5.6.2), all in Latin-1."""
    if not _TOKEN.fullmatch(method):
        raise InvalidUpstreamRequest("the method is not an HTTP token")
    for name, value in headers.items():
        _check_field(name, value)


def _check_field(name: str, value: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise InvalidUpstreamRequest(f"header name {name[:40]!r} is not an HTTP token")
    if not _FIELD_VALUE.fullmatch(value):
        raise InvalidUpstreamRequest(
            f"header {name!r} holds a character HTTP does not allow (CR, LF, non-Latin-1)"
        )


class _Exchange(AbstractAsyncContextManager[UpstreamResponse]):
    """`async with client.request(...) as response`: see the module docstring."""

    def __init__(
        self, client: UpstreamClient, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> None:
        self._client = client
        self._args = (method, url, body, headers)
        self._response: UpstreamResponse | None = None
        self._key: _Key | None = None

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
        response.release_parser()
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
        pool_timeout: float = 30.0,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.pool_timeout = pool_timeout
        self._max = max_connections
        self._opened = 0  # connections open or being opened: never more than `_max`
        self._idle: dict[_Key, list[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._tls = tls  # default: the system's trusted CAs, made on first use
        self._checked: set[tuple[str, str]] = set()  # header fields found good

    def request(
        self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> _Exchange:
        return _Exchange(self, method, url, body, headers or {})

    async def close(self) -> None:
        for connection in list(self._all):
            connection.close()
        self._all.clear()
        self._idle.clear()

    # --- sending -------------------------------------------------------------------------
    async def _send(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[_Key, UpstreamResponse]:
        key, request = _encode_request(method, url, body, headers, self._checked)
        resent = False
        while True:
            connection, fresh = await self._acquire(key, reuse=not resent)
            response = UpstreamResponse(connection, self.read_timeout)
            connection.response = response
            assert connection.transport is not None
            connection.transport.write(request)
            try:
                await response._wait_headers()
            except UpstreamDropped:
                connection.response = None
                connection.close()
                if fresh or resent or response._got_bytes or method not in _RESENDABLE:
                    raise
                resent = True  # a reused connection that failed before any answer: once more
                continue
            except BaseException:
                connection.response = None
                connection.close()
                raise
            if method == "HEAD":  # a length but no body follows
                response._complete = True
                connection.reusable = False
            return key, response

    # --- the pool ------------------------------------------------------------------------
    async def _acquire(self, key: _Key, reuse: bool) -> tuple[_Connection, bool]:
        """A connection for `key` and whether it is new; waits for a slot when all are taken."""
        deadline: float | None = None
        while True:
            if reuse:
                connection = self._reuse(key)
                if connection is not None:
                    return connection, False
            if self._opened < self._max or self._close_an_idle():
                return await self._connect(key), True
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.pool_timeout
            await self._wait_for_slot(deadline)

    def _reuse(self, key: _Key) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.fit_for_reuse(now):
                return connection
            self._forget(connection)
        return None

    def _close_an_idle(self) -> bool:
        """Close one idle connection (to any upstream) to free its slot; False if none."""
        for idle in self._idle.values():
            while idle:
                connection = idle.pop(0)  # the longest idle first
                if connection in self._all:  # not one already closed (its slot is free)
                    self._forget(connection)
                    return True
        return False

    async def _wait_for_slot(self, deadline: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken but leaving: the next waiter gets the turn
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            if isinstance(error, TimeoutError):
                raise PoolTimeout(
                    f"no connection to the model server became free in {self.pool_timeout:g} s"
                ) from None
            raise

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, key: _Key) -> _Connection:
        scheme, host, port = key
        tls = self._tls_context() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        self._opened += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self._forget),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                )
        except BaseException as error:
            self._opened -= 1
            self._wake_one()
            if isinstance(error, TimeoutError):  # asyncio's timer, or the kernel's ETIMEDOUT
                raise ConnectTimeout(
                    f"connecting to {host}:{port} took over {self.connect_timeout:g} s"
                ) from None
            if isinstance(error, OSError):  # refused, DNS, TLS verification
                raise UpstreamUnreachable(f"cannot connect to {host}:{port}: {error}") from error
            raise
        self._all.add(connection)  # its slot is freed in `_forget`, whoever closes it
        return connection

    def _release(self, key: _Key, connection: _Connection) -> None:
        if not connection.reusable or connection.transport is None:
            connection.close()
            return
        if connection.transport.is_closing():
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(key, []).append(connection)
        self._wake_one()

    def _forget(self, connection: _Connection) -> None:
        if connection not in self._all:
            return
        self._all.discard(connection)
        self._opened -= 1
        connection.close()
        self._wake_one()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls
