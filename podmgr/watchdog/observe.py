"""Gathering one pass's observations: our pods on RunPod, the pod's health, the proxy.

Every pod in REST v2's listing carries its `runtime`, which tells "no container yet" from
"container up" (readiness.py): one call sees them all. A pod with a container is probed
at its URL's /health. One failed health probe is not a dead vLLM: a ready pod is probed
up to `health_probe_attempts` times, a short pause apart, and counts as unhealthy only if
every probe fails; a pod still starting is probed once (not 200 = still loading).

While the state pod starts, or its guard is not confirmed, its new log lines are read (one
short `GET /pods/{id}/logs` from the last event id, at most every 5 s): podmgr/guard/check.py
says what they mean for the guard, podmgr/watchdog/podlog.py for the pod's phase and
failures that are final.

If RunPod's pod listing fails (after the adapter's retries), the state's pod is read by its
id (`GET /pods/{id}` works without the listing), so that plan can still enforce
the deadline and the budget on it (issue 10, finding 7); the listing's error is kept in
`Observed.listing_error` and ends the pass once the limits were applied. A pod in a
status RunPod's schema does not list is logged here and treated as not ready.
"""

from __future__ import annotations

from podmgr.config import Config, PodSection, StartupSection
from podmgr.errors import ApiError, AuthError
from podmgr.guard.check import guard_finding
from podmgr.logs import get_logger
from podmgr.runpod.client import PodInfo, RunPodClient
from podmgr.runpod.placement import clouds_of
from podmgr.state import State
from podmgr.watchdog.clock import Clock
from podmgr.watchdog.focus import pod_config
from podmgr.watchdog.identity import is_ours
from podmgr.watchdog.observed import Observed, PodLog
from podmgr.watchdog.plan_set import ObservedSet, PodView
from podmgr.watchdog.podlog import read_log
from podmgr.watchdog.proxy_supervisor import ProxySupervisor
from podmgr.watchdog.readiness import HealthProbe

__all__ = ["observe", "observe_set"]

PROBE_PAUSE_CAP_SECONDS = 5.0
# A serving pod's log is read at most this often while its guard is unconfirmed (a starting
# pod's at every pass: its phases and failures are what the pass is for).
LOG_READ_EVERY_SECONDS = 5.0
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
    pods = tuple(p for p in listed if is_ours(p, config.pod.pod_name_prefix, cid))
    _log_unknown_statuses(pods)
    view = _pod_view(config, state, pods, client=client, probe=probe, clock=clock)
    return Observed(
        pods=pods,
        pod_healthy=view.healthy,
        health_detail=view.health_detail,
        proxy=supervisor.view(state.proxy_pid),
        pod_log=view.log,
    )


def observe_set(
    config: Config,
    state: State,
    *,
    client: RunPodClient,
    supervisor: ProxySupervisor,
    cid: str,
    probe: HealthProbe,
    clock: Clock,
) -> ObservedSet:
    """For a set (config `pods`): one listing, then each configured pod's record probed and
    its log read as `observe` does for the one pod. Without the listing, every record is
    read by its id (the session's limits still hold on all of them)."""
    proxy = supervisor.view(state.proxy_pid)
    try:
        listed = client.list_pods()
    except AuthError:
        raise
    except ApiError as error:
        return ObservedSet(_records_by_id(state, client, error), proxy, error)
    pods = tuple(p for p in listed if is_ours(p, config.pod.pod_name_prefix, cid))
    _log_unknown_statuses(pods)
    views = {}
    for name in config.pod_names:
        with state.focused(name):
            one = pod_config(config, name)
            views[name] = _pod_view(one, state, pods, client=client, probe=probe, clock=clock)
    return ObservedSet(pods, proxy, None, views)


