"""The error tree of a transport to an upstream, below everything that maps it.

It lives apart from `upstream/transport.py` (which re-exports it) so that
`openai_errors.py`, the one place a failure becomes what a client is told, can name these
errors without importing the upstream side, which itself imports `openai_errors.py`.

Every failure below HTTP leaves a transport (`upstream/transport.py`) as one of these
(the shape of httpx's `_exceptions.py`), so callers catch `UpstreamError` and nothing else:

    UpstreamError                  the upstream could not be used for this request
    ├── UpstreamTimeout            a time limit passed
    │   ├── ConnectTimeout         connecting took longer than the connect timeout
    │   ├── ReadTimeout            no data from the upstream for the read timeout
    │   └── PoolTimeout            no connection became free in time
    ├── UpstreamUnreachable        no connection could be made (refused, DNS, TLS)
    ├── UpstreamDropped            the connection ended, or the answer was malformed or too
    │                              large, before the response was complete
    └── InvalidUpstreamRequest     the request itself cannot be sent as given (a header
                                   value with CR/LF, a name that is not a token)
"""

from __future__ import annotations

__all__ = [
    "ConnectTimeout",
    "InvalidUpstreamRequest",
    "PoolTimeout",
    "ReadTimeout",
    "UpstreamDropped",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
]


class UpstreamError(Exception):
    """The upstream could not be used for this request."""


class UpstreamTimeout(UpstreamError):
    """A time limit passed while talking to the upstream."""


class ConnectTimeout(UpstreamTimeout):
    """Connecting took longer than the connect timeout."""


class ReadTimeout(UpstreamTimeout):
    """No data arrived from the upstream for the read timeout."""


class PoolTimeout(UpstreamTimeout):
    """No pooled connection became free within the pool timeout."""


class UpstreamUnreachable(UpstreamError):
    """No connection could be made."""


class UpstreamDropped(UpstreamError):
    """The connection ended, or the answer was malformed, before the response was complete."""


class InvalidUpstreamRequest(UpstreamError):
    """The request cannot be sent as given (for example a header value holding CR or LF)."""
