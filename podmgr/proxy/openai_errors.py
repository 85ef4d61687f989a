"""OpenAI-shaped errors: the one place where a failure becomes what a client is told.

Every failure a client sees is `{"error": {"message", "type", "param", "code"}}` with a fitting
status (400, 401, 404, 413, 502, 503 with Retry-After, 504), never a traceback and never a
500 of the proxy's own making. `ProxyFailure` carries one such answer through the code, and
only this module builds one (as httpx maps its transport errors once): the rest of the proxy
raises or returns typed failures and asks here for the answer.

- Talking to an upstream: `failure_of(error)` maps the two typed failures, `UPSTREAM_FAILURES`.
  Below HTTP, a transport fails only with `transport.UpstreamError`: any timeout (connect,
  read, pool) -> 504 TIMED_OUT, unreachable -> 502 UNREACHABLE, a request that cannot be
  sent as given -> 400 INVALID_UPSTREAM_REQUEST, the rest (cut, malformed, too large) ->
  502 DROPPED. An upstream that answered with an error status raises `UpstreamStatus`
  (`upstream_status_failure`); an error event in the middle of a stream, for a client
  that did not ask for one, is `mid_stream_failure`.
- Refusals (nothing sent upstream): the intake's (UNAUTHORIZED, TOO_LARGE,
  `invalid_request`), no upstream for a model (`no_upstream_for`), the pod unavailable
  (`pod_unavailable`) or starting on request (`wake_blocked`, `pod_starting`).
- Any of them, raised as `Refused` anywhere on a request's path, is answered once, by the
  `/v1` handler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from podmgr.errors import truncate
from podmgr.proxy.transport_errors import (
    InvalidUpstreamRequest,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

__all__ = [
    "DROPPED",
    "INTERNAL",
    "INVALID_UPSTREAM_REQUEST",
    "TIMED_OUT",
    "TOO_LARGE",
    "TRANSPORT_ERRORS",
    "UNAUTHORIZED",
    "UNREACHABLE",
    "UPSTREAM_FAILURES",
    "ProxyFailure",
    "Refused",
    "UpstreamStatus",
    "error_body",
    "failure_of",
    "invalid_request",
    "mid_stream_failure",
    "no_upstream_for",
    "pod_starting",
    "pod_unavailable",
    "transport_failure",
    "upstream_status_failure",
    "wake_blocked",
]


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> bytes:
    """The JSON bytes of an OpenAI error object."""
    return orjson.dumps(
        {"error": {"message": truncate(message), "type": type_, "param": param, "code": code}}
    )


@dataclass(frozen=True)
class ProxyFailure:
    """A failed answer: status, OpenAI error fields, and the metric label of its kind."""

    status: int
    message: str
    type: str
    code: str
    kind: str
    retry_after: int | None = None
    body_override: bytes | None = field(default=None, repr=False)

    @property
    def body(self) -> bytes:
        if self.body_override is not None:
            return self.body_override
        return error_body(self.message, self.type, self.code)

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", b"application/json")]
        if self.retry_after is not None:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        return headers

    def sse_event(self) -> bytes:
        """The failure as an SSE error event, for a stream whose headers are already sent."""
        return b"data: " + self.body + b"\n\ndata: [DONE]\n\n"


class Refused(Exception):
    """A `/v1` request answered with `failure` (and `headers`).

    Raised anywhere on the request's path (the intake's checks, no upstream to take it, an
    upstream that failed) and answered in one place: the handler's `__call__`, with the
    failure's answer while nothing has been sent, else by ending what was begun (a stream
    with an error event)."""

    def __init__(self, failure: ProxyFailure, headers: tuple[tuple[bytes, bytes], ...] = ()):
        super().__init__(failure.message)
        self.failure = failure
        self.headers = headers


def _upstream_error(body: bytes) -> dict[str, Any] | None:
    """The error object of an upstream's error body, None if it has none.

    Two shapes count: OpenAI's `{"error": {"message", "type", "param", "code"}}`, and vLLM
    v0.8.5's flat ErrorResponse `{"object": "error", "message", "type", "param", "code"}`
    (vllm/entrypoints/openai/protocol.py: vLLM nests only the errors inside a stream).
    """
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    if isinstance(parsed.get("error"), dict):
        return dict(parsed["error"])
    if parsed.get("object") == "error" and isinstance(parsed.get("message"), str):
        return parsed
    return None


def _openai_message(body: bytes) -> str | None:
    """The message of an upstream's error body (either shape), None if it has none."""
    error = _upstream_error(body)
    return None if error is None else str(error.get("message") or "")


