"""The intake reads a `/v1` request once into a `ProxyRequest`, or refuses it with the
4xx the client gets (nothing forwarded): read directly from a scope and a body."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podmgr.proxy.forward.intake import IntakeRules, ProxyRequest, read_request
from podmgr.proxy.openai_errors import Refused

RULES = IntakeRules((b"sk-proxy",), 1000)
BEARER = (b"authorization", b"Bearer sk-proxy")


def _read(
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    path: str = "/v1/chat/completions",
    method: str = "POST",
) -> ProxyRequest:
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    route = path[4:].strip("/")
    return asyncio.run(read_request(scope, receive, path, route, RULES))


def test_a_request_is_read_once_into_its_parts() -> None:
    body = b'{"model": "m", "stream": true, "stream_options": {"include_usage": true}}'
    headers = [BEARER, (b"cache-control", b"no-store"), (b"x-title", b"t")]
    request = _read(body, headers)
    assert request.route == "chat/completions"
    assert request.model == "m"
    assert request.stream and request.include_usage
    assert request.cache_control == "no-store"
    assert request.authorization == b"Bearer sk-proxy"
    assert request.headers == headers
    assert request.body is not None and request.body["model"] == "m"


def test_other_routes_keep_the_body_as_it_came() -> None:
    request = _read(b"not json", [BEARER], path="/v1/audio/speech")
    assert request.body is None
    assert request.raw == b"not json"
    assert request.model is None


CHAT = "/v1/chat/completions"
TEXT = (b"content-type", b"text/plain")


@pytest.mark.parametrize(
    ("body", "headers", "path", "method", "status", "code"),
    [
        pytest.param(b"{}", [], CHAT, "POST", 401, "invalid_api_key", id="no-key"),
        pytest.param(b"{}", [BEARER], "/v1/../health", "POST", 400, "invalid_path", id="dots"),
        pytest.param(b"{}", [BEARER], CHAT, "GET", 405, "method_not_allowed", id="get"),
        pytest.param(b"{}", [BEARER, TEXT], CHAT, "POST", 415, "unsupported_media_type", id="text"),
        pytest.param(b"x" * 1001, [BEARER], CHAT, "POST", 413, "request_too_large", id="large"),
        pytest.param(b"[1]", [BEARER], CHAT, "POST", 400, "invalid_json", id="array"),
        pytest.param(b'{"stream": 1}', [BEARER], CHAT, "POST", 400, "invalid_type", id="stream"),
    ],
)
def test_a_bad_request_is_refused_with_its_4xx(
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    path: str,
    method: str,
    status: int,
    code: str,
) -> None:
    with pytest.raises(Refused) as refused:
        _read(body, headers, path, method)
    assert refused.value.failure.status == status
    assert refused.value.failure.code == code
