"""What one `/v1` request came to, recorded in one place: metrics and recent stats together.

The handler fills an `Outcome` as it goes and hands it to `Recorder.record` once, when the
request is over (after the answer was sent, before the event loop can serve anyone else:
nothing in `record` awaits, so a `/metrics` read that follows an answer sees it counted).
The upstream side of a flight (latency, tokens, its errors) is counted by the coalescer,
once per upstream call, not once per client.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

import orjson

from podmgr.proxy.observe.metrics import ProxyMetrics
from podmgr.proxy.observe.stats import RecentStats
from podmgr.proxy.openai_errors import ProxyFailure

__all__ = ["CacheResult", "Outcome", "Recorder"]


class CacheResult(enum.Enum):
    """What the cache did for a cacheable request (the `x-cache` header's value)."""

    HIT = "HIT"
    MISS = "MISS"
    BYPASS = "BYPASS"


@dataclass(slots=True)
class Outcome:
    """One request, from arrival to its last byte."""

    route: str
    at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    status: int = 0
    waited: float = 0.0  # seconds spent waiting on the model server (not our overhead)
    cache: CacheResult | None = None
    coalesced: bool = False  # joined a flight another client started
    failure: ProxyFailure | None = None  # what the client was told, if it was an error
    upstream_failure: ProxyFailure | None = None  # a pass-through's upstream error
    upstream: str | None = None  # the upstream that answered (None: the cache, or nobody)
    ttft: float | None = None  # a stream's time to its first event from the upstream


class Recorder:
    """Counts outcomes into the Prometheus metrics and the dashboard's recent stats.

    `record` runs once per request, so it is kept to plain additions on series bound here
    once (metrics.py's lock-free counters) and one call into the minute series; buckets
    become cumulative and percentiles are worked out only when `/metrics` or the dashboard
    is read."""

    def __init__(self, metrics: ProxyMetrics, stats: RecentStats) -> None:
        self.metrics = metrics
        self.stats = stats
        self._in_flight = metrics.in_flight.labels()
        self._overhead = metrics.overhead.labels()
        self._hit = metrics.hit
        self._miss = metrics.miss
        self._bypass = metrics.bypass

    def begin(self, route: str) -> Outcome:
        """A request arrived (the watchdog's idle rule reads `last_request_at`)."""
        outcome = Outcome(route)
        self.stats.last_request_at = outcome.at
        self._in_flight.inc()
        return outcome

    def record(self, outcome: Outcome) -> None:
        """The request is over: count it everywhere, once."""
        metrics, stats = self.metrics, self.stats
        elapsed = time.perf_counter() - outcome.started
        status, cache, at = outcome.status, outcome.cache, outcome.at
        self._in_flight.dec()
        metrics.request_series(outcome.route, status).inc()
        self._overhead.observe(max(0.0, elapsed - outcome.waited))
        stats.record(at, elapsed)
        upstream = outcome.upstream
        cache_hit: bool | None = None  # None: the cache was not looked in
        if cache is CacheResult.HIT:
            self._hit.inc()
            stats.hits += 1
            cache_hit, upstream = True, "cache"
        elif cache is CacheResult.MISS:
            self._miss.inc()
            stats.misses += 1
            cache_hit = False
        elif cache is CacheResult.BYPASS:
            self._bypass.inc()
            stats.bypasses += 1
        error = status >= 400
        stats.series.record(at, elapsed, outcome.ttft, cache_hit, upstream, error)
        if outcome.coalesced:
            metrics.coalesced.inc()
        if outcome.upstream_failure is not None:
            metrics.upstream_errors.labels(outcome.upstream_failure.kind).inc()
        if error:
            stats.record_error(at, outcome.route, status, _error_text(outcome))


def _error_text(outcome: Outcome) -> str:
    if outcome.status == 499:
        return "client disconnected"
    failure = outcome.failure
    if failure is None:
        return f"HTTP {outcome.status}"
    if failure.message:
        return failure.message
    try:
        return str(orjson.loads(failure.body)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"HTTP {outcome.status}"