def _relayed(body: bytes) -> bytes | None:
    """An upstream's error in OpenAI's shape: as it came, or vLLM's flat error re-nested
    with the same message, type, param and code (a number made a string, as OpenAI's
    `code` is); None if the body holds no error object."""
    error = _upstream_error(body)
    if error is None:
        return None
    if "object" not in error:
        return body
    code = error.get("code")
    param = error.get("param")
    relayed = {
        "message": truncate(str(error.get("message") or "")),
        "type": str(error.get("type") or "invalid_request_error"),
        "param": None if param is None else str(param),
        "code": None if code is None else str(code),
    }
    return orjson.dumps({"error": relayed})


def _said(message: str | None) -> str:
    return f": {message}" if message else ""


def upstream_status_failure(status: int, body: bytes) -> ProxyFailure:
    """Map a non-200 upstream answer to what the client sees.

    Client errors that the upstream explains (400, 404, 422, ...) reach the client with the
    same status and the upstream's message in OpenAI's shape: vLLM's flat error re-nested,
    an OpenAI-shaped one as it is. The pod rejecting our key is the proxy's configuration
    problem, not the client's: 502. Gateway pages (RunPod's 502 while nothing listens, 524
    past the edge limit) become OpenAI-shaped 502/503/504, with the upstream's message.
    """
    if status in (401, 403):
        return ProxyFailure(
            502,
            "the model server rejected the proxy's pod key",
            "upstream_error",
            "upstream_auth",
            "upstream_auth",
        )
    upstream_message = _openai_message(body)
    relayed = _relayed(body) if status < 500 else None
    if relayed is not None:
        return ProxyFailure(status, "", "", "", f"upstream_{status}", body_override=relayed)
    if status < 500:
        return ProxyFailure(
            status,
            f"the model server answered HTTP {status}",
            "invalid_request_error",
            f"upstream_{status}",
            f"upstream_{status}",
        )
    if status == 503:
        return ProxyFailure(
            503,
            f"the model server is not ready (HTTP 503){_said(upstream_message)}",
            "service_unavailable",
            "upstream_unavailable",
            "upstream_503",
            retry_after=5,
        )
    if status in (504, 524):
        return ProxyFailure(
            504,
            f"the model server did not answer in time (HTTP {status}){_said(upstream_message)}",
            "timeout",
            "upstream_timeout",
            f"upstream_{status}",
        )
    return ProxyFailure(
        502,
        f"the model server failed (HTTP {status}){_said(upstream_message)}",
        "upstream_error",
        "upstream_error",
        f"upstream_{status}",
    )


UNREACHABLE = ProxyFailure(
    502,
    "cannot connect to the model server",
    "upstream_error",
    "upstream_unreachable",
    "connect",
)
DROPPED = ProxyFailure(
    502,
    "the model server closed the connection before the answer was complete",
    "upstream_error",
    "upstream_dropped",
    "dropped",
)
TIMED_OUT = ProxyFailure(
    504,
    "the model server did not answer in time",
    "timeout",
    "upstream_timeout",
    "timeout",
)
INTERNAL = ProxyFailure(
    502,
    "the proxy could not complete the request",
    "proxy_error",
    "proxy_error",
    "internal",
)

