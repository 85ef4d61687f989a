"""A `transport.Transport` on aiohttp's client: the same interface and error tree as
`client.UpstreamClient`, passing the same tests (tests/proxy/test_upstream_client.py).

aiohttp already bounds what it reads (8190-byte header lines, 128 headers), keeps repeated
headers (`raw_headers`), never resends a POST (only its idempotent methods on a reused
connection) and closes a connection that sent bytes after a response. Added here:
- the request check of `client` (tokens, no CR/LF/NUL, Latin-1), and credentials
  taken out of the URL (aiohttp would send them as Basic auth);
- a pool wait of its own (a semaphore of `max_connections` with `pool_timeout`), since
  aiohttp's `connect` timeout covers waiting for a slot and connecting alike and its
  errors cannot tell them apart;
- aiohttp's exceptions mapped once (`_translated`) onto the tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType

import aiohttp
from yarl import URL

from podmgr.proxy.upstream.client import IDLE_SECONDS, check_request, plain_url
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

__all__ = ["AiohttpTransport"]


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """aiohttp's and asyncio's errors as the transport tree (the one place they are mapped)."""
    try:
        yield
    except UpstreamError:
        raise
    except aiohttp.ConnectionTimeoutError as error:
        raise ConnectTimeout(f"connecting to the model server timed out: {error}") from None
    except (aiohttp.ServerTimeoutError, TimeoutError) as error:
        raise ReadTimeout(f"no data from the model server in time: {error}") from None
    except aiohttp.ClientConnectorError as error:  # refused, DNS, TLS verification
        raise UpstreamUnreachable(f"cannot connect to the model server: {error}") from error
    except aiohttp.InvalidURL as error:
        raise InvalidUpstreamRequest(f"bad upstream URL: {error}") from None
    except (aiohttp.ClientError, OSError) as error:  # cut, malformed, too large
        raise UpstreamDropped(f"the model server failed mid-answer: {error!r}") from error


class _Response:
    """An aiohttp response seen through `transport.StreamedResponse`."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.status = response.status
        self.headers: list[tuple[str, str]] = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in response.raw_headers
        ]
        self._response = response

    @property
    def content_type(self) -> str:
        return media_type(self.headers)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, piece by piece as it arrives."""
        with _translated():
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, or its first `limit` bytes (the rest is left unread)."""
        return await read_body(self.chunks(), limit)


class _Exchange(AbstractAsyncContextManager[_Response]):
    def __init__(
        self,
        owner: AiohttpTransport,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
    ) -> None:
        self._owner = owner
        self._args = (method, url, body, headers)
        self._response: aiohttp.ClientResponse | None = None
        self._slot = False

    async def __aenter__(self) -> _Response:
        method, url, body, headers = self._args
        check_request(method, headers)
        # Credentials are never sent (neither in Host nor as Basic auth); the target is
        # encoded as UpstreamClient sends it.
        target = URL(plain_url(url), encoded=True)
        owner = self._owner
        await owner._take_slot()
        self._slot = True
        try:
            with _translated():
                self._response = await owner._session().request(
                    method, target, data=body or None, headers=dict(headers)
                )
        except BaseException:
            self._give_back()
            raise
        return _Response(self._response)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        response = self._response
        if response is not None:
            if exc_type is None and response.content.is_eof():
                response.release()
            else:
                response.close()  # leaving early: the model server must see it at once
        self._give_back()

    def _give_back(self) -> None:
        if self._slot:
            self._slot = False
            self._owner._slots.release()


class AiohttpTransport:
    """aiohttp's keep-alive pool behind `transport.Transport`; see the module docstring."""

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
        self._tls: ssl.SSLContext | bool = tls if tls is not None else True
        self._slots = asyncio.Semaphore(max_connections)
        self._client: aiohttp.ClientSession | None = None

    def request(
        self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> _Exchange:
        return _Exchange(self, method, url, body, headers or {})

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _session(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running loop."""
        if self._client is None:
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max,
                    limit_per_host=0,
                    ssl=self._tls,
                    keepalive_timeout=IDLE_SECONDS,
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=None,
                    sock_connect=self.connect_timeout,
                    sock_read=self.read_timeout,
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._client

    async def _take_slot(self) -> None:
        try:
            async with asyncio.timeout(self.pool_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeout(
                f"no connection to the model server became free in {self.pool_timeout:g} s"
            ) from None
