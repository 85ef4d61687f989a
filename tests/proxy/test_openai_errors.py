"""Failures become OpenAI-shaped answers in one module: `openai_errors.py` maps transport
errors, upstream statuses, mid-stream errors and refusals, and the `/v1` handler answers a
`Refused` once, whether or not the response has begun."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

import podmgr.proxy
from podmgr.proxy import openai_errors as errors
from podmgr.proxy.forward.asgi import Responder
from podmgr.proxy.forward.handler import _answer
from podmgr.proxy.upstream import transport

PROXY = Path(podmgr.proxy.__file__).parent


def _builds_failure(path: Path) -> list[int]:
    """Lines of `path` that call `ProxyFailure(...)`."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name | ast.Attribute)
        and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "ProxyFailure"
    ]


def test_only_openai_errors_builds_a_failure() -> None:
    elsewhere = {
        str(path.relative_to(PROXY)): lines
        for path in PROXY.rglob("*.py")
        if path.name != "openai_errors.py" and (lines := _builds_failure(path))
    }
    assert elsewhere == {}
    assert _builds_failure(PROXY / "openai_errors.py")  # the check can see a call


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (transport.ReadTimeout("r"), 504, "upstream_timeout"),
        (transport.UpstreamUnreachable("u"), 502, "upstream_unreachable"),
        (errors.UpstreamStatus(401, b""), 502, "upstream_auth"),
        (errors.UpstreamStatus(503, b"down"), 503, "upstream_unavailable"),
        (errors.UpstreamStatus(524, b""), 504, "upstream_timeout"),
    ],
)
def test_failure_of_maps_both_kinds_of_upstream_failure(
    error: transport.UpstreamError | errors.UpstreamStatus, status: int, code: str
) -> None:
    failure = errors.failure_of(error)
    assert (failure.status, failure.code) == (status, code)
    assert orjson.loads(failure.body)["error"]["code"] == code


def test_a_relayed_client_error_keeps_the_upstreams_message() -> None:
    body = orjson.dumps(
        {"object": "error", "message": "too long", "type": "BadRequest", "code": 400}
    )
    failure = errors.failure_of(errors.UpstreamStatus(400, body))
    assert failure.status == 400
    assert orjson.loads(failure.body)["error"] == {
        "message": "too long",
        "type": "BadRequest",
        "param": None,
        "code": "400",
    }


def test_mid_stream_errors_keep_a_client_status_and_hide_the_rest() -> None:
    event = b'data: {"error": {"message": "bad", "type": "x", "code": 400}}\n\n'
    failure = errors.mid_stream_failure(event)
    assert failure.status == 400 and orjson.loads(failure.body)["error"]["message"] == "bad"
    garbled = errors.mid_stream_failure(b"data: {not json\n\n")
    assert garbled.status == 502
    assert orjson.loads(garbled.body)["error"]["type"] == "upstream_error"


def test_refusals_say_who_and_when_to_retry() -> None:
    assert errors.no_upstream_for("gpt-x").status == 404
    assert "'gpt-x'" in errors.no_upstream_for("gpt-x").message
    unavailable = errors.pod_unavailable("no_pod", "no pod", 60)
    assert (unavailable.status, unavailable.code, unavailable.retry_after) == (503, "no_pod", 60)
    assert (b"retry-after", b"60") in unavailable.headers()
    assert errors.wake_blocked("budget spent").code == "wake_blocked"
    assert errors.pod_starting("starting", 5).retry_after == 5
    invalid = errors.invalid_request(400, "bad json", "invalid_json")
    assert orjson.loads(invalid.body)["error"]["code"] == "invalid_json"


def _answered(started: bool, sse: bool) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        out = Responder(send)
        if started:
            out.sse = sse
            await out.start(200, [])
        await _answer(out, errors.Refused(errors.DROPPED, ((b"x-upstream", b"u"),)))

    asyncio.run(run())
    return sent


def test_the_handler_answers_a_refusal_before_and_after_the_start() -> None:
    before = _answered(started=False, sse=False)
    assert before[0]["status"] == 502 and (b"x-upstream", b"u") in before[0]["headers"]
    assert b"upstream_dropped" in before[1]["body"]
    stream = _answered(started=True, sse=True)
    assert stream[-1]["body"] == errors.DROPPED.sse_event()
    plain = _answered(started=True, sse=False)
    assert plain[-1]["body"] == b"" and not plain[-1].get("more_body", False)
