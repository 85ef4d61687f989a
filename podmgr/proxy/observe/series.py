"""Per-minute time series of the proxy's traffic, for the dashboard's charts.

Each minute keeps counts (requests, errors, cache hits and misses, answers per upstream)
and two small fixed-bucket histograms (latency, time to first token), so recording a
request costs a few increments and one bisect over 16 bounds, and percentiles come from
the buckets (interpolated inside one). The last 24 hours of minutes are kept (1440
buckets); a chart of a longer span merges them into at most `points` slots.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["BOUNDS", "Histogram", "MinuteSeries", "Point"]

# Seconds; the last bucket is everything slower.
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
KEEP_MINUTES = 1440


class Histogram:
    """Counts per latency bucket (BOUNDS), mergeable, with interpolated percentiles."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.total = 0

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BOUNDS, seconds)] += 1
        self.total += 1

    def merge(self, other: Histogram) -> None:
        for index, count in enumerate(other.counts):
            self.counts[index] += count
        self.total += other.total

    def percentile(self, point: float) -> float | None:
        """Seconds below which `point` of the values lie (None without values)."""
        if self.total == 0:
            return None
        rank = point * self.total
        seen = 0
        for index, count in enumerate(self.counts):
            if count and seen + count >= rank:
                low = BOUNDS[index - 1] if index > 0 else 0.0
                high = BOUNDS[index] if index < len(BOUNDS) else BOUNDS[-1] * 2
                return low + (high - low) * max(0.0, rank - seen) / count
            seen += count
        return BOUNDS[-1] * 2


@dataclass(slots=True)
class Point:
    """One slot of a chart: a minute, or several merged."""

    start: float  # Unix seconds
    minutes: int = 1
    requests: int = 0
    errors: int = 0
    hits: int = 0
    misses: int = 0
    latency: Histogram = field(default_factory=Histogram)
    ttft: Histogram = field(default_factory=Histogram)
    upstreams: dict[str, int] = field(default_factory=dict)

    def merge(self, other: Point) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.hits += other.hits
        self.misses += other.misses
        self.latency.merge(other.latency)
        self.ttft.merge(other.ttft)
        for name, count in other.upstreams.items():
            self.upstreams[name] = self.upstreams.get(name, 0) + count

    @property
    def per_minute(self) -> float:
        return self.requests / self.minutes

    @property
    def hit_rate(self) -> float | None:
        looked = self.hits + self.misses
        return self.hits / looked if looked else None


class MinuteSeries:
    """The last day of traffic, minute by minute."""

    def __init__(self, keep_minutes: int = KEEP_MINUTES) -> None:
        self._minutes: deque[Point] = deque(maxlen=keep_minutes)
        self._current: Point | None = None  # the newest minute, while it lasts
        self._current_end = -math.inf

    def _bucket(self, at: float) -> Point:
        current = self._current
        if current is not None and current.start <= at < self._current_end:
            return current  # most requests: no division, no deque
        start = math.floor(at / 60) * 60.0
        minutes = self._minutes
        if not minutes or minutes[-1].start < start:
            minutes.append(Point(start))
            self._current, self._current_end = minutes[-1], start + 60.0
        elif minutes[-1].start > start:  # a request that began in an earlier minute
            for point in reversed(minutes):
                if point.start <= start:
                    return point
        return minutes[-1]

    def record(
        self,
        at: float,
        latency: float,
        ttft: float | None = None,
        cache_hit: bool | None = None,
        upstream: str | None = None,
        error: bool = False,
    ) -> None:
        point = self._bucket(at)
        point.requests += 1
        point.latency.add(latency)
        if ttft is not None:
            point.ttft.add(ttft)
        if cache_hit is not None:
            if cache_hit:
                point.hits += 1
            else:
                point.misses += 1
        if error:
            point.errors += 1
        if upstream is not None:
            upstreams = point.upstreams
            upstreams[upstream] = upstreams.get(upstream, 0) + 1

    def window(self, start: float, end: float, points: int = 60) -> list[Point]:
        """`points` equal slots from `start` to `end` (empty slots where nothing happened)."""
        first = math.floor(start / 60) * 60.0
        minutes = max(1, math.ceil((end - first) / 60))
        per_slot = max(1, math.ceil(minutes / points))
        slots = [
            Point(first + i * per_slot * 60, per_slot) for i in range(math.ceil(minutes / per_slot))
        ]
        for point in self._minutes:
            index = int((point.start - first) // (per_slot * 60))
            if 0 <= index < len(slots):
                slots[index].merge(point)
        return slots
