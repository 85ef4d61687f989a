"""Server-sent events as vLLM sends them: split into events, spot the usage chunk, and
assemble a stream into the JSON answer a non-streaming request expects.

The proxy asks the model server for a stream even when the client did not (a stream keeps
RunPod's edge connection alive past its 100 s limit) and builds the JSON itself here, so a
streamed and a non-streamed request for the same answer share one cache entry. When the
upstream has no edge limit a non-streaming request goes as it is, and `stream_from_json`
turns its JSON answer into the stream a later streaming client of the same entry expects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

__all__ = [
    "DONE_EVENT",
    "EventSplitter",
    "assemble",
    "event_data",
    "is_done",
    "is_error_event",
    "is_usage_event",
    "split_events",
    "stream_from_json",
    "usage_split",
]

DONE_EVENT = b"data: [DONE]\n\n"


class EventSplitter:
    """Cuts a byte stream at SSE event boundaries (a blank line).

    `feed` returns all the complete events that arrived, as one blob (the proxy relays and
    records them as they are; only a blob that may hold usage or an error is looked into).
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, piece: bytes) -> bytes:
        data = self._buffer + piece if self._buffer else piece
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data
            return b""
        self._buffer = data[end + 2 :]
        return data[: end + 2]

    def rest(self) -> bytes:
        """Bytes after the last complete event (an unfinished one)."""
        return self._buffer


def split_events(blob: bytes) -> list[bytes]:
    """The events of a blob of whole events, each with its closing blank line."""
    return [event + b"\n\n" for event in blob.split(b"\n\n") if event.strip()]


def event_data(event: bytes) -> bytes | None:
    """The `data:` payload of one event (joined if on several lines), None if it has none."""
    if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2:
        return event[6:-2]  # the usual shape, one `data: ...` line: no split needed
    lines = [line for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[5:].lstrip(b" ") for line in lines)


def is_done(event: bytes) -> bool:
    return event_data(event) == b"[DONE]"


def _parse(event: bytes) -> Any:
    data = event_data(event)
    if data is None or data == b"[DONE]":
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def is_usage_event(event: bytes) -> bool:
    """The trailing `choices: []` chunk that carries `usage` (include_usage)."""
    if b'"usage"' not in event:
        return False
    chunk = _parse(event)
    return (
        isinstance(chunk, dict)
        and chunk.get("choices") == []
        and isinstance(chunk.get("usage"), dict)
    )


def is_error_event(event: bytes) -> bool:
    """vLLM reports a failure mid-stream as `data: {"error": {...}}`."""
    if b'"error"' not in event:
        return False
    chunk = _parse(event)
    return isinstance(chunk, dict) and "error" in chunk


def _merge_tool_calls(target: list[dict[str, Any]], deltas: list[dict[str, Any]]) -> None:
    for delta in deltas:
        index = delta.get("index", len(target))
        while len(target) <= index:
            target.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        call = target[index]
        if delta.get("id"):
            call["id"] = delta["id"]
        if delta.get("type"):
            call["type"] = delta["type"]
        function = delta.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""


def _chat_choice(index: int) -> dict[str, Any]:
    return {
        "index": index,
        "message": {"role": "assistant", "content": None},
        "logprobs": None,
        "finish_reason": None,
    }


def _add_chat_delta(choice: dict[str, Any], part: dict[str, Any]) -> None:
    delta = part.get("delta") or {}
    message = choice["message"]
    if len(delta) == 1 and "content" in delta and part.get("logprobs") is None:
        if delta["content"] is not None:  # the common chunk: just more text
            message["content"] = (message["content"] or "") + delta["content"]
        return
    if delta.get("role"):
        message["role"] = delta["role"]
    for field in ("content", "reasoning_content", "reasoning"):
        if delta.get(field) is not None:
            message[field] = (message.get(field) or "") + delta[field]
    if delta.get("tool_calls"):
        _merge_tool_calls(message.setdefault("tool_calls", []), delta["tool_calls"])
    logprobs = part.get("logprobs")
    if logprobs and logprobs.get("content") is not None:
        if choice["logprobs"] is None:
            choice["logprobs"] = {"content": []}
        choice["logprobs"]["content"].extend(logprobs["content"])


def _add_text_delta(choice: dict[str, Any], part: dict[str, Any]) -> None:
    choice["text"] += part.get("text") or ""
    logprobs = part.get("logprobs")
    if logprobs:
        if choice["logprobs"] is None:
            choice["logprobs"] = {key: [] for key in logprobs}
        for key, values in logprobs.items():
            if isinstance(values, list):
                choice["logprobs"].setdefault(key, []).extend(values)


