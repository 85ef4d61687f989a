"""What one pass saw, as plain values: the input of `plan()` beside config, state and time.

Gathering it (RunPod, the pod's /health, the proxy's /health) is `observe.py`'s job; this
module only holds the shapes, so plan and its table tests need no I/O at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from podmgr.errors import PodmgrError
from podmgr.guard.check import GuardFinding
from podmgr.runpod.values import PodInfo
from podmgr.watchdog.podlog import LogReading

__all__ = ["Observed", "PodLog", "ProxyView", "Request"]

Request = Literal["pass", "start", "shutdown"]


@dataclass(frozen=True)
class ProxyView:
    """The local proxy: `pid` is set only for a live process verified to be our proxy."""

    pid: int | None = None
    healthy: bool = False
    last_request_at: float | None = None
    # Latest request per model (issue 23): the idle rule of the pod serving that model.
    last_request_by_model: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PodLog:
    """The state pod's new log lines, read while it starts or its guard is unconfirmed:
    what they said of the guard (None: nothing decisive), its phase and any fatal line
    (podmgr/watchdog/podlog.py), the last event id read, and, after running out of GPU
    memory, a GPU type with more of it from RunPod's catalog."""

    guard: GuardFinding | None
    reading: LogReading
    cursor: str | None
    read_at: float
    bigger_gpu: str | None = None


@dataclass(frozen=True)
class Observed:
    """Our pods on RunPod (prefix + markers), the state pod's health, and the proxy.

    Each pod carries its runtime (REST v2's Pod has it). `pod_healthy` is its /health: None when
    not probed (no container), else whether it answered 200 (a ready pod: any of
    `health_probe_attempts` probes; a starting pod: one probe).

    `listing_error` is set when RunPod's pod listing failed: `pods` then holds only the
    state's pod, read by its id, and plan() enforces the limits on it and decides nothing
    else (no stray is visible, and a create could not find its own lost pod).
    """

    pods: tuple[PodInfo, ...] = ()
    pod_healthy: bool | None = None
    health_detail: str = ""
    proxy: ProxyView = field(default_factory=ProxyView)
    listing_error: PodmgrError | None = None
    pod_log: PodLog | None = None

    def pod(self, pod_id: str | None) -> PodInfo | None:
        return next((p for p in self.pods if p.id == pod_id), None) if pod_id else None
