"""One upstream request that one or more clients wait on: the unit of coalescing.

A `Flight` owns the upstream call as a task of its own and keeps what arrived: the SSE
events of a stream, or the body of a JSON answer. Clients subscribe and are fed from that
record, live, so identical concurrent misses cost one upstream call and a late joiner of a
stream still gets it from the first event. When the last subscriber leaves before the end
(client disconnects), the task is cancelled, which closes the upstream connection at once.

Only a complete 200 answer is stored in the cache: never a stream cut short, an error, or
a cancelled request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from podmgr.logs import get_logger
from podmgr.proxy import openai_errors as errors
from podmgr.proxy.cache_entry import CachedAnswer
from podmgr.proxy.cache_key import CacheDecision
from podmgr.proxy.context import ProxyContext
from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.sse import EventSplitter, assemble, is_error_event, split_events, usage_split
from podmgr.proxy.transport import StreamedResponse

__all__ = ["Flight"]

log = get_logger("proxy.flight")
_ERROR_BODY_LIMIT = 64 * 1024


class Flight:
    """An upstream call and its record; see the module docstring."""

    def __init__(
        self,
        ctx: ProxyContext,
        route: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        decision: CacheDecision | None,
    ) -> None:
        self.ctx = ctx
        self.route = route
        self.key = decision.key if decision else None
        self.decision = decision
        self.events: list[bytes] = []  # whole SSE events, one or several per entry
        self.usage_index = -1
        self.json_body: bytes | None = None
        self.failure: ProxyFailure | None = None  # before any answer: a plain error response
        self.broken: ProxyFailure | None = None  # after the stream began: an SSE error event
        self.stream_error: bytes | None = None  # an error event vLLM sent mid-stream
        self.sse = False
        self.started = False
        self.done = False
        self.upstream_seconds = 0.0
        self.subscribers = 0
        self._assembled: bytes | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._done_waiters: list[asyncio.Future[None]] = []
        self._saw_done = False
        self.task = asyncio.ensure_future(self._run(url, body, headers))

    # --- subscribers ---------------------------------------------------------------------
    def join(self) -> None:
        self.subscribers += 1

    def leave(self) -> None:
        self.subscribers -= 1
        if self.subscribers <= 0 and not self.done:
            # Unlisted at once: a client arriving before the task has wound down must start
            # a flight of its own, not join this cancelled one (and fail with its DROPPED).
            self._unlist()
            self.task.cancel()

    def _unlist(self) -> None:
        if self.key is not None and self.ctx.flights.get(self.key) is self:
            del self.ctx.flights[self.key]

    async def changed(self) -> None:
        """Wait until something new arrived (an event, the headers, or the end)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        await future

    async def wait_started(self) -> None:
        while not (self.started or self.done):
            await self.changed()

    async def wait_done(self) -> None:
        """Wait for the end only (a JSON client need not wake up for every event)."""
        if not self.done:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._done_waiters.append(future)
            await future

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    @property
    def complete(self) -> bool:
        """A whole 200 answer arrived (stream ended by [DONE], no error in it)."""
        if not self.done or self.failure or self.broken or self.stream_error:
            return False
        return self._saw_done if self.sse else self.json_body is not None

    def answer_json(self) -> bytes:
        """The JSON form of the answer (assembled from the stream, once)."""
        if self.json_body is not None:
            return self.json_body
        if self._assembled is None:
            self._assembled = assemble(self.events)
        return self._assembled

    def stream_error_failure(self) -> ProxyFailure:
        """The mid-stream error as a response for a client that did not ask for a stream."""
        data = self.stream_error or b""
        body = data[data.find(b"{") :].split(b"\n")[0] if b"{" in data else b"{}"
        status = 502
        try:
            code = orjson.loads(body)["error"].get("code")
            status = code if isinstance(code, int) and 400 <= code < 500 else 502
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            body = errors.error_body("the model server failed mid-answer", "upstream_error")
        return ProxyFailure(status, "", "", "", "stream_error", body_override=body)

    # --- the upstream call ---------------------------------------------------------------
    async def _run(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            await self._call(url, body, headers)
            if self.complete and self.decision is not None and self.decision.store:
                await self._store()
        finally:
            self._unlist()

    async def _call(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        metrics = self.ctx.metrics
        started = time.perf_counter()
        cancelled = False
        try:
            await self._fetch(url, body, headers, started)
        except asyncio.CancelledError:
            cancelled = True
            self.broken = self.broken or errors.DROPPED
            raise
        except errors.TRANSPORT_ERRORS as error:
            self._fail(errors.transport_failure(error))
        except Exception:
            log.exception("upstream_call_failed", route=self.route)
            self._fail(errors.INTERNAL)
        finally:
            self.upstream_seconds = time.perf_counter() - started
            self.done = True
            self._wake()
            for future in self._done_waiters:
                if not future.done():
                    future.set_result(None)
            if not cancelled:
                metrics.upstream_latency.labels(self.route).observe(self.upstream_seconds)
                failure = self.failure or self.broken
                if failure is not None:
                    metrics.upstream_errors.labels(failure.kind).inc()

    async def _fetch(self, url: str, body: bytes, headers: dict[str, str], t0: float) -> None:
        client = self.ctx.client
        assert client is not None, "the upstream client is opened at startup"
        async with client.request("POST", url, body, headers) as response:
            if response.status != 200:
                data = await response.read(_ERROR_BODY_LIMIT)
                self._fail(errors.upstream_status_failure(response.status, data))
                return
            self.sse = response.content_type == "text/event-stream"
            if not self.sse:
                self.json_body = await self._read_json(response)
                return
            self.started = True
            self._wake()
            splitter = EventSplitter()
            first = True
            async for piece in response.chunks():
                blob = splitter.feed(piece)
                if not blob:
                    continue
                if first:
                    first = False
                    self.ctx.metrics.ttft.labels(self.route).observe(time.perf_counter() - t0)
                self._add(blob)
                self._wake()
            if not self._saw_done:
                self.broken = errors.DROPPED

    async def _read_json(self, response: StreamedResponse) -> bytes:
        data = await response.read()
        self._count_usage(data)
        return data

    def _add(self, blob: bytes) -> None:
        """Record whole events as they came. The usage chunk gets an entry of its own (so a
        replay can leave it out); a blob that may hold an error is looked into."""
        if b"[DONE]" in blob:
            self._saw_done = True
        if b'"error"' in blob:
            for event in split_events(blob):
                if is_error_event(event):
                    self.stream_error = event
        parts = usage_split(blob) if b'"usage"' in blob else None
        if parts is None:
            self.events.append(blob)
            return
        before, usage, after = parts
        if before:
            self.events.append(before)
        self.usage_index = len(self.events)
        self.events.append(usage)
        self._count_usage(usage[usage.find(b"{") :])
        if after:
            self.events.append(after)

    def _count_usage(self, data: bytes) -> None:
        try:
            usage: Any = orjson.loads(data).get("usage")
        except (orjson.JSONDecodeError, AttributeError):
            return
        if isinstance(usage, dict):
            metrics = self.ctx.metrics
            metrics.prompt_tokens.inc(int(usage.get("prompt_tokens") or 0))
            metrics.completion_tokens.inc(int(usage.get("completion_tokens") or 0))

    def _fail(self, failure: ProxyFailure) -> None:
        if self.started:
            self.broken = failure
        else:
            self.failure = failure

    async def _store(self) -> None:
        decision = self.decision
        assert decision is not None and self.key is not None
        expires = time.time() + decision.ttl if decision.ttl else None
        if self.sse:
            start = sum(len(event) for event in self.events[: max(self.usage_index, 0)])
            span = (
                (start, start + len(self.events[self.usage_index]))
                if self.usage_index >= 0
                else None
            )
            answer = CachedAnswer(self.answer_json(), b"".join(self.events), span, expires)
        else:
            answer = CachedAnswer(self.answer_json(), None, None, expires)
        evicted = await self.ctx.cache.put(self.key, answer)
        if evicted:
            self.ctx.metrics.evictions.inc(len(evicted))
