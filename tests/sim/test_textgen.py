"""Deterministic generation: same request, same bytes; max_tokens, stop, n; stream == JSON."""

from __future__ import annotations

import json
from typing import Any

from podmgr.sim.completions import full_body, stream_events
from podmgr.sim.pods import PodSpec, SimPod
from podmgr.sim.textgen import generate, request_digest
from podmgr.sim.vllm import completion_job

POD = SimPod(
    id="p1",
    spec=PodSpec("n", "img", "g", "G", 1, "SECURE", 1.0, docker_args="--model m"),
    machine_id="m1",
    created_at=0.0,
)


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hello"}], **extra}


def streamed_text(body: dict[str, Any]) -> dict[int, str]:
    texts: dict[int, str] = {}
    for event in stream_events(completion_job(POD, body, chat=True)):
        payload = event.decode().removeprefix("data: ").strip()
        if payload == "[DONE]":
            break
        for choice in json.loads(payload)["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + (
                choice["delta"].get("content") or ""
            )
    return texts


def test_same_request_same_answer_and_stream_flag_is_ignored() -> None:
    first = full_body(completion_job(POD, chat(), chat=True))
    again = full_body(completion_job(POD, chat(stream=True), chat=True))
    other = full_body(completion_job(POD, chat(temperature=0.5), chat=True))
    assert first == again
    assert first["choices"][0]["message"]["content"] != other["choices"][0]["message"]["content"]
    assert request_digest(chat()) == request_digest(chat(stream=True, stream_options={}))


def test_stream_carries_the_same_text_for_each_choice() -> None:
    body = chat(n=3, max_tokens=12)
    plain = full_body(completion_job(POD, body, chat=True))
    expected = {c["index"]: c["message"]["content"] for c in plain["choices"]}
    assert streamed_text({**body, "stream": True}) == expected
    assert len(expected) == 3


def test_max_tokens_caps_length_and_reports_length() -> None:
    generation = generate("ab" * 32, 0, max_tokens=3)
    assert len(generation.pieces) == 3
    assert generation.finish_reason == "length"
    unbounded = generate("ab" * 32, 0, max_tokens=None)
    assert unbounded.finish_reason == "stop"
    assert 8 <= len(unbounded.pieces) <= 32


def test_stop_sequence_cuts_before_it() -> None:
    full = generate("cd" * 32, 0, max_tokens=None).text
    word = full.split()[3]
    cut = generate("cd" * 32, 0, max_tokens=None, stop=[word])
    assert cut.text == full[: full.find(word)]
    assert cut.finish_reason == "stop"


def test_usage_chunk_comes_last_before_done_when_asked() -> None:
    body = chat(stream=True, stream_options={"include_usage": True}, max_tokens=4)
    events = stream_events(completion_job(POD, body, chat=True))
    assert events[-1] == b"data: [DONE]\n\n"
    usage_chunk = json.loads(events[-2].decode().removeprefix("data: "))
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 4
    without = stream_events(completion_job(POD, chat(stream=True, max_tokens=4), chat=True))
    assert b'"usage"' not in b"".join(without)
