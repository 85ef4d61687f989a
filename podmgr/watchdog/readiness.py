"""Readiness as a state across passes: the phases of a starting pod, named in one place.

A pass never waits for a pod. It observes the state's pod once and `plan()` decides from
its phase; `PodRecord` keeps across passes the last phase, since when, and when the
container was first seen. The phases, from RunPod's pod (REST v2: `status` and `runtime`)
and the pod URL's `GET /health`:

  starting       PROVISIONING or STARTING (RunPod is allocating it or pulling its image),
                 or a status RunPod's document does not list: wait, never start it again
                 (SkyPilot does the same, skypilot#9356)
  no_container   RUNNING without `runtime` ports (RunPod documents runtime for every RUNNING
                 pod; a container not up is treated as still starting)
  loading        `runtime` with ports, /health not 200: vLLM loads the model; the pod URL
                 answers 502 until its HTTP server starts after loading
  serving        /health 200: ready
  failed         ERROR ("container is in an unrecoverable error state": start it again,
                 podAction), or RUNNING with the container gone after it was seen (dstack
                 treats `runtime.ports is None` after start as "failed to start", c9b4412)
  stopped / gone EXITED (and the other stopped statuses) / no longer on RunPod

Facts: RunPod OpenAPI v2 (PodStatus, Pod.runtime); ../shared/RUNPOD_FACTS.md, "Pod
lifecycle as the API shows it" and "Startup as it really is".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import httpx

from podmgr.runpod.values import PodInfo
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
    if live.errored:
        return "failed"
    if live.stopped:
        return "stopped"
    if not live.running:  # PROVISIONING, STARTING, or a status we do not know
        return "starting"
    if not live.has_runtime:
        return "failed" if container_seen else "no_container"
    return "serving" if healthy else "loading"


def phase_text(phase: Phase, live: PodInfo | None, detail: str = "") -> str:
    """The phase for people: `container up, model download or load (health 502)`."""
    status = live.status if live is not None else "gone"
    match phase:
        case "starting" if live is not None and live.status == "STARTING":
            return "STARTING: RunPod is starting it (image pull, container start)"
        case "starting" if live is not None and live.status == "PROVISIONING":
            return "PROVISIONING: RunPod is starting it (placing it on a machine)"
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
        case "failed" if live is not None and live.errored:
            return "ERROR: the container failed (RunPod's status)"
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
