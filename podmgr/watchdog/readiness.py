"""Waiting for a pod to serve: RunPod's `runtime` first, then vLLM's `GET /health` = 200.

`desiredStatus: RUNNING` says nothing about readiness: `runtime` stays null until the
image is pulled, and the pod URL answers 502 until vLLM has loaded the model. The wait
treats CREATED and RESTARTING as starting and a status it does not know as not ready
(never as stopped: a resume would restart a pod that is starting). It honours
`initial_wait_seconds`, then polls every `poll_interval_seconds` at most
`max_startup_attempts` times, and stops early at the session's deadline. Each poll
reports one progress line with the elapsed time and the phase.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

from podmgr.runpod_models import PodInfo
from podmgr.watchdog.clock import Clock

__all__ = ["HealthProbe", "ReadyResult", "probe_health", "wait_ready"]

Outcome = Literal["ready", "timeout", "gone", "stopped", "deadline"]
HealthProbe = Callable[[str], tuple[int | None, str]]


@dataclass(frozen=True)
class ReadyResult:
    outcome: Outcome
    elapsed: float
    detail: str = ""


def probe_health(url: str, timeout: float = 10.0) -> tuple[int | None, str]:
    """GET {url}/health once: (status, detail); status None when nothing answered."""
    try:
        response = httpx.get(url.rstrip("/") + "/health", timeout=timeout)
    except httpx.HTTPError as error:
        return None, f"no answer: {type(error).__name__}"
    return response.status_code, f"health {response.status_code}"


def wait_ready(
    pod_id: str,
    url: str,
    *,
    get_pod: Callable[[str], PodInfo | None],
    probe: HealthProbe,
    clock: Clock,
    initial_wait: float,
    poll_interval: float,
    max_attempts: int,
    deadline: float,
    progress: Callable[[str], None],
) -> ReadyResult:
    """Poll until ready, gone, stopped, out of attempts, or past the deadline."""
    started = clock.now()

    def line(text: str) -> None:
        progress(f"[{clock.now() - started:5.1f}s] {text}")

    if initial_wait > 0:
        line(f"pod {pod_id} created or restarted; first check in {initial_wait:.1f}s")
        clock.sleep(min(initial_wait, max(0.0, deadline - clock.now())))
    for attempt in range(1, max_attempts + 1):
        if clock.now() >= deadline:
            line("session deadline reached while waiting")
            return ReadyResult("deadline", clock.now() - started)
        pod = get_pod(pod_id)
        if pod is None:
            line("pod is gone from RunPod")
            return ReadyResult("gone", clock.now() - started)
        if pod.stopped:
            line(f"pod is {pod.desired_status}")
            return ReadyResult("stopped", clock.now() - started, pod.desired_status)
        if pod.starting:
            line(f"pod is {pod.desired_status}: RunPod is starting it")
        elif not pod.running:
            line(f"pod shows status {pod.desired_status}, unknown to podmgr: not ready")
        elif not pod.has_runtime:
            line("waiting for container (runtime not yet reported)")
        else:
            status, detail = probe(url)
            if status == 200:
                line("ready")
                return ReadyResult("ready", clock.now() - started)
            line(f"container up, vLLM loading ({detail})")
        if attempt < max_attempts:
            clock.sleep(poll_interval)
    line(f"not ready after {max_attempts} checks")
    return ReadyResult("timeout", clock.now() - started)
