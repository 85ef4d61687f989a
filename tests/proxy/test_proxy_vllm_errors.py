"""vLLM's error answers reach the client in OpenAI's shape, with vLLM's message.

vLLM v0.8.5 answers a non-streaming error flat: `{"object": "error", "message", "type",
"param", "code"}` (vllm/entrypoints/openai/protocol.py ErrorResponse). The proxy relays it
as OpenAI's `{"error": {...}}` with the same status, so the `openai` SDK raises the fitting
exception carrying vLLM's message (podmgr/proxy/openai_errors.py).
"""

from __future__ import annotations

import uuid

import openai
import orjson
import pytest

from podmgr.proxy.openai_errors import upstream_status_failure

from .proxykit import ProxyProcess

FLAT_400 = {
    "object": "error",
    "message": "This model's maximum context length is 4096 tokens. However, you requested "
    "100010 tokens (10 in the messages, 100000 in the completion). Please reduce the length "
    "of the messages or completion.",
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_flat_vllm_error_is_renested_with_its_status(status: int) -> None:
    failure = upstream_status_failure(status, orjson.dumps({**FLAT_400, "code": status}))
    assert failure.status == status
    assert orjson.loads(failure.body) == {
        "error": {
            "message": FLAT_400["message"],
            "type": "BadRequestError",
            "param": None,
            "code": str(status),
        }
    }


def test_an_openai_shaped_error_passes_as_it_is() -> None:
    body = orjson.dumps({"error": {"message": "m", "type": "t", "param": "p", "code": "c"}})
    assert upstream_status_failure(400, body).body == body


def test_a_flat_500_is_a_502_that_says_vllms_message() -> None:
    body = orjson.dumps({**FLAT_400, "message": "boom", "type": "InternalServerError"})
    failure = upstream_status_failure(500, body)
    assert failure.status == 502 and failure.message.endswith(": boom")


def test_other_bodies_are_not_taken_for_errors() -> None:
    for body in (b'{"detail": "Not Found"}', b'{"object": "list"}', b"[1]", b"<html>"):
        failure = upstream_status_failure(404, body)
        assert orjson.loads(failure.body)["error"]["code"] == "upstream_404"


def test_the_openai_sdk_gets_vllms_message_through_the_proxy(sim_proxy: ProxyProcess) -> None:
    client = openai.OpenAI(base_url=sim_proxy.url + "/v1", api_key="x", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": f"too long {uuid.uuid4().hex}"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="sim-model",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=100_000,
        )
    error = caught.value
    assert error.status_code == 400
    assert error.message.startswith("Error code: 400 - ")
    assert isinstance(error.body, dict)
    assert error.body["message"].startswith("This model's maximum context length is 4096 tokens.")
    assert error.body["message"].endswith("Please reduce the length of the messages or completion.")
    assert (error.body["type"], error.body["code"]) == ("BadRequestError", "400")
    assert "object" not in error.body
