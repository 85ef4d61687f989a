"""Gathering one pass's observations: our pods on RunPod, the pod's health, the proxy.

The state's pod is read by its id once more after the listing: `get_pod` goes through
GraphQL and carries `runtime` (REST's `Pod` has none, so a listing may not), which tells
"no container yet" from "container up" (readiness.py). A pod with a container is probed
at its URL's /health. One failed health probe is not a dead vLLM: a ready pod is probed
up to `health_probe_attempts` times, a short pause apart, and counts as unhealthy only if
every probe fails; a pod still starting is probed once (not 200 = still loading).

If RunPod's pod listing fails (after the adapter's retries), the state's pod is read by its
id (`pod(input: {podId})` works without `myself.pods`), so that plan can still enforce
the deadline and the budget on it (issue 10, finding 7); the listing's error is kept in
`Observed.listing_error` and ends the pass once the limits were applied. A pod in a
status RunPod's schema does not list is logged here and treated as not ready.
"""

from __future__ import annotations

from podmgr.config import Config
from podmgr.errors import ApiError, AuthError
from podmgr.logs import get_logger
from podmgr.runpod_client import PodInfo, RunPodClient
from podmgr.state import State
from podmgr.watchdog.clock import Clock
from podmgr.watchdog.identity import is_ours
from podmgr.watchdog.observed import Observed
from podmgr.watchdog.proxy_supervisor import ProxySupervisor
from podmgr.watchdog.readiness import HealthProbe

__all__ = ["observe"]

PROBE_PAUSE_CAP_SECONDS = 5.0
log = get_logger("watchdog")


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
    try:
        listed = client.list_pods()
    except AuthError:
        raise  # the same key would read the pod by id: nothing to fall back on
    except ApiError as error:
        return _without_listing(state, client, supervisor, error)
    pods = tuple(p for p in listed if is_ours(p, config.pod_name_prefix, cid))
    pods = _with_runtime(state, pods, client)
    _log_unknown_statuses(pods)
    healthy: bool | None = None
    detail = ""
    pod = state.pod
    live = next((p for p in pods if pod is not None and p.id == pod.id), None)
    if pod is not None and live is not None and live.running and live.has_runtime:
        attempts = config.health_probe_attempts if pod.phase == "ready" else 1
        healthy, detail = _probe(config, config.pod_url(pod.id), probe, clock, attempts)
    return Observed(
        pods=pods,
        pod_healthy=healthy,
        health_detail=detail,
        proxy=supervisor.view(state.proxy_pid),
    )


def _with_runtime(
    state: State, pods: tuple[PodInfo, ...], client: RunPodClient
) -> tuple[PodInfo, ...]:
    """The listing with the state's running pod as `get_pod` reports it (runtime included)."""
    pod = state.pod
    listed = next((p for p in pods if pod is not None and p.id == pod.id), None)
    if listed is None or not listed.running:
        return pods
    live = client.get_pod(listed.id)
    return tuple(p for p in (live if p is listed else p for p in pods) if p is not None)


def _without_listing(
    state: State, client: RunPodClient, supervisor: ProxySupervisor, error: ApiError
) -> Observed:
    """The listing failed: the state's pod by its id, or the listing's error if that fails too."""
    log.warning("list_pods_failed", error=error.message, pod_id=state.pod.id if state.pod else None)
    live: PodInfo | None = None
    if state.pod is not None:
        try:
            live = client.get_pod(state.pod.id)
        except ApiError:
            raise error from None
    pods = (live,) if live is not None else ()
    _log_unknown_statuses(pods)
    return Observed(pods=pods, proxy=supervisor.view(state.proxy_pid), listing_error=error)


def _log_unknown_statuses(pods: tuple[PodInfo, ...]) -> None:
    for pod in pods:
        if not pod.status_known:
            log.warning("unknown_pod_status", pod_id=pod.id, status=pod.desired_status)


def _probe(
    config: Config, url: str, probe: HealthProbe, clock: Clock, attempts: int
) -> tuple[bool, str]:
    detail = ""
    for attempt in range(attempts):
        if attempt:
            clock.sleep(min(config.poll_interval_seconds, PROBE_PAUSE_CAP_SECONDS))
        status, detail = probe(url)
        if status == 200:
            return True, detail
    return False, detail
