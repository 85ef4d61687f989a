"""Prometheus metrics of the proxy (`GET /metrics`), in a registry of its own per app.

Counters and histograms are updated on the request path: they are the lock-free kinds of
`counters.py` (plain numbers, exported in prometheus_client's own format when `/metrics`
is read), and the series a request touches are bound once; gauges that mirror other
objects (cache size, pod phase, session cost) are read at scrape time by a collector,
costing requests nothing.
Labels stay low-cardinality: `route` is one of a fixed set (see `route_label`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from podmgr.proxy.observe.counters import CounterFamily, GaugeFamily, HistogramFamily, Tally
from podmgr.session_cost import session_cost
from podmgr.state import State, pod_record

__all__ = ["ProxyMetrics", "Snapshot", "route_label"]

KNOWN_ROUTES = (
    "chat/completions",
    "completions",
    "embeddings",
    "models",
    "rerank",
    "score",
    "tokenize",
    "detokenize",
)
_KNOWN = frozenset(KNOWN_ROUTES)
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
)
_OVERHEAD_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
)
PHASES = ("none", "creating", "starting", "ready", "stopped", "restarting")


def route_label(route: str) -> str:
    """A fixed label for a path under /v1 (`other` for anything unknown)."""
    return route if route in _KNOWN else "other"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the scrape-time collector reads from the rest of the proxy."""

    cache_entries: int
    cache_bytes: int
    state: State | None
    upstream_ready: bool
    budget_usd: float | None = None
    pods_in_history: int = 0
    pod_names: tuple[str, ...] = ("pod",)


class _LiveCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        snap = self._snapshot()
        yield GaugeMetricFamily(
            "podmgr_proxy_cache_entries", "Entries in the answer cache.", snap.cache_entries
        )
        yield GaugeMetricFamily(
            "podmgr_proxy_cache_bytes", "Bytes of the answer cache on disk.", snap.cache_bytes
        )
        yield GaugeMetricFamily(
            "podmgr_proxy_upstream_ready",
            "1 if requests can be forwarded now.",
            1.0 if snap.upstream_ready else 0.0,
        )
        pod = pod_record(snap.state, snap.pod_names[0])
        phase = GaugeMetricFamily(
            "podmgr_pod_phase", "1 for the (first) pod's current phase.", labels=["phase"]
        )
        current = pod.phase if pod else "none"
        for name in PHASES:
            phase.add_metric([name], 1.0 if name == current else 0.0)
        yield phase
        yield _pods_phase(snap)
        now = time.time()
        yield GaugeMetricFamily(
            "podmgr_session_cost_usd",
            "Cost of the current session so far (USD).",
            session_cost(snap.state, now),
        )
        yield from _session_limits(snap, now)
        yield CounterMetricFamily(
            "podmgr_cold_starts",
            "Pods created for sessions (each loads its model from scratch): those of the ended "
            "sessions in the history file plus the current session's. Resumes of a stopped pod "
            "are not counted.",
            snap.pods_in_history + _current_session_pods(snap.state),
        )


def _pods_phase(snap: Snapshot) -> GaugeMetricFamily:
    """Every configured pod's phase by its name (issue 23: several pods, one proxy)."""
    family = GaugeMetricFamily(
        "podmgr_pods_phase", "1 for each configured pod's current phase.", labels=["pod", "phase"]
    )
    for pod_name in snap.pod_names:
        pod = pod_record(snap.state, pod_name)
        current = pod.phase if pod else "none"
        for name in PHASES:
            family.add_metric([pod_name, name], 1.0 if name == current else 0.0)
    return family


def _session_limits(snap: Snapshot, now: float) -> Iterator[GaugeMetricFamily]:
    """Budget and deadline of the active session (absent without one)."""
    session = snap.state.session if snap.state else None
    if session is None or not session.active:
        return
    if snap.budget_usd is not None:
        yield GaugeMetricFamily(
            "podmgr_session_budget_usd",
            "The session's budget, max_cost_usd (USD).",
            snap.budget_usd,
        )
    yield GaugeMetricFamily(
        "podmgr_session_deadline_timestamp_seconds",
        "When the session ends at the latest (Unix time).",
        session.deadline,
    )
    yield GaugeMetricFamily(
        "podmgr_session_seconds_left",
        "Seconds until the session's deadline.",
        max(0.0, session.deadline - now),
    )


def _current_session_pods(state: State | None) -> int:
    """Pods of the active session (an ended one is in the history already)."""
    session = state.session if state else None
    if state is None or session is None or not session.active:
        return 0
    ids = {pod.id for pod in session.pods}
    if state.pod is not None:
        ids.add(state.pod.id)
    ids.update(pod.id for pod in state.pods.values())
    return len(ids)


class ProxyMetrics:
    """Every metric the proxy exports, bound to one registry."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = CounterFamily(
            "podmgr_proxy_requests",
            "Requests under /v1 by route and status.",
            ["route", "status"],
            registry=reg,
        )
        self.cache = CounterFamily(
            "podmgr_proxy_cache_results",
            "Cache outcomes (hit, miss, bypass).",
            ["result"],
            registry=reg,
        )
        self.evictions = CounterFamily(
            "podmgr_proxy_cache_evictions", "Entries evicted from the cache (LRU).", registry=reg
        )
        self.coalesced = CounterFamily(
            "podmgr_proxy_coalesced_requests",
            "Requests that joined an identical one already in flight.",
            registry=reg,
        )
        self.upstream_latency = HistogramFamily(
            "podmgr_proxy_upstream_latency_seconds",
            "Upstream request time, start to end.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.ttft = HistogramFamily(
            "podmgr_proxy_time_to_first_token_seconds",
            "Upstream time to the first event.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.overhead = HistogramFamily(
            "podmgr_proxy_overhead_seconds",
            "Time the proxy itself spent on a request (total minus waiting for upstream).",
            buckets=_OVERHEAD_BUCKETS,
            registry=reg,
        )
        self.in_flight = GaugeFamily(
            "podmgr_proxy_in_flight_requests", "Requests under /v1 being handled.", registry=reg
        )
        self.tokens = CounterFamily(
            "podmgr_proxy_tokens", "Tokens reported in upstream usage.", ["kind"], registry=reg
        )
        self.upstream_errors = CounterFamily(
            "podmgr_proxy_upstream_errors", "Upstream failures by kind.", ["kind"], registry=reg
        )
        reg.register(_LiveCollector(snapshot))
        self.hit = self.cache.labels("hit")
        self.miss = self.cache.labels("miss")
        self.bypass = self.cache.labels("bypass")
        self.prompt_tokens = self.tokens.labels("prompt")
        self.completion_tokens = self.tokens.labels("completion")
        self._requests: dict[tuple[str, int], Tally] = {}

    def request_series(self, route: str, status: int) -> Tally:
        """The `requests` series of one route and status (bound once, then looked up)."""
        label = route if route in _KNOWN else "other"  # route_label, inlined
        child = self._requests.get((label, status))
        if child is None:
            child = self.requests.labels(label, str(status))
            self._requests[(label, status)] = child
        return child

    def count_request(self, route: str, status: int) -> None:
        self.request_series(route, status).inc()
