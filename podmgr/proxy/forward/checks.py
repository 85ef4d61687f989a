"""Checks of a `/v1` request before anything is forwarded: the target, the headers, and the
body of a cacheable route.

Each check returns None (fine) or the `ProxyFailure` the client gets: a 4xx in OpenAI
shape, with nothing sent upstream and nothing cached. What is checked is what the proxy
itself relies on or would otherwise pass to the model server unexamined:
- the request target: dot segments (`/v1/../health` would reach the pod's non-/v1
  routes with the pod's key), encoded slashes or backslashes, control characters, and
  targets longer than `MAX_TARGET_BYTES` (414);
- the headers, which are forwarded upstream: more than `MAX_HEADERS` or more than
  `MAX_HEADER_BYTES` in total (431);
- on the cacheable routes (POST only, else 405): a Content-Type that is not JSON (415),
  a body that is not a JSON object (400), and wrong types in the fields the proxy itself
  reads (`stream`, `stream_options`, `cache`; 400). The other fields are the model
  server's to judge: vLLM answers 400 for them, which is relayed and never cached.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.types import Scope

from podmgr.proxy.forward.asgi import header
from podmgr.proxy.openai_errors import ProxyFailure, error_body

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_TARGET_BYTES",
    "check_body",
    "check_content_type",
    "check_method",
    "check_target",
    "parse_object",
]

MAX_TARGET_BYTES = 8192
MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024
_ENCODED_SEPARATOR = re.compile(rb"%(2f|5c)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
# Fields the proxy reads itself, with the JSON types it accepts (null is always fine).
_PROXY_FIELDS: dict[str, tuple[type, ...]] = {
    "stream": (bool,),
    "stream_options": (dict,),
    "cache": (dict,),
}
_TYPE_NAMES = {bool: "a boolean", dict: "an object"}


def _invalid(status: int, message: str, code: str, param: str | None = None) -> ProxyFailure:
    body = error_body(message, "invalid_request_error", code, param)
    return ProxyFailure(status, message, "invalid_request_error", code, "client_input", None, body)


def check_target(scope: Scope, path: str) -> ProxyFailure | None:
    """The request target (`path` is the decoded one) and the size of the headers."""
    raw_path: bytes = scope.get("raw_path") or path.encode("utf-8", "surrogateescape")
    query: bytes = scope.get("query_string") or b""
    if len(raw_path) + len(query) > MAX_TARGET_BYTES:
        return _invalid(
            414, f"the request target is longer than {MAX_TARGET_BYTES} bytes", "uri_too_long"
        )
    segments = path.split("/")
    if "." in segments or ".." in segments:
        return _invalid(400, "the path may not contain '.' or '..' segments", "invalid_path")
    if _ENCODED_SEPARATOR.search(raw_path) or _CONTROL.search(path):
        return _invalid(
            400,
            "the path may not contain encoded slashes, backslashes or control characters",
            "invalid_path",
        )
    headers = scope["headers"]
    size = sum(len(name) + len(value) for name, value in headers)
    if len(headers) > MAX_HEADERS or size > MAX_HEADER_BYTES:
        return _invalid(
            431,
            f"at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes in total are accepted",
            "headers_too_large",
        )
    return None


def check_method(method: str) -> ProxyFailure | None:
    """Cacheable routes take POST only."""
    if method == "POST":
        return None
    return _invalid(405, f"this route takes POST, not {method}", "method_not_allowed")


def check_content_type(scope: Scope) -> ProxyFailure | None:
    """No Content-Type, or a JSON one (`application/json`, `application/*+json`)."""
    value = header(scope, b"content-type")
    if value is None:
        return None
    media = value.split(b";", 1)[0].strip().lower()
    if media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    ):
        return None
    return _invalid(
        415,
        f"the body must be JSON (Content-Type: application/json), not {_shown(media)}",
        "unsupported_media_type",
    )


def _shown(value: bytes, limit: int = 60) -> str:
    text = value.decode("latin-1")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_object(raw: bytes) -> dict[str, Any] | ProxyFailure:
    """The body as a JSON object, or the 400 for one that is not (bad JSON, bad UTF-8, ...)."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return _invalid(400, f"the body is not valid JSON: {error}", "invalid_json")
    if not isinstance(parsed, dict):
        kind = type(parsed).__name__ if parsed is not None else "null"
        return _invalid(400, f"the body must be a JSON object, not {kind}", "invalid_json")
    return parsed


def check_body(body: dict[str, Any]) -> ProxyFailure | None:
    """Types of the fields the proxy reads itself (see the module docstring)."""
    for name, types in _PROXY_FIELDS.items():
        value = body.get(name)
        if value is not None and not isinstance(value, types):
            wanted = " or ".join(_TYPE_NAMES[t] for t in types)
            return _invalid(400, f"'{name}' must be {wanted}", "invalid_type", name)
    return None
