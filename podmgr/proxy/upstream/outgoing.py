"""What the proxy sends upstream: the client's headers cleaned up, the pod's key, and the
body with the cache controls removed and completions turned into streams.

Behind RunPod's edge, completions always go upstream as streams with usage
(`stream_options.include_usage`): a stream keeps RunPod's edge connection alive past its
100 s limit, and the usage chunk feeds the token metrics and lets a cached answer replay
usage to a client that asks later. An upstream with no edge limit gets non-streaming
requests as they are (see `Upstream.edge_limited`).
"""

from __future__ import annotations

from typing import Any

import orjson

from podmgr.proxy.cache.key import STREAMABLE_ROUTES
from podmgr.proxy.upstream.resolver import Upstream

__all__ = ["upstream_body", "upstream_headers"]

# Request headers never sent upstream: hop-by-hop ones, the client's own key, and ours to set.
_DROPPED_HEADERS = frozenset(
    {
        b"host",
        b"authorization",
        b"content-length",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"upgrade",
        b"proxy-authorization",
        b"accept-encoding",
        b"cache-control",
        b"expect",  # 100-continue is between the client and us, not for the model server
    }
)


def upstream_headers(
    client_headers: list[tuple[bytes, bytes]], upstream: Upstream
) -> dict[str, str]:
    """The client's headers minus hop-by-hop and auth ones, plus the upstream's key."""
    headers = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in client_headers
        if name not in _DROPPED_HEADERS
    }
    if upstream.auth_header is not None:
        headers["authorization"] = upstream.auth_header.decode("latin-1")
    return headers


def _streamable(body: dict[str, Any]) -> bool:
    """vLLM refuses to stream best_of > 1 and beam search; those go upstream as they are."""
    best_of = body.get("best_of")
    return not (isinstance(best_of, int) and best_of > 1) and not body.get("use_beam_search")


def upstream_body(route: str, body: dict[str, Any], edge_safe: bool = True) -> bytes:
    """What to send upstream: no cache controls; completions as streams with usage.

    With `edge_safe` off (an upstream with no edge limit), a non-streaming request is sent
    as it is and its JSON answer relayed whole, which skips the SSE reassembly."""
    if "cache" in body:
        body = {name: value for name, value in body.items() if name != "cache"}
    if not edge_safe and body.get("stream") is not True:
        return orjson.dumps(body)
    forwarded = dict(body)
    if route in STREAMABLE_ROUTES and _streamable(body):
        options = body.get("stream_options")
        forwarded["stream"] = True
        forwarded["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    return orjson.dumps(forwarded)