def _pod_view(
    config: Config,
    state: State,
    pods: tuple[PodInfo, ...],
    *,
    client: RunPodClient,
    probe: HealthProbe,
    clock: Clock,
) -> PodView:
    """The state pod's /health (a ready pod: up to `health_probe_attempts` probes) and log."""
    healthy: bool | None = None
    detail = ""
    pod = state.pod
    live = next((p for p in pods if pod is not None and p.id == pod.id), None)
    if pod is not None and live is not None and live.running and live.has_runtime:
        attempts = config.startup.health_probe_attempts if pod.phase == "ready" else 1
        healthy, detail = _probe(config.startup, config.pod.pod_url(pod.id), probe, clock, attempts)
    return PodView(healthy, detail, _pod_log(config, state, live, client, clock.now()))


def _records_by_id(state: State, client: RunPodClient, error: ApiError) -> tuple[PodInfo, ...]:
    """Every record of the state read by its id; the listing's error if a read fails too."""
    log.warning("list_pods_failed", error=error.message, pods=sorted(state.pods))
    found: list[PodInfo] = []
    for record in state.pods.values():
        try:
            live = client.get_pod(record.id)
        except ApiError:
            raise error from None
        if live is not None:
            found.append(live)
    _log_unknown_statuses(tuple(found))
    return tuple(found)


def _pod_log(
    config: Config, state: State, live: PodInfo | None, client: RunPodClient, now: float
) -> PodLog | None:
    """The state pod's new log lines: at every pass while it starts (not ready yet), then
    at most every LOG_READ_EVERY_SECONDS while its guard is unconfirmed (the rate limit is
    shared); None when there is nothing to read or the read failed (logged: a later pass
    reads again from the same cursor)."""
    pod = state.pod
    if pod is None or live is None or not (live.running or live.starting):
        return None
    guard_unknown = pod.guard is not None and pod.guard_confirmed is None
    if pod.phase == "ready" and not guard_unknown:
        return None
    recently = pod.log_read_at is not None and now - pod.log_read_at < LOG_READ_EVERY_SECONDS
    if pod.phase == "ready" and recently:  # only the guard's line is still awaited
        return None
    try:
        lines = client.pod_logs(pod.id, after=pod.log_cursor)
    except ApiError as error:
        log.warning("pod_log_unread", pod_id=pod.id, error=error.message)
        return None
    container = [line.line for line in lines if line.source == "container"]
    guard = guard_finding(container) if guard_unknown else None
    reading = read_log(line.line for line in lines)
    cursor = lines[-1].id if lines else pod.log_cursor
    bigger = None
    if reading.fatal is not None and reading.fatal.signature.name == "out_of_memory":
        bigger = _bigger_gpu(config.pod, client, pod.gpu_type_id)
    return PodLog(guard, reading, cursor, now, bigger)


def _bigger_gpu(pod: PodSection, client: RunPodClient, gpu_type_id: str) -> str | None:
    """The cheapest GPU type in RunPod's catalog with more memory than this one and stock
    (in the config's clouds), for the out-of-memory advice; None when unknown."""
    try:
        catalog = client.gpu_catalog(pod.gpu_count, clouds=clouds_of(pod.cloud_type))
    except ApiError as error:
        log.warning("catalog_unread", error=error.message)
        return None
    current = next((g for g in catalog if g.id == gpu_type_id), None)
    if current is None or current.memory_gb is None:
        return None
    clouds = clouds_of(pod.cloud_type)
    bigger = [
        (g.price(cloud) or 1e9, g)
        for g in catalog
        for cloud in clouds
        if (g.memory_gb or 0) > current.memory_gb and g.stock(cloud) not in (None, "NONE")
    ]
    if not bigger:
        return None
    price, gpu = min(bigger, key=lambda pair: pair[0])
    return f"{gpu.id}, {gpu.memory_gb:g} GB" + (f" at ${price:.2f}/h" if price < 1e9 else "")


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
            log.warning("unknown_pod_status", pod_id=pod.id, status=pod.status)


def _probe(
    startup: StartupSection, url: str, probe: HealthProbe, clock: Clock, attempts: int
) -> tuple[bool, str]:
    detail = ""
    for attempt in range(attempts):
        if attempt:
            clock.sleep(min(startup.poll_interval_seconds, PROBE_PAUSE_CAP_SECONDS))
        status, detail = probe(url)
        if status == 200:
            return True, detail
    return False, detail
