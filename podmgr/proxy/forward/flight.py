"""One upstream request that one or more clients wait on: the unit of coalescing.

A `Flight` sends one request through a `Transport` as a task of its own (`start()`), or in
its only client's task when nobody else can join it and the answer goes out whole
(`run_here()`), and keeps what arrived: the SSE events of a stream, or the body of a JSON
answer. Clients are fed from that record, live (`relay.serve_flight`), so identical
concurrent misses cost one upstream call and a late joiner of a stream still gets it from
the first event.

Its progress is ONE state, `FlightState`:

    WAITING ──> STREAMING ──> COMPLETE      a whole 200 answer (the only one worth storing)
       │            │
       └────────────┴───────> FAILED        `failure` says what to answer instead

`cancel()` (the last client left) ends it FAILED at once, which closes the upstream
connection. When the task ends, whatever the state, the flight calls its `on_done`
callback once (the coalescer's: unlist, store a COMPLETE answer, count upstream metrics).
A flight knows nothing of the cache, the metrics or the other flights.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import orjson

from podmgr.logs import get_logger
from podmgr.proxy import openai_errors as errors
from podmgr.proxy.forward.sse import (
    EventSplitter,
    assemble,
    is_error_event,
    split_events,
    usage_split,
)
from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.upstream.transport import StreamedResponse, Transport

__all__ = ["Flight", "FlightState", "UpstreamCall", "usage_tokens"]

log = get_logger("proxy.flight")
_ERROR_BODY_LIMIT = 64 * 1024


class FlightState(enum.Enum):
    """Where a flight is; see the module docstring for the moves between them."""

    WAITING = "waiting"  # request sent, nothing answered yet
    STREAMING = "streaming"  # an SSE answer: headers in, events arriving
    COMPLETE = "complete"  # a whole 200 answer (stream ended by [DONE], no error in it)
    FAILED = "failed"  # ended without a whole answer; `failure` says what to tell a client


class UpstreamCall(NamedTuple):
    """What a flight sends: a POST of `body` to `url` (route is the metric label; upstream
    names the configured upstream, for its own counters). A named tuple, as cheap to make
    for every request as a tuple."""

    route: str
    url: str
    body: bytes
    headers: dict[str, str]
    upstream: str = ""


class Flight:
    """An upstream call and its record; see the module docstring."""

    def __init__(
        self,
        client: Transport,
        call: UpstreamCall,
        on_done: Callable[[Flight], Awaitable[None]],
    ) -> None:
        self.call = call
        self.state = FlightState.WAITING
        self.failure: ProxyFailure | None = None  # set when FAILED
        self.sse = False  # the answer is a stream (decided when its headers arrive)
        self.events: list[bytes] = []  # whole SSE events, one or several per entry
        self.usage_index = -1  # the entry holding the usage chunk, -1 if none
        self.subscribers = 0
        # What the coalescer counts when the flight is done.
        self.upstream_seconds = 0.0
        self.first_event_seconds: float | None = None
        self.tokens = (0, 0)  # prompt, completion (from the usage the answer carried)
        self.cancelled = False
        self._client = client
        self._on_done = on_done
        self._json_body: bytes | None = None
        self._assembled: bytes | None = None
        self._broken: ProxyFailure | None = None  # a started stream ended short
        self._stream_error: bytes | None = None  # an error event vLLM sent mid-stream
        self._saw_done = False
        self._waiters: list[asyncio.Future[None]] = []
        self._done_waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> Flight:
        """Send the request (as a task of its own); returns self."""
        self._task = asyncio.ensure_future(self._run())
        return self

    async def run_here(self) -> None:
        """Send the request in the calling task and return when the flight has ended: for
        a flight only its caller waits on, whose answer goes out whole once it is in (no
        task to make, and no wake-up to hand the answer across). `cancel()` then cancels
        the caller's task, as it would the flight's own."""
        self._task = asyncio.current_task()
        await self._run()

    def cancel(self) -> None:
        """Abandon the upstream call (its connection closes at once)."""
        if self._task is not None and not self.finished:
            self._task.cancel()

    @property
    def task(self) -> asyncio.Task[None]:
        assert self._task is not None, "start() the flight first"
        return self._task

    @property
    def finished(self) -> bool:
        return self.state is FlightState.COMPLETE or self.state is FlightState.FAILED

    # --- waiting on it -------------------------------------------------------------------
    async def changed(self) -> None:
        """Wait until something new arrived (an event, the headers, or the end)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        await future

    async def wait_started(self) -> None:
        """Wait until the answer began (or the flight ended)."""
        while self.state is FlightState.WAITING:
            await self.changed()

    async def wait_done(self) -> None:
        """Wait for the end only (a JSON client need not wake up for every event)."""
        if not self.finished:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._done_waiters.append(future)
            await future

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    # --- the answer ----------------------------------------------------------------------
    def answer_json(self) -> bytes:
        """The JSON form of the answer (assembled from the stream, once)."""
        if self._json_body is not None:
            return self._json_body
        if self._assembled is None:
            self._assembled = assemble(self.events)
        return self._assembled

    def stream_tail(self) -> bytes:
        """What ends the stream for a client that has been fed its events: an SSE error
        event if the stream broke off, nothing if it ended as the model server ended it
        (an error event vLLM sent is among the events already)."""
        return self._broken.sse_event() if self._broken is not None else b""

    # --- the upstream call ---------------------------------------------------------------
    async def _run(self) -> None:
        started = time.perf_counter()
        try:
            await self._fetch(started)
        except asyncio.CancelledError:
            self.cancelled = True
            self._broken = self._broken or errors.DROPPED
            raise
        except errors.UPSTREAM_FAILURES as error:
            self._fail(errors.failure_of(error))
        except Exception:
            log.exception("upstream_call_failed", route=self.call.route)
            self._fail(errors.INTERNAL)
        finally:
            self.upstream_seconds = time.perf_counter() - started
            self._finish()
            await self._on_done(self)

    async def _fetch(self, t0: float) -> None:
        call = self.call
        async with self._client.request("POST", call.url, call.body, call.headers) as response:
            if response.status != 200:
                # Read, then failed outside the block: the connection stays reusable.
                data = await response.read(_ERROR_BODY_LIMIT)
                self._fail(errors.failure_of(errors.UpstreamStatus(response.status, data)))
                return
            self.sse = response.content_type == "text/event-stream"
            if not self.sse:
                self._json_body = await self._read_json(response)
                return
            self.state = FlightState.STREAMING
            self._wake()
            splitter = EventSplitter()
            async for piece in response.chunks():
                blob = splitter.feed(piece)
                if not blob:
                    continue
                if self.first_event_seconds is None:
                    self.first_event_seconds = time.perf_counter() - t0
                self._add(blob)
                self._wake()
            if not self._saw_done:
                self._broken = errors.DROPPED

    def _finish(self) -> None:
        """Settle the one final state from what arrived, and wake every waiter."""
        if self.state is not FlightState.FAILED:
            failure = self._broken
            if failure is None and self._stream_error is not None:
                failure = errors.mid_stream_failure(self._stream_error)
            whole = self._saw_done if self.sse else self._json_body is not None
            if failure is None and not whole:
                failure = errors.DROPPED
            self.failure = failure
            self.state = FlightState.FAILED if failure is not None else FlightState.COMPLETE
        self._wake()
        waiters, self._done_waiters = self._done_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

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
                    self._stream_error = event
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
        prompt, completion = usage_tokens(data)
        if prompt or completion:
            self.tokens = (self.tokens[0] + prompt, self.tokens[1] + completion)

    def _fail(self, failure: ProxyFailure) -> None:
        if self.state is FlightState.STREAMING:
            if self._saw_done:
                # The whole stream came, [DONE] included; the connection broke only before
                # the HTTP message's own end. Clients that got [DONE] have their answer: an
                # error event after it would break them (a proxy load run under faults saw it).
                return
            self._broken = failure  # the stream began: its clients get an SSE error event
        else:
            self.failure = failure
            self.state = FlightState.FAILED


def usage_tokens(data: bytes) -> tuple[int, int]:
    """The prompt and completion tokens of the `usage` in a JSON answer or chunk ((0, 0)
    when it has none, or is not JSON)."""
    try:
        usage: Any = orjson.loads(data).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return 0, 0
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