INVALID_UPSTREAM_REQUEST = ProxyFailure(
    400,
    "the request cannot be forwarded as given (a header name or value HTTP does not allow)",
    "invalid_request_error",
    "invalid_header",
    "client_header",
)

# What can go wrong talking to the model server, below HTTP (see `transport_failure`).
TRANSPORT_ERRORS = UpstreamError


def transport_failure(error: UpstreamError) -> ProxyFailure:
    """The client's answer for a transport's `UpstreamError`."""
    if isinstance(error, UpstreamTimeout):
        return TIMED_OUT
    if isinstance(error, UpstreamUnreachable):
        return UNREACHABLE
    if isinstance(error, InvalidUpstreamRequest):
        return INVALID_UPSTREAM_REQUEST
    return DROPPED


# What can go wrong talking to an upstream, as typed failures (see `failure_of`).


class UpstreamStatus(Exception):
    """An upstream answered `status` (not one the request can use), with `body`."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"upstream answered HTTP {status}")
        self.status = status
        self.body = body


UPSTREAM_FAILURES = (UpstreamError, UpstreamStatus)


def failure_of(error: UpstreamError | UpstreamStatus) -> ProxyFailure:
    """The client's answer for anything that went wrong talking to an upstream."""
    if isinstance(error, UpstreamStatus):
        return upstream_status_failure(error.status, error.body)
    return transport_failure(error)


def mid_stream_failure(data: bytes) -> ProxyFailure:
    """An error event the upstream sent in the middle of a stream (`data`, the event), as
    the answer for a client that did not ask for a stream: the event's error object, with
    its `code` as the status when that is a 4xx, else 502."""
    body = data[data.find(b"{") :].split(b"\n")[0] if b"{" in data else b"{}"
    status = 502
    try:
        code = orjson.loads(body)["error"].get("code")
        status = code if isinstance(code, int) and 400 <= code < 500 else 502
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        body = error_body("the model server failed mid-answer", "upstream_error")
    return ProxyFailure(status, "", "", "", "stream_error", body_override=body)


# Refusals: the request is answered before anything is sent upstream.

UNAUTHORIZED = ProxyFailure(
    401,
    "a valid proxy key is required (Authorization: Bearer ...)",
    "invalid_request_error",
    "invalid_api_key",
    "client_auth",
)
TOO_LARGE = ProxyFailure(
    413,
    "the request body is larger than this proxy accepts (max_body_bytes)",
    "invalid_request_error",
    "request_too_large",
    "client_body",
)


def invalid_request(status: int, message: str, code: str, param: str | None = None) -> ProxyFailure:
    """A request the proxy will not forward as it is (its target, method, type or body)."""
    body = error_body(message, "invalid_request_error", code, param)
    return ProxyFailure(status, message, "invalid_request_error", code, "client_input", None, body)


def no_upstream_for(model: str | None) -> ProxyFailure:
    """No configured upstream serves `model`."""
    return ProxyFailure(
        404,
        f"no configured upstream serves the model {model!r}",
        "invalid_request_error",
        "model_not_found",
        "no_upstream",
    )


def pod_unavailable(reason: str, message: str, retry_after: int) -> ProxyFailure:
    """The managed pod cannot answer now (`reason`: no_pod, pod_stopped, ...)."""
    return ProxyFailure(
        503, message, "service_unavailable", reason, "no_upstream", retry_after=retry_after
    )


def wake_blocked(why: str) -> ProxyFailure:
    """A wake on request that may not start a session (`why`: the rule that says no)."""
    return ProxyFailure(
        503, why, "service_unavailable", "wake_blocked", "no_upstream", retry_after=60
    )


def pod_starting(message: str, retry_after: int) -> ProxyFailure:
    """The pod is starting for this request's wake; retry in `retry_after` seconds."""
    return ProxyFailure(
        503, message, "service_unavailable", "pod_starting", "no_upstream", retry_after=retry_after
    )
