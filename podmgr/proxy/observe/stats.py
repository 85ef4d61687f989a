"""Recent activity for the dashboard: request times, latencies and errors in ring buffers.

Prometheus histograms answer "how many in which bucket since start"; a person looking at
the dashboard wants "how is it going right now": the request rate over the last minute,
latency percentiles of the last requests, and the last errors with their message.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from podmgr.proxy.observe.series import MinuteSeries

__all__ = ["RecentError", "RecentStats"]

WINDOW_SECONDS = 60.0
MODELS_KEPT = 64


@dataclass(frozen=True, slots=True)
class RecentError:
    at: float
    route: str
    status: int
    message: str


class RecentStats:
    """Bounded memory of the last requests; appends are O(1) and lock-free (one loop)."""

    def __init__(self, size: int = 2048, errors: int = 10) -> None:
        self.started_at = time.time()
        self.last_request_at: float | None = None
        # The watchdog's idle rule per pod (issue 23) reads the last request for its model.
        self.last_request_by_model: dict[str, float] = {}
        self.hits = 0
        self.misses = 0
        self.bypasses = 0
        self._times: deque[float] = deque(maxlen=size)
        self._latencies: deque[float] = deque(maxlen=size)
        self.errors: deque[RecentError] = deque(maxlen=errors)
        self.series = MinuteSeries()  # minute by minute, for the dashboard's charts

    def saw_model(self, model: str, at: float) -> None:
        """A request for `model` arrived at `at`. At most MODELS_KEPT models are kept (the
        least recently asked goes first), so clients naming many models cannot grow it."""
        seen = self.last_request_by_model
        seen.pop(model, None)
        seen[model] = at
        if len(seen) > MODELS_KEPT:
            del seen[next(iter(seen))]

    def record(self, now: float, latency: float) -> None:
        self._times.append(now)
        self._latencies.append(latency)

    def record_error(self, now: float, route: str, status: int, message: str) -> None:
        self.errors.append(RecentError(now, route[:100], status, message[:200]))

    def request_rate(self, now: float) -> float:
        """Requests per second over the last minute (or since start, if shorter)."""
        recent = sum(1 for at in self._times if at > now - WINDOW_SECONDS)
        span = min(WINDOW_SECONDS, max(now - self.started_at, 1.0))
        return recent / span

    def percentiles(self, points: tuple[float, ...] = (0.5, 0.9, 0.99)) -> dict[str, float]:
        """Latency percentiles in milliseconds over the last requests (empty if none)."""
        values = sorted(self._latencies)
        if not values:
            return {}
        result = {}
        for point in points:
            index = min(len(values) - 1, int(point * len(values)))
            result[f"p{round(point * 100)}"] = round(values[index] * 1000, 3)
        return result

    def hit_rate(self) -> float | None:
        looked_up = self.hits + self.misses
        return self.hits / looked_up if looked_up else None
