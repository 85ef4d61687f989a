"""The in-flight table: identical concurrent misses share one `Flight`.

`Coalescer` owns the flights that clients may join (keyed by cache key), starts new ones,
and is each flight's `on_done`: it unlists the flight, stores a COMPLETE answer in the
cache (only then, never a stream cut short, an error or a cancelled call) and counts the
upstream side in the metrics (latency, time to first event, tokens, errors).

A flight whose last client leaves before it finished is unlisted at once and cancelled: a
client arriving before the task has wound down must start a flight of its own, not join
the cancelled one (found by the load test: it got 502 upstream_dropped).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from podmgr.proxy.cache.entry import CachedAnswer
from podmgr.proxy.cache.key import CacheDecision
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.forward.flight import Flight, FlightState, UpstreamCall
from podmgr.proxy.observe.metrics import ProxyMetrics
from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.upstream.transport import Transport

__all__ = ["Coalescer", "CountedCall"]


class CountedCall(Protocol):
    """What the metrics count of one upstream call (a `Flight` and an `AloneCall` are)."""

    @property
    def call(self) -> UpstreamCall: ...
    @property
    def tokens(self) -> tuple[int, int]: ...
    @property
    def first_event_seconds(self) -> float | None: ...
    @property
    def cancelled(self) -> bool: ...
    @property
    def upstream_seconds(self) -> float: ...
    @property
    def failure(self) -> ProxyFailure | None: ...


class Coalescer:
    """Starts flights, lets clients join them, and settles them when they end."""

    def __init__(
        self,
        client: Transport,
        cache: CacheStore,
        metrics: ProxyMetrics,
        usage_sink: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self._client = client
        self._usage_sink = usage_sink  # (upstream name, prompt, completion tokens)
        self._cache = cache
        self._metrics = metrics
        self._shared: dict[str, Flight] = {}  # joinable flights by cache key
        self._all: set[Flight] = set()  # every flight still running (shared or not)
        self._decisions: dict[Flight, CacheDecision] = {}

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, key: str) -> bool:
        return key in self._shared

    def get(self, key: str) -> Flight | None:
        """The flight a client with this cache key may join, if any."""
        return self._shared.get(key)

    def start(
        self,
        call: UpstreamCall,
        decision: CacheDecision,
        *,
        share: bool,
        client: Transport | None = None,
        in_task: bool = True,
    ) -> Flight:
        """Send `call` upstream (through `client`, by default the coalescer's); its answer is
        stored if `decision.store`, and other clients with the same key may join it while
        it runs if `share`. With `in_task` off the flight is not started: its one client
        runs it (`Flight.run_here`)."""
        flight = Flight(client or self._client, call, self._done)
        self._all.add(flight)
        self._decisions[flight] = decision
        if share:
            self._shared[decision.key] = flight
        return flight.start() if in_task else flight

    def join(self, flight: Flight) -> None:
        flight.subscribers += 1

    def leave(self, flight: Flight) -> None:
        """A client is done with `flight`; the last one to leave early cancels it."""
        flight.subscribers -= 1
        if flight.subscribers <= 0 and not flight.finished:
            self._unlist(flight)
            flight.cancel()

    async def close(self, timeout: float = 5.0) -> None:
        """Cancel the calls still running; let answers already complete finish storing."""
        flights = list(self._all)
        for flight in flights:
            flight.cancel()
        if flights:
            await asyncio.wait([flight.task for flight in flights], timeout=timeout)

    def _unlist(self, flight: Flight) -> None:
        key = self._decisions[flight].key
        if self._shared.get(key) is flight:
            del self._shared[key]

    async def _done(self, flight: Flight) -> None:
        decision = self._decisions[flight]
        try:
            self.count(flight)
            if flight.state is FlightState.COMPLETE and decision.store:
                await self._store(flight, decision)
        finally:
            self._unlist(flight)
            self._all.discard(flight)
            del self._decisions[flight]

    def count(self, done: CountedCall) -> None:
        """Count the upstream side of one call in the metrics: a flight's, when it ends, or
        one made alone (alone.py)."""
        metrics, route = self._metrics, done.call.route
        prompt, completion = done.tokens
        if prompt:
            metrics.prompt_tokens.inc(prompt)
        if completion:
            metrics.completion_tokens.inc(completion)
        if self._usage_sink is not None and (prompt or completion):
            self._usage_sink(done.call.upstream, prompt, completion)
        if done.first_event_seconds is not None:
            metrics.ttft.labels(route).observe(done.first_event_seconds)
        if done.cancelled:
            return
        metrics.upstream_latency.labels(route).observe(done.upstream_seconds)
        if done.failure is not None:
            metrics.upstream_errors.labels(done.failure.kind).inc()

    async def _store(self, flight: Flight, decision: CacheDecision) -> None:
        expires = time.time() + decision.ttl if decision.ttl else None
        sse_body: bytes | None = None
        span: tuple[int, int] | None = None
        if flight.sse:
            events, usage = flight.events, flight.usage_index
            sse_body = b"".join(events)
            if usage >= 0:
                start = sum(len(event) for event in events[:usage])
                span = (start, start + len(events[usage]))
        answer = CachedAnswer(flight.answer_json(), sse_body, span, expires)
        evicted = await self._cache.put(decision.key, answer)
        if evicted:
            self._metrics.evictions.inc(len(evicted))
