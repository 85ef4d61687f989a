"""Intake: a `/v1` request read ONCE from the ASGI scope and body into a `ProxyRequest`.

Everything after the intake takes the `ProxyRequest`, never the raw scope (as Starlette's
`Request` parses headers once). Reading it also checks it; a request that fails a check
raises `Refused` with the 4xx the client gets, and nothing is forwarded or cached:
- the request target: dot segments (`/v1/../health` would reach the pod's non-/v1 routes
  with the pod's key), encoded slashes or backslashes, control characters, and targets
  longer than `MAX_TARGET_BYTES` (414);
- the headers, which are forwarded upstream: more than `MAX_HEADERS` or more than
  `MAX_HEADER_BYTES` in total (431);
- the client's key (`authorize`, 401; also used by the app's other routes);
- the body: larger than `max_body_bytes` (413, refused from Content-Length before reading);
- on the cacheable routes (POST only, else 405): a Content-Type that is not JSON (415),
  a body that is not a JSON object (400), and wrong types in the fields the proxy itself
  reads (`stream`, `stream_options`, `cache`; 400). The other fields are the model
  server's to judge: vLLM answers 400 for them, which is relayed and never cached.

Keys: with no `proxy_api_keys` every request is allowed (the proxy listens on 127.0.0.1
by default). Otherwise `Authorization: Bearer <key>` must carry one of them, and a
missing header, or an empty bearer, never matches: a blank key in the config (which
`config validate` refuses) once let a request with no header at all through, and with
`wake_on_request` it created a pod. Keys set but all blank refuse every request.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson
from starlette.types import Receive, Scope

from podmgr.proxy.cache.key import CACHEABLE_ROUTES
from podmgr.proxy.openai_errors import TOO_LARGE, UNAUTHORIZED, Refused, invalid_request

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_TARGET_BYTES",
    "IntakeRules",
    "ProxyRequest",
    "authorize",
    "read_request",
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
_NONE_PARSED: Mapping[bytes, dict[str, Any]] = MappingProxyType({})
# The request headers the proxy itself reads; the rest are only forwarded.
_READ = frozenset({b"authorization", b"content-type", b"content-length", b"cache-control"})
_ALLOW_POST = ((b"allow", b"POST"),)
# Paths (raw and decoded) that passed `_check_path` lately: a client sends the same few
# again and again, and two regular expressions per request were a tenth of the intake.
GOOD_PATHS_KEPT = 256
_GOOD_PATHS: set[tuple[bytes, str]] = set()


@dataclass(frozen=True, slots=True)
class IntakeRules:
    """What the intake enforces: the proxy's keys and the largest body it accepts."""

    api_keys: tuple[bytes, ...]
    max_body_bytes: int


class ProxyRequest(NamedTuple):
    """One `/v1` request as the proxy understands it (read once by `read_request`; a named
    tuple: immutable, and made for every request at a quarter of a frozen dataclass's cost).

    `route` is the path under /v1 (`chat/completions`); `headers` the client's, as sent
    (forwarded upstream, minus hop-by-hop ones); `body` the parsed JSON object on a
    cacheable route (None elsewhere: `raw` goes through as it is); `model`, `stream` and
    `include_usage` are read from it; `cache_control` is the Cache-Control header."""

    method: str
    path: str
    route: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    authorization: bytes | None
    cache_control: str | None
    raw: bytes
    body: dict[str, Any] | None
    model: str | None
    stream: bool
    include_usage: bool


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


