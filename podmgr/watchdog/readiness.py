"""Readiness as a state across passes: the phases of a starting pod, named in one place.

A pass never waits for a pod. It observes the state's pod once and `plan()` decides from
its phase; `PodRecord` keeps across passes the last phase, since when, and when the
container was first seen. The phases, from RunPod's pod and the pod URL's `GET /health`:

  starting       CREATED or RESTARTING (RunPod is starting it), or a status RunPod's schema
                 does not list: wait, never resume (SkyPilot does the same, skypilot#9356)
  no_container   RUNNING without `runtime`: the image is being pulled (minutes for vLLM)
  loading        `runtime` with ports, /health not 200: vLLM loads the model; the pod URL
                 answers 502 until its HTTP server starts after loading
  serving        /health 200: ready
  failed         RUNNING, and the container gone after it was seen: a crash (RunPod keeps
                 `desiredStatus` RUNNING; dstack treats `runtime.ports is None` after start
                 as "failed to start", commit c9b4412): restart
  stopped / gone EXITED (and the other stopped statuses) / no longer on RunPod

`runtime` comes from GraphQL through `RunPodClient.get_pod` (REST's `Pod` has no runtime,
so a listing may not carry it; observe.py reads the state's pod by id); serving comes
from the pod URL's /health. Facts: ../shared/RUNPOD_FACTS.md, "Pod lifecycle as the API
shows it" and "Startup as it really is".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import httpx

from podmgr.runpod_models import PodInfo
from podmgr.state import PodRecord

__all__ = ["HealthProbe", "Phase", "phase_text", "pod_phase", "probe_health", "startup_began"]

Phase = Literal["starting", "no_container", "loading", "serving", "failed", "stopped", "gone"]
HealthProbe = Callable[[str], tuple[int | None, str]]


def probe_health(url: str, timeout: float = 10.0) -> tuple[int | None, str]:
    """GET {url}/health once: (status, detail); status None when nothing answered."""
    try:
        response = httpx.get(url.rstrip("/") + "/health", timeout=timeout)
    except httpx.HTTPError as error:
        return None, f"no answer: {type(error).__name__}"
    return response.status_code, f"health {response.status_code}"


def pod_phase(live: PodInfo | None, healthy: bool | None, container_seen: bool) -> Phase:
    """The phase of the state's pod from what one pass saw (pure)."""
    if live is None:
        return "gone"
    if live.stopped:
        return "stopped"
    if not live.running:  # CREATED, RESTARTING, or a status we do not know
        return "starting"
    if not live.has_runtime:
        return "failed" if container_seen else "no_container"
    return "serving" if healthy else "loading"


def phase_text(phase: Phase, live: PodInfo | None, detail: str = "") -> str:
    """The phase for people: `container up, model download or load (health 502)`."""
    status = live.desired_status if live is not None else "gone"
    match phase:
        case "starting" if live is not None and live.starting:
            return f"{status}: RunPod is starting it"
        case "starting":
            return f"status {status}, unknown to podmgr: not ready, waiting"
        case "no_container":
            return "no container yet (image pull)"
        case "loading":
            return f"container up, model download or load ({detail or 'no answer'})"
        case "serving":
            return "serving"
        case "failed":
            return "container gone after it was up (crash)"
        case "stopped":
            return f"pod is {status}"
        case "gone":
            return "gone from RunPod"


def startup_began(pod: PodRecord) -> float:
    """When the pod's current start began: its last restart, or its create."""
    if pod.phase == "restarting" and pod.last_restart_at is not None:
        return pod.last_restart_at
    return pod.created_at
