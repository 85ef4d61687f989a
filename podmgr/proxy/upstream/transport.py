"""What the proxy needs from an HTTP client to its upstreams: one small interface, one error tree.

The proxy sends a request and reads a streamed response; everything else about HTTP
(connections, pooling, TLS, parsing) belongs to an implementation of `Transport`. The
proxy's own client (`upstream.client.UpstreamClient`) is one; a test can hand the proxy an
in-process fake, and the several-upstreams feature adds others behind the same interface.

Every failure below HTTP leaves a transport as one of the errors of
`podmgr/proxy/transport_errors.py` (the shape of httpx's `_exceptions.py`; re-exported
here), so callers catch `UpstreamError` and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from podmgr.proxy.transport_errors import (
    ConnectTimeout,
    InvalidUpstreamRequest,
    PoolTimeout,
    ReadTimeout,
    UpstreamDropped,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

__all__ = [
    "ConnectTimeout",
    "InvalidUpstreamRequest",
    "PoolTimeout",
    "ReadTimeout",
    "StreamedResponse",
    "Transport",
    "UpstreamDropped",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "media_type",
    "read_body",
]


class StreamedResponse(Protocol):
    """A response in progress: status and headers first, then the body as it arrives.

    `headers` holds every header line in order with lower-cased names; a repeated header
    (two `Set-Cookie`) stays two entries.
    """

    status: int
    headers: list[tuple[str, str]]

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased ("" when absent)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body, piece by piece as it arrives."""
        ...

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (or its first `limit` bytes)."""
        ...


class Transport(Protocol):
    """Sends one request and hands back its streamed response inside `async with`.

    Leaving the `async with` block before the body was read whole (an exception, a
    cancelled task) must abandon the request upstream at once, so a model server stops
    generating for a client that left.
    """

    def request(
        self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> AbstractAsyncContextManager[StreamedResponse]: ...

    async def close(self) -> None: ...


def media_type(headers: list[tuple[str, str]]) -> str:
    """The first `content-type`'s media type without parameters, lower-cased ("" if none):
    what every `StreamedResponse.content_type` answers."""
    for name, value in headers:
        if name == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return ""


async def read_body(chunks: AsyncIterator[bytes], limit: int | None = None) -> bytes:
    """A body read from `chunks` whole, or its first `limit` bytes (the rest left unread):
    what every `StreamedResponse.read` answers."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if limit is not None and size >= limit:
            break
    data = b"".join(parts)
    return data if limit is None else data[:limit]
