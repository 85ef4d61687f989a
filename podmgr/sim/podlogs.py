"""Each pod's log: `system` and `container` lines with strictly increasing timestamps.

What `GET /v2/pods/{id}/logs` streams (podmgr/sim/v2/logs.py). RunPod REST API v2
(openapi.json, getPodLogs and LogSource): `container` is the container's stdout/stderr,
`system` the host's lifecycle lines; each event's id is its `ts`, so a reconnecting client
resumes with `Last-Event-ID`. For that id to name one line, a pod's timestamps strictly
increase: a line that shares the clock's reading with the one before is nudged 1 µs later
(no identity may rest on the clock's resolution). Who writes the lines: the narrator
(podmgr/sim/narrator.py: host lifecycle and a simulated vLLM's output) and, for pods run as
real processes, podmgr/sim/podproc.py (every line the process writes).

A log ends when its pod is terminated (`close`): followers get what is left, then the end.
Everything runs on one asyncio loop, so no locks: followers wait on an asyncio.Event that
each append sets and replaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["LogLine", "PodLog", "PodLogBook", "Source", "format_ts", "parse_ts"]

Source = Literal["container", "system"]
# Lines kept per pod; older ones are dropped (RunPod's retention is undocumented; the
# document's `tail` maximum is 5000, getPodLogs LogTail).
MAX_LINES = 20000


@dataclass(frozen=True)
class LogLine:
    """One line; `ts` in integer microseconds since the epoch (UTC)."""

    ts: int
    source: Source
    line: str

    @property
    def ts_text(self) -> str:
        return format_ts(self.ts)


def format_ts(ts_us: int) -> str:
    """RFC 3339 with microseconds and "Z": 2026-12-01T12:00:00.000001Z."""
    seconds, micros = divmod(ts_us, 1_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{micros:06d}Z"


def parse_ts(text: str) -> int:
    """RFC 3339 (any precision, "Z" or an offset) -> microseconds; ValueError if not one.

    A `Last-Event-ID` of the document's example form `<ts>/<sequence>` (getPodLogs example
    `2026-06-01T12:02:03Z/000000000001`) is read by its `ts`.
    """
    text = text.strip().split("/", 1)[0]
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    delta = parsed - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass
class PodLog:
    """The lines of one pod, and an event for followers."""

    lines: list[LogLine] = field(default_factory=list)
    closed: bool = False
    last_ts: int = 0
    _changed: asyncio.Event | None = None

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def append(self, now: float, source: Source, line: str) -> LogLine:
        ts = max(int(now * 1_000_000), self.last_ts + 1)
        self.last_ts = ts
        entry = LogLine(ts, source, line)
        self.lines.append(entry)
        if len(self.lines) > MAX_LINES:
            del self.lines[: len(self.lines) - MAX_LINES]
        self._wake()
        return entry

    def close(self) -> None:
        self.closed = True
        self._wake()

    async def wait_change(self, timeout: float) -> None:
        """Return after the next append or close, or after `timeout` seconds."""
        if self._changed is None:
            self._changed = asyncio.Event()
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    def after(self, ts: int) -> list[LogLine]:
        """Lines with a timestamp after `ts`."""
        return [line for line in self.lines if line.ts > ts]


@dataclass
class PodLogBook:
    """Every pod's log, by pod id; `clock` gives the time lines are stamped with."""

    clock: Callable[[], float]
    logs: dict[str, PodLog] = field(default_factory=dict)

    def of(self, pod_id: str) -> PodLog:
        return self.logs.setdefault(pod_id, PodLog())

    def write(self, pod_id: str, source: Source, line: str) -> None:
        log = self.of(pod_id)
        if not log.closed:
            log.append(self.clock(), source, line)

    def system(self, pod_id: str, line: str) -> None:
        self.write(pod_id, "system", line)

    def container(self, pod_id: str, line: str) -> None:
        self.write(pod_id, "container", line)

    def close(self, pod_id: str) -> None:
        self.of(pod_id).close()
