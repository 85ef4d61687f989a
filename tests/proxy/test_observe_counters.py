"""The proxy's lock-free metrics (observe/counters.py) export what prometheus_client's own
classes would: the same `/metrics` text for the same updates, `_created` times aside."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from podmgr.proxy.observe.counters import CounterFamily, GaugeFamily, HistogramFamily
from podmgr.proxy.observe.series import MinuteSeries

BUCKETS = (0.0005, 0.001, 0.01, 0.5, 1, 2.5, 60)


def _exposition(registry: CollectorRegistry) -> str:
    text = generate_latest(registry).decode()
    return re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 T", text)


def _update(kinds: dict[str, type]) -> CollectorRegistry:
    """The same updates through either kind of metric."""
    registry = CollectorRegistry(auto_describe=True)
    counter, gauge, histogram = kinds["counter"], kinds["gauge"], kinds["histogram"]
    requests = counter("t_requests", "Requests by route.", ["route", "status"], registry=registry)
    plain = counter("t_evictions", "Evicted entries.", registry=registry)
    flying = gauge("t_in_flight", "In flight.", registry=registry)
    latency = histogram(
        "t_latency_seconds", "Latency.", ["route"], buckets=BUCKETS, registry=registry
    )
    overhead = histogram("t_overhead_seconds", "Overhead.", buckets=BUCKETS, registry=registry)
    counter("t_unused", "Never touched.", ["kind"], registry=registry)
    requests.labels("chat/completions", "200").inc()
    requests.labels("chat/completions", "200").inc(2)
    requests.labels("models", 404).inc()  # a label that is not a str is exported as one
    plain.inc(3)
    flying.inc()
    flying.inc()
    flying.dec()
    for seconds in (0.0001, 0.0005, 0.0007, 0.3, 2.5, 90.0):
        latency.labels("chat/completions").observe(seconds)
        overhead.observe(seconds)
    latency.labels("embeddings").observe(0.02)
    return registry


def test_exposition_matches_prometheus_client() -> None:
    ours = _update({"counter": CounterFamily, "gauge": GaugeFamily, "histogram": HistogramFamily})
    theirs = _update({"counter": Counter, "gauge": Gauge, "histogram": Histogram})
    assert _exposition(ours) == _exposition(theirs)
    assert 't_requests_total{route="models",status="404"} 1.0' in _exposition(ours)


def test_counters_refuse_what_prometheus_client_refuses() -> None:
    registry = CollectorRegistry()
    counter = CounterFamily("t_count", "A counter.", ["kind"], registry=registry)
    with pytest.raises(ValueError):
        counter.labels("a").inc(-1)
    with pytest.raises(ValueError):
        counter.labels("a", "b")
    with pytest.raises(ValueError):
        counter.inc()  # a labelled family has no series of its own
    with pytest.raises(ValueError):  # the same name twice in one registry
        CounterFamily("t_count", "Again.", registry=registry)


def test_minute_series_files_a_late_request_under_its_own_minute() -> None:
    series = MinuteSeries()
    base = 1_700_000_040.0  # 60 s boundary at 1_700_000_040
    series.record(base + 5, 0.01)
    series.record(base + 65, 0.01)  # the next minute
    series.record(base + 59, 0.01, cache_hit=True)  # began in the first minute, ended late
    series.record(base + 70, 0.01, cache_hit=False, upstream="pod", error=True)
    first, second = series.window(base, base + 120, points=2)
    assert (first.requests, first.hits, first.misses) == (2, 1, 0)
    assert (second.requests, second.misses, second.errors) == (2, 1, 1)
    assert second.upstreams == {"pod": 1}
