"""Chat and text completions of the simulated vLLM, as JSON or as an SSE stream.

Both shapes are built from the same `Generation`s, so a streamed request and the same
request without `stream` carry the same text. A plain answer is ready after
`token_delay` seconds per generated token (a long generation can hit the edge's 524); a
stream starts at once and waits `token_delay` between chunks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from podmgr.sim.reply import Reply, json_reply
from podmgr.sim.textgen import Generation, request_created, request_digest

__all__ = ["CompletionJob", "answer"]

Usage = dict[str, int]


@dataclass(frozen=True)
class CompletionJob:
    """A validated request: which endpoint, for which model, what was generated."""

    chat: bool
    model: str
    body: dict[str, Any]
    generations: tuple[Generation, ...]
    prompt_tokens: int

    @property
    def digest(self) -> str:
        return request_digest(self.body)

    @property
    def completion_id(self) -> str:
        return ("chatcmpl-" if self.chat else "cmpl-") + self.digest[:32]

    @property
    def usage(self) -> Usage:
        completion = sum(len(g.pieces) for g in self.generations)
        return {
            "prompt_tokens": self.prompt_tokens,
            "total_tokens": self.prompt_tokens + completion,
            "completion_tokens": completion,
        }

    def header(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": obj,
            "created": request_created(self.digest),
            "model": self.model,
        }


def _json_choice(job: CompletionJob, gen: Generation) -> dict[str, Any]:
    if job.chat:
        message = {"role": "assistant", "content": gen.text, "tool_calls": []}
        return {"index": gen.index, "message": message, "logprobs": None,
                "finish_reason": gen.finish_reason, "stop_reason": None}  # fmt: skip
    return {"index": gen.index, "text": gen.text, "logprobs": None,
            "finish_reason": gen.finish_reason, "stop_reason": None}  # fmt: skip


def full_body(job: CompletionJob) -> dict[str, Any]:
    obj = "chat.completion" if job.chat else "text_completion"
    choices = [_json_choice(job, gen) for gen in job.generations]
    return {**job.header(obj), "choices": choices, "usage": job.usage}


def _chunk(job: CompletionJob, index: int, piece: str | None, finish: str | None) -> bytes:
    if job.chat:
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if piece is None else {}
        if piece:
            delta["content"] = piece
        choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None}
    else:
        choice = {"index": index, "text": piece or "", "logprobs": None}
    choice["finish_reason"] = finish
    obj = "chat.completion.chunk" if job.chat else "text_completion"
    return _event({**job.header(obj), "choices": [choice]})


def _event(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def stream_events(job: CompletionJob) -> list[bytes]:
    """Every SSE event of the stream, in order, ending with `data: [DONE]`."""
    events: list[bytes] = []
    if job.chat:
        events += [_chunk(job, gen.index, None, None) for gen in job.generations]
    longest = max((len(gen.pieces) for gen in job.generations), default=0)
    for position in range(max(longest, 1)):
        for gen in job.generations:
            count = len(gen.pieces)
            if position < count:
                finish = gen.finish_reason if position == count - 1 else None
                events.append(_chunk(job, gen.index, gen.pieces[position], finish))
            elif position == 0:
                events.append(_chunk(job, gen.index, "", gen.finish_reason))
    options = job.body.get("stream_options") or {}
    if isinstance(options, dict) and options.get("include_usage"):
        obj = "chat.completion.chunk" if job.chat else "text_completion"
        events.append(_event({**job.header(obj), "choices": [], "usage": job.usage}))
    events.append(b"data: [DONE]\n\n")
    return events


async def _paced(events: list[bytes], delay: float) -> AsyncIterator[bytes]:
    for number, event in enumerate(events):
        if number and delay > 0:
            await asyncio.sleep(delay)
        yield event


async def answer(job: CompletionJob, token_delay: float) -> Reply:
    """The reply for a completion job: a paced SSE stream, or JSON after the generation time."""
    if job.body.get("stream"):
        headers = {"Cache-Control": "no-cache"}
        stream = _paced(stream_events(job), token_delay)
        return Reply(200, content_type="text/event-stream", stream=stream, headers=headers)
    if token_delay > 0:
        await asyncio.sleep(token_delay * job.usage["completion_tokens"])
    return json_reply(full_body(job))
