"""The client's key: one check (`authorize`) and one 401 answer, for `/v1` and the other routes.

With no `proxy_api_keys` configured every request is allowed (the proxy listens on
127.0.0.1 by default). Otherwise `Authorization: Bearer <key>` must carry one of them, and
a missing header, or an empty bearer, never matches: a blank key in the config (which
`config validate` refuses) once let a request with no header at all through, and with
`wake_on_request` it created a pod. Keys set but all blank refuse every request.
"""

from __future__ import annotations

import hmac

from podmgr.proxy.openai_errors import ProxyFailure

__all__ = ["UNAUTHORIZED", "authorize"]

UNAUTHORIZED = ProxyFailure(
    401,
    "a valid proxy key is required (Authorization: Bearer ...)",
    "invalid_request_error",
    "invalid_api_key",
    "client_auth",
)


def authorize(keys: tuple[bytes, ...], authorization: bytes | None) -> bool:
    """Whether the `Authorization` header's value carries one of `keys` (or none are set)."""
    if not keys:
        return True
    value = authorization or b""
    token = value[7:].strip() if value[:7].lower() == b"bearer " else b""
    # Compare against every key so the time taken does not tell which one matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key) and bool(key.strip())
    return matched and bool(token)
