"""Lock-free counters, gauges and histograms for the proxy's hot path, exported at scrape time.

prometheus_client's `Counter`, `Gauge` and `Histogram` take a `threading.Lock` on every
update and check "observability" on every call: recording one cache hit through them
cost about 3 of the 4.7 microseconds its bookkeeping took, a fifth of the hit's own
Python time (`python -m bench.profile`, docs/bench.md). The proxy updates its metrics only
from its event loop's thread and `/metrics` is read there too, so no lock is needed:
these classes keep plain numbers, offer the subset of prometheus_client's API the proxy
uses (`labels(...)`, `inc`, `dec`, `set`, `observe`) and turn into the same exposition as
prometheus_client's own classes when the registry is collected (same names, help texts,
types, label names, buckets and `_created` series; `tests/proxy/test_observe_counters.py`
compares the two texts).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar, cast

from prometheus_client import metrics as prometheus_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

__all__ = ["Buckets", "CounterFamily", "GaugeFamily", "HistogramFamily", "Level", "Tally"]

# prometheus_client's own text for a bucket bound ("0.005", "1.0", "+Inf").
_le = cast(Callable[[float], str], floatToGoString)
Samples = Iterator[tuple[str, dict[str, str], float]]


def _with_created() -> bool:
    """Whether `_created` series are exported (PROMETHEUS_DISABLE_CREATED_SERIES), read as
    prometheus_client reads it, so both kinds of metric agree."""
    return bool(getattr(prometheus_metrics, "_use_created", True))


class _Series(Protocol):
    def samples(self, name: str, labels: dict[str, str]) -> Samples: ...


S = TypeVar("S", bound=_Series)


class Tally:
    """One counter series: a number that only goes up."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount

    def samples(self, name: str, labels: dict[str, str]) -> Samples:
        yield name + "_total", labels, self.value
        if _with_created():
            yield name + "_created", labels, self.created


class Level:
    """One gauge series: a number that goes up and down."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)

    def samples(self, name: str, labels: dict[str, str]) -> Samples:
        yield name, labels, self.value


class Buckets:
    """One histogram series: a count per bucket (upper bounds, the last one +Inf) and a sum.

    Counts are kept per bucket, not cumulative: `observe` is one bisect and two additions;
    the cumulative `le` counts are added up when the registry is collected."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds  # finite upper bounds; one more bucket holds the rest
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1
        self.sum += amount

    def samples(self, name: str, labels: dict[str, str]) -> Samples:
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            yield name + "_bucket", {**labels, "le": _le(bound)}, float(total)
        yield name + "_count", labels, float(total)
        yield name + "_sum", labels, self.sum
        if _with_created():
            yield name + "_created", labels, self.created


class _Family(Collector, Generic[S]):
    """A named metric with label names; its series are made on first use of their labels.

    Without label names, the family is its own single series (as with prometheus_client,
    `counter.inc()` works directly, and `labels()` returns that series for binding); with
    them, `labels(*values)` returns the series of those values.
    """

    kind = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        new: Callable[[], S],
        registry: CollectorRegistry | None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[object, ...], S] = {}
        self._order: dict[tuple[str, ...], S] = {}
        self._new = new
        if not self.labelnames:
            self._order[()] = new()
        if registry is not None:
            registry.register(self)

    def _child(self, values: tuple[object, ...]) -> S:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            text = tuple(str(value) for value in values)
            child = self._order.get(text)
            if child is None:
                child = self._order[text] = self._new()
            self._children[values] = child
        return child

    def _single(self) -> S:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: use labels(...) first")
        return self._order[()]

    def describe(self) -> Iterable[Metric]:
        return [Metric(self.name, self.documentation, self.kind)]

    def collect(self) -> Iterable[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        for values, child in self._order.items():
            labels = dict(zip(self.labelnames, values, strict=True))
            for sample_name, sample_labels, value in child.samples(self.name, labels):
                metric.add_sample(sample_name, sample_labels, value)
        return [metric]


class CounterFamily(_Family[Tally]):
    """Like prometheus_client's `Counter` (exported as `NAME_total` and `NAME_created`)."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__(name, documentation, labelnames, Tally, registry)

    def labels(self, *values: object) -> Tally:
        return self._child(values)

    def inc(self, amount: float = 1.0) -> None:
        self._single().inc(amount)


class GaugeFamily(_Family[Level]):
    """Like prometheus_client's `Gauge`."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__(name, documentation, labelnames, Level, registry)

    def labels(self, *values: object) -> Level:
        return self._child(values)

    def inc(self, amount: float = 1.0) -> None:
        self._single().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._single().dec(amount)

    def set(self, value: float) -> None:
        self._single().set(value)


class HistogramFamily(_Family[Buckets]):
    """Like prometheus_client's `Histogram` with fixed `buckets` (+Inf is added)."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = None,
    ) -> None:
        bounds = tuple(float(bound) for bound in buckets if bound != float("inf"))
        self.bounds = bounds
        super().__init__(name, documentation, labelnames, lambda: Buckets(bounds), registry)

    def labels(self, *values: object) -> Buckets:
        return self._child(values)

    def observe(self, amount: float) -> None:
        self._single().observe(amount)
