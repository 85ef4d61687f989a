"""The two upstream paths: edge-safe (sent as a stream) for RunPod pods, as-is otherwise."""

from __future__ import annotations

from pathlib import Path

import orjson

from podmgr.proxy.forward.sse import stream_from_json
from podmgr.proxy.upstream.kinds import ManagedPod, OpenAIServer
from podmgr.proxy.upstream.outgoing import upstream_body
from podmgr.proxy.upstream.resolver import UpstreamResolver

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "cache": {"ttl": 5}}
ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hello"},
             "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }
)  # fmt: skip


def test_only_runpod_static_urls_are_edge_limited(tmp_path: Path) -> None:
    resolver = UpstreamResolver(tmp_path / "state.json")
    assert not OpenAIServer("http://127.0.0.1:8000/v1", None).target(resolver).edge_limited
    assert OpenAIServer("https://abc-8000.proxy.runpod.net", None).target(resolver).edge_limited
    assert ManagedPod().target(resolver).edge_limited


def test_as_is_body_keeps_the_request_but_drops_cache_controls() -> None:
    sent = orjson.loads(upstream_body("chat/completions", BODY, edge_safe=False))
    assert "stream" not in sent and "cache" not in sent and sent["messages"] == BODY["messages"]
    streamed = orjson.loads(upstream_body("chat/completions", {**BODY, "stream": True}, False))
    assert streamed["stream_options"] == {"include_usage": True}


def test_stream_from_json_replays_text_and_usage_on_request() -> None:
    plain = stream_from_json(ANSWER, include_usage=False)
    with_usage = stream_from_json(ANSWER, include_usage=True)
    assert plain is not None and with_usage is not None
    events = [e[6:] for e in plain.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]" and len(events) == 2
    chunk = orjson.loads(events[0])
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["choices"][0]["delta"] == {"role": "assistant", "content": "hello"}
    usage = orjson.loads([e[6:] for e in with_usage.split(b"\n\n") if e][-2])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 1
    assert stream_from_json(b'{"data": []}', include_usage=True) is None
