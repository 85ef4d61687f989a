"""Unit tests of the proxy's pure parts: cache key and decisions, SSE assembly, the entry
format, the on-disk LRU index, and upstream selection from the state."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from podmgr.proxy.cache.db import CacheDB
from podmgr.proxy.cache.entry import CachedAnswer, decode, encode
from podmgr.proxy.cache.key import cache_key, cache_scope, decide
from podmgr.proxy.forward.sse import (
    EventSplitter,
    assemble,
    is_usage_event,
    split_events,
    usage_split,
)
from podmgr.proxy.openai_errors import transport_failure, upstream_status_failure
from podmgr.proxy.upstream import transport
from podmgr.proxy.upstream.outgoing import upstream_body
from podmgr.proxy.upstream.resolver import root_url, upstream_from_state
from podmgr.state import PodRecord, Session, State

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def test_key_is_canonical_and_ignores_delivery_fields() -> None:
    reordered = dict(reversed(list(BODY.items())))
    delivery = {**BODY, "stream": True, "stream_options": {"include_usage": True}, "user": "u"}
    assert cache_key("chat/completions", BODY) == cache_key("chat/completions", reordered)
    assert cache_key("chat/completions", BODY) == cache_key("chat/completions", delivery)
    assert cache_key("chat/completions", BODY) != cache_key("completions", BODY)
    assert cache_key("chat/completions", BODY) != cache_key(
        "chat/completions", {**BODY, "temperature": 0.5}
    )
    namespaced = {**BODY, "cache": {"namespace": "team-a"}}
    assert cache_key("chat/completions", BODY) != cache_key("chat/completions", namespaced)


def test_key_format_is_stable() -> None:
    """Keys are stored in the disk cache: a change of form would make every stored answer
    miss (these were computed by the key's first form: BLAKE2b-128 of route, NUL, sorted
    JSON). Change them only on purpose."""
    assert cache_key("chat/completions", BODY, cache_scope("upstream", "m")) == (
        "cddf269f4424339ea773cbffc91a340b"
    )
    controlled = {**BODY, "stream": True, "cache": {"namespace": "team-a", "ttl": 5}}
    assert cache_key("chat/completions", controlled, cache_scope("pod", "m")) == (
        "6b23b58e6c9f2703c10184523f875705"
    )
    assert cache_key("embeddings", {"input": "x"}) == "b781216f5fe10286edc5a1f99c61ab76"


@pytest.mark.parametrize(
    ("mode", "body", "header", "lookup", "store"),
    [
        ("all", {"temperature": 0.9}, None, True, True),
        ("deterministic", {"temperature": 0.9}, None, False, False),
        ("deterministic", {"seed": 1}, None, True, True),
        ("deterministic", {"temperature": 0}, None, True, True),
        ("off", {"temperature": 0}, None, False, False),
        ("all", {}, "no-cache", False, True),
        ("all", {}, "no-store", False, False),
        ("all", {}, "max-age=0, no-store", False, False),
        ("all", {"cache": {"no-cache": True}}, None, False, True),
        ("all", {"cache": {"no-store": True}}, None, False, False),
        ("all", {"cache": "not controls"}, None, True, True),
        ("all", {"cache": {"no-cache": True}}, "no-store", False, False),
    ],
)
def test_decisions(
    mode: str, body: dict[str, object], header: str | None, lookup: bool, store: bool
) -> None:
    decision = decide("chat/completions", body, header, mode)  # type: ignore[arg-type]
    assert (decision.lookup, decision.store) == (lookup, store)


def test_ttl_and_uncacheable_routes() -> None:
    assert decide("chat/completions", {"cache": {"ttl": 5}}, None, "all").ttl == 5.0
    assert not decide("tokenize", {}, None, "all").store
    assert decide("embeddings", {"input": "x"}, None, "deterministic").store


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def test_assemble_chat_with_tool_calls_and_usage() -> None:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    call = {"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}
    more = {"index": 0, "function": {"arguments": '{"a": 1}'}}
    events = [
        _event(
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "He"}}]}
        ),
        _event({**base, "choices": [{"index": 0, "delta": {"content": "llo"}}]}),
        _event({**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}),
        _event(
            {
                **base,
                "choices": [
                    {"index": 0, "delta": {"tool_calls": [more]}, "finish_reason": "tool_calls"}
                ],
            }
        ),
        _event({**base, "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}),
        b"data: [DONE]\n\n",
    ]
    answer = orjson.loads(assemble(events))
    assert answer["object"] == "chat.completion" and answer["id"] == "c1"
    choice = answer["choices"][0]
    assert choice["message"]["content"] == "Hello"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert choice["finish_reason"] == "tool_calls"
    assert answer["usage"]["completion_tokens"] == 3
    assert is_usage_event(events[-2]) and not is_usage_event(events[0])


def test_assemble_text_completion() -> None:
    base = {"id": "x", "object": "text_completion", "created": 1, "model": "m"}
    events = [
        _event({**base, "choices": [{"index": 0, "text": "def "}]}),
        _event({**base, "choices": [{"index": 0, "text": "f():", "finish_reason": "stop"}]}),
    ]
    answer = orjson.loads(assemble(events))
    assert answer["object"] == "text_completion"
    assert (
        answer["choices"][0]["text"] == "def f():"
        and answer["choices"][0]["finish_reason"] == "stop"
    )


def test_event_splitter_handles_split_and_crlf() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b'data: {"a"') == b""
    assert splitter.feed(b": 1}\n\ndata: [DO") == b'data: {"a": 1}\n\n'
    assert splitter.feed(b"NE]\r\n\r\n") == b"data: [DONE]\n\n"
    blob = b"data: 1\n\n: keep-alive\n\ndata: 2\n\n"
    assert split_events(blob) == [b"data: 1\n\n", b": keep-alive\n\n", b"data: 2\n\n"]


def test_assemble_from_blobs_cut_between_events() -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = [
        _event({**base, "choices": [{"index": 0, "delta": {"content": word}}]})
        for word in ("a", "b", "c")
    ]
    blobs = [events[0] + events[1], events[2] + b": comment\n\ndata: [DONE]\n\n"]
    assert orjson.loads(assemble(blobs))["choices"][0]["message"]["content"] == "abc"


def test_entry_round_trip_and_damage() -> None:
    sse = b"data: a\n\ndata: usage\n\ndata: [DONE]\n\n"
    answer = CachedAnswer(b'{"x":1}', sse, (9, 22), None)
    data = encode(answer)
    assert decode(data) == answer
    assert answer.sse_body(False) == b"data: a\n\ndata: [DONE]\n\n"
    assert answer.sse_body(True) == sse
    assert decode(data[:-1]) is None
    assert decode(data[:10]) is None
    assert decode(b"") is None
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF
    assert decode(bytes(flipped)) is None


def test_db_lru_is_exact_and_follows_touches(tmp_path: Path) -> None:
    db = CacheDB(tmp_path)
    now = time.time()
    for index, key in enumerate(["aa1", "bb2", "cc3"]):
        assert db.put(key, b"x" * 10, None, now + index, (3, 1000)) == []
    db.touch({"aa1": now + 10})
    assert db.put("dd4", b"x" * 10, None, now + 11, (3, 1000)) == ["bb2"]
    assert [row.key for row in db.rows()] == ["cc3", "aa1", "dd4"]
    assert db.put("ee5", b"x" * 35, None, now + 12, (10, 50)) == ["cc3", "aa1"]
    assert db.totals().entries == 2 and db.totals().bytes == 45
    assert sorted(p.name for p in tmp_path.glob("entries/*/*")) == ["dd4", "ee5"]
    assert db.clear().entries == 2 and db.totals().entries == 0
    db.close()


def test_db_damaged_index_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "index.sqlite3").write_bytes(b"this is not sqlite" * 100)
    db = CacheDB(tmp_path)
    assert db.totals().entries == 0
    db.close()
    assert list(tmp_path.glob("index.corrupt-*"))


def test_root_url() -> None:
    assert root_url("http://h:1/v1") == "http://h:1"
    assert root_url("http://h:1/v1/") == "http://h:1"
    assert root_url("http://h:1/pods/x-8000/") == "http://h:1/pods/x-8000"


def _pod(phase: str, url: str | None = "http://127.0.0.1:9/pods/p-8000") -> PodRecord:
    return PodRecord(
        id="p", name="podmgr-p", gpu_type_id="g", created_at=1, phase=phase,  # type: ignore[arg-type]
        endpoint_url=url, vllm_api_key="test-vllm-key-not-real",
    )  # fmt: skip


def test_upstream_from_state() -> None:
    ready = upstream_from_state(State(pod=_pod("ready")))
    assert ready.ready and ready.auth_header == b"Bearer test-vllm-key-not-real"
    assert ready.url_host == "127.0.0.1:9"
    assert upstream_from_state(None).reason == "no_pod"
    assert upstream_from_state(State(pod=_pod("starting"))).reason == "pod_starting"
    assert upstream_from_state(State(pod=_pod("ready", None))).reason == "pod_starting"
    assert upstream_from_state(State(pod=_pod("stopped"))).reason == "pod_stopped"
    ended = Session(started_at=1, deadline=2, ended_at=2, end_reason="budget")
    failure = upstream_from_state(State(session=ended)).failure
    assert failure is not None and failure.status == 503 and "budget" in failure.message


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, b"", 502),
        (404, b'{"error": {"message": "no model"}}', 404),
        (500, b"<html>", 502),
        (502, b"<html>", 502),
        (503, b"", 503),
        (524, b"<html>", 504),
    ],
)
def test_upstream_status_mapping(status: int, body: bytes, expected: int) -> None:
    failure = upstream_status_failure(status, body)
    assert failure.status == expected
    assert "error" in orjson.loads(failure.body)


def test_upstream_body() -> None:
    sent = orjson.loads(upstream_body("chat/completions", {**BODY, "cache": {"ttl": 1}}))
    assert "cache" not in sent and sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    kept = orjson.loads(
        upstream_body("completions", {"prompt": "x", "stream_options": {"continuous": 1}})
    )
    assert kept["stream_options"] == {"continuous": 1, "include_usage": True}
    assert "stream" not in orjson.loads(upstream_body("completions", {"best_of": 3}))
    assert orjson.loads(upstream_body("completions", {"best_of": 1}))["stream"] is True
    assert "stream" not in orjson.loads(upstream_body("embeddings", {"input": "x"}))


def test_usage_split_finds_the_closing_usage_chunk() -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    text = _event({**base, "choices": [{"index": 0, "delta": {"content": "x"}}], "usage": None})
    usage = _event({**base, "choices": [], "usage": {"prompt_tokens": 1}})
    done = b"data: [DONE]\n\n"
    assert usage_split(text + usage + done) == (text, usage, done)
    assert usage_split(usage) == (b"", usage, b"")
    assert usage_split(text + done) is None


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (transport.ConnectTimeout("c"), 504, "upstream_timeout"),
        (transport.ReadTimeout("r"), 504, "upstream_timeout"),
        (transport.PoolTimeout("p"), 504, "upstream_timeout"),
        (transport.UpstreamUnreachable("u"), 502, "upstream_unreachable"),
        (transport.UpstreamDropped("d"), 502, "upstream_dropped"),
        (transport.InvalidUpstreamRequest("i"), 400, "invalid_header"),
    ],
)
def test_each_transport_error_has_its_answer(
    error: transport.UpstreamError, status: int, code: str
) -> None:
    failure = transport_failure(error)
    assert (failure.status, failure.code) == (status, code)
    assert set(orjson.loads(failure.body)["error"]) == {"message", "type", "param", "code"}
