"""Gathering one pass's observations: our pods on RunPod, the pod's health, the proxy.

One failed health probe is not a dead vLLM: a ready pod is probed up to
`health_probe_attempts` times, a short pause apart, and counts as unhealthy only if
every probe fails.
"""

from __future__ import annotations

from podmgr.config import Config
from podmgr.runpod_client import RunPodClient
from podmgr.state import State
from podmgr.watchdog.clock import Clock
from podmgr.watchdog.identity import is_ours
from podmgr.watchdog.observed import Observed
from podmgr.watchdog.proxy_supervisor import ProxySupervisor
from podmgr.watchdog.readiness import HealthProbe

__all__ = ["observe"]

PROBE_PAUSE_CAP_SECONDS = 5.0


def observe(
    config: Config,
    state: State,
    *,
    client: RunPodClient,
    supervisor: ProxySupervisor,
    cid: str,
    probe: HealthProbe,
    clock: Clock,
) -> Observed:
    """Ask RunPod for our pods, probe the state's ready pod, look at the proxy."""
    pods = tuple(p for p in client.list_pods() if is_ours(p, config.pod_name_prefix, cid))
    healthy: bool | None = None
    detail = ""
    pod = state.pod
    live = next((p for p in pods if pod is not None and p.id == pod.id), None)
    if pod is not None and pod.phase == "ready" and live is not None and live.running:
        healthy, detail = _probe(config, config.pod_url(pod.id), probe, clock)
    return Observed(
        pods=pods,
        pod_healthy=healthy,
        health_detail=detail,
        proxy=supervisor.view(state.proxy_pid),
    )


def _probe(config: Config, url: str, probe: HealthProbe, clock: Clock) -> tuple[bool, str]:
    detail = ""
    for attempt in range(config.health_probe_attempts):
        if attempt:
            clock.sleep(min(config.poll_interval_seconds, PROBE_PAUSE_CAP_SECONDS))
        status, detail = probe(url)
        if status == 200:
            return True, detail
    return False, detail