def _blob_chunks(blob: bytes) -> list[Any] | None:
    """All chunks of a blob in one parse, when it is the usual run of one-line `data: {..}`
    events (JSON never holds a raw newline, so the only newlines are the separators);
    None when it is anything else."""
    if blob.endswith(DONE_EVENT):
        blob = blob[: -len(DONE_EVENT)]
    if not blob:
        return []
    if not (blob.startswith(b"data: {") and blob.endswith(b"}\n\n")):
        return None
    separators = blob.count(b"\n\ndata: {")
    if blob.count(b"\n") != 2 * separators + 2:
        return None
    try:
        chunks: list[Any] = orjson.loads(b"[" + blob[6:-2].replace(b"\n\ndata: ", b",") + b"]")
    except orjson.JSONDecodeError:
        return None
    return chunks


def _chunks(blobs: list[bytes]) -> Iterator[Any]:
    for blob in blobs:
        fast = _blob_chunks(blob)
        if fast is not None:
            yield from fast
            continue
        for event in blob.split(b"\n\n"):
            if event.strip():
                yield _parse(event + b"\n\n")


def usage_split(blob: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(before, usage event, after) if `blob` holds the usage chunk, found from its last
    `"usage"` (it closes the stream); None if it does not."""
    at = blob.rfind(b'"usage"')
    if at < 0:
        return None
    start = blob.rfind(b"\n\n", 0, at)
    start = 0 if start < 0 else start + 2
    end = blob.find(b"\n\n", at)
    if end < 0:
        return None
    event = blob[start : end + 2]
    if not is_usage_event(event):
        return None
    return blob[:start], event, blob[end + 2 :]


def assemble(blobs: list[bytes]) -> bytes:
    """Build the non-streaming JSON answer (chat or text completion) from its stream
    (`blobs`: the stream's bytes, cut anywhere between events)."""
    answer: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    chat = True
    for chunk in _chunks(blobs):
        if not isinstance(chunk, dict):
            continue
        if not answer:
            chat = chunk.get("object", "chat.completion.chunk").startswith("chat")
            answer = {
                "id": chunk.get("id"),
                "object": "chat.completion" if chat else "text_completion",
                "created": chunk.get("created"),
                "model": chunk.get("model"),
            }
            if chunk.get("system_fingerprint") is not None:
                answer["system_fingerprint"] = chunk["system_fingerprint"]
        if chunk.get("usage"):
            answer["usage"] = chunk["usage"]
        for part in chunk.get("choices") or []:
            index = part.get("index", 0)
            if index not in choices:
                choices[index] = (
                    _chat_choice(index)
                    if chat
                    else {"index": index, "text": "", "logprobs": None, "finish_reason": None}
                )
            choice = choices[index]
            (_add_chat_delta if chat else _add_text_delta)(choice, part)
            if part.get("finish_reason") is not None:
                choice["finish_reason"] = part["finish_reason"]
            if part.get("stop_reason") is not None:
                choice["stop_reason"] = part["stop_reason"]
    usage = answer.pop("usage", None)
    answer["choices"] = [choices[index] for index in sorted(choices)]
    answer["usage"] = usage
    return orjson.dumps(answer)


def _chunk_choice(choice: dict[str, Any], chat: bool) -> dict[str, Any]:
    """A whole answer's choice as the one chunk choice that carries all of it."""
    part: dict[str, Any] = {"index": choice.get("index", 0)}
    if chat:
        message = choice.get("message") or {}
        delta = {k: v for k, v in message.items() if v is not None and k != "tool_calls"}
        calls = message.get("tool_calls")
        if calls:
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
        part["delta"] = delta
    else:
        part["text"] = choice.get("text", "")
    part["logprobs"] = choice.get("logprobs")
    part["finish_reason"] = choice.get("finish_reason")
    return part


def stream_from_json(answer: bytes, include_usage: bool) -> bytes | None:
    """The SSE replay of a JSON completion (one chunk, the usage chunk if asked, [DONE]);
    None when `answer` is not a completion."""
    try:
        whole: Any = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(whole, dict) or not isinstance(whole.get("choices"), list):
        return None
    chat = whole.get("object") == "chat.completion"
    head = {
        "id": whole.get("id"),
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": whole.get("created"),
        "model": whole.get("model"),
    }
    choices = [_chunk_choice(c, chat) for c in whole["choices"] if isinstance(c, dict)]
    events = [b"data: " + orjson.dumps({**head, "choices": choices}) + b"\n\n"]
    if include_usage and whole.get("usage") is not None:
        usage = {**head, "choices": [], "usage": whole["usage"]}
        events.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    events.append(DONE_EVENT)
    return b"".join(events)