async def read_request(
    scope: Scope,
    receive: Receive,
    path: str,
    route: str,
    rules: IntakeRules,
    parsed: Mapping[bytes, dict[str, Any]] = _NONE_PARSED,
) -> ProxyRequest:
    """The request, checked (module docstring); raises `Refused` with the client's answer.
    `path` is the decoded path with repeated slashes folded, `route` the part under /v1;
    `parsed` holds bodies already read as JSON (and checked), by their raw bytes
    (memo.PlanMemo)."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    read = _check_target(scope, path, headers)
    authorization = read.get(b"authorization")
    if rules.api_keys and not authorize(rules.api_keys, authorization):
        raise Refused(UNAUTHORIZED)
    method: str = scope["method"]
    cacheable = route in CACHEABLE_ROUTES
    if cacheable:
        _check_method_and_type(method, read.get(b"content-type"))
    raw = await _read_body(receive, read.get(b"content-length"), rules.max_body_bytes)
    body = ((parsed.get(raw) if parsed else None) or _parse_object(raw)) if cacheable else None
    model = body.get("model") if body is not None else None
    stream = body is not None and body.get("stream") is True
    options = body.get("stream_options") if stream and body is not None else None
    cache_control = read.get(b"cache-control")
    # Positional: this runs for every request, and keywords cost a tenth of a microsecond each.
    return ProxyRequest(
        method,
        path,
        route,
        scope.get("query_string") or b"",
        headers,
        authorization,
        cache_control.decode("latin-1") if cache_control else None,
        raw,
        body,
        model if isinstance(model, str) else None,
        stream,
        isinstance(options, dict) and bool(options.get("include_usage")),
    )


def _invalid(status: int, message: str, code: str, param: str | None = None) -> Refused:
    return Refused(invalid_request(status, message, code, param))


def _check_target(
    scope: Scope, path: str, headers: list[tuple[bytes, bytes]]
) -> dict[bytes, bytes]:
    """Check the target and the headers' size; the first value of each header in `_READ`."""
    raw_path: bytes = scope.get("raw_path") or path.encode("utf-8", "surrogateescape")
    query: bytes = scope.get("query_string") or b""
    if len(raw_path) + len(query) > MAX_TARGET_BYTES:
        raise _invalid(
            414, f"the request target is longer than {MAX_TARGET_BYTES} bytes", "uri_too_long"
        )
    if (raw_path, path) not in _GOOD_PATHS:
        _check_path(raw_path, path)
        if len(_GOOD_PATHS) >= GOOD_PATHS_KEPT:
            _GOOD_PATHS.clear()
        _GOOD_PATHS.add((raw_path, path))
    read: dict[bytes, bytes] = {}
    size = 0
    for name, value in headers:
        size += len(name) + len(value)
        if name in _READ and name not in read:
            read[name] = value
    if len(headers) > MAX_HEADERS or size > MAX_HEADER_BYTES:
        raise _invalid(
            431,
            f"at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes in total are accepted",
            "headers_too_large",
        )
    return read


def _check_path(raw_path: bytes, path: str) -> None:
    segments = path.split("/")
    if "." in segments or ".." in segments:
        raise _invalid(400, "the path may not contain '.' or '..' segments", "invalid_path")
    if _ENCODED_SEPARATOR.search(raw_path) or _CONTROL.search(path):
        raise _invalid(
            400,
            "the path may not contain encoded slashes, backslashes or control characters",
            "invalid_path",
        )


def _check_method_and_type(method: str, content_type: bytes | None) -> None:
    """Cacheable routes take POST only, with no Content-Type or a JSON one
    (`application/json`, `application/*+json`)."""
    if method != "POST":
        refused = _invalid(405, f"this route takes POST, not {method}", "method_not_allowed")
        raise Refused(refused.failure, _ALLOW_POST)
    if content_type is None or content_type == b"application/json":
        return
    media = content_type.split(b";", 1)[0].strip().lower()
    if media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    ):
        return
    raise _invalid(
        415,
        f"the body must be JSON (Content-Type: application/json), not {_shown(media)}",
        "unsupported_media_type",
    )


def _shown(value: bytes, limit: int = 60) -> str:
    text = value.decode("latin-1")
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def _read_body(receive: Receive, length: bytes | None, limit: int) -> bytes:
    """The whole request body; 413 past `limit` bytes (checked before reading)."""
    if length is not None and length.isdigit() and int(length) > limit:
        raise Refused(TOO_LARGE)
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise Refused(TOO_LARGE)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(TOO_LARGE)
        parts.append(chunk)
    return b"".join(parts)


def _parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object with the proxy's own fields of the right types."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise _invalid(400, f"the body is not valid JSON: {error}", "invalid_json") from None
    if not isinstance(parsed, dict):
        kind = type(parsed).__name__ if parsed is not None else "null"
        raise _invalid(400, f"the body must be a JSON object, not {kind}", "invalid_json")
    for name, types in _PROXY_FIELDS.items():
        value = parsed.get(name)
        if value is not None and not isinstance(value, types):
            wanted = " or ".join(_TYPE_NAMES[t] for t in types)
            raise _invalid(400, f"'{name}' must be {wanted}", "invalid_type", name)
    return parsed
