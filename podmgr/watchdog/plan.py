"""`plan(config, state, observed, now, request) -> list[Action]`: the watchdog's decisions.

Purely computational: no I/O, no clock, no randomness. `apply` performs the actions in
order and records each in the state before the next. The rules, in the order they apply:

1. `shutdown`: terminate every pod of ours, end the session, stop our proxy.
2. No active session: start one if a person asked (see `session.py`); otherwise keep our
   pods down (terminate any still alive) and say that the session has ended.
3. Limits (deadline, budget, idle): terminate every pod of ours and end the session.
   When RunPod's pod listing failed, the limits still hold on the state's pod, read by
   its id; nothing else is decided (no session starts, no pod is made) until it works.
4. The proxy: start it when it does not answer its /health.
5. Strays (ours by prefix and markers, unknown to the state) are terminated, except that
   a state without a pod adopts the newest running one (its lost pod).
6. The state's pod: none -> create and wait; gone from RunPod -> forget and recreate;
   stopped (EXITED ...) -> restart; still starting (CREATED, RESTARTING, or RUNNING without
   a ready vLLM) or an unknown status -> wait, never a resume; ready but vLLM's /health failing ->
   restart. Restarts back off exponentially; past `max_restarts` the pod is terminated
   and the session ends as a crash loop.
"""

from __future__ import annotations

from podmgr.config import Config
from podmgr.runpod_models import PodInfo
from podmgr.state import Session, State
from podmgr.watchdog.actions import (
    Action,
    AdoptPod,
    CreatePod,
    EndSession,
    ForgetPod,
    Noop,
    RestartPod,
    StartProxy,
    StartSession,
    StopProxy,
    TerminatePod,
    WaitReady,
)
from podmgr.watchdog.observed import Observed, Request
from podmgr.watchdog.session import Window, limit_reached, restart_wait, start_reason

__all__ = ["plan"]


def plan(
    config: Config, state: State, observed: Observed, now: float, request: Request = "pass"
) -> list[Action]:
    """Decide this pass's actions; see the module docstring for the rules."""
    if request == "shutdown":
        return _shutdown(state, observed)
    if observed.listing_error is not None:
        return _without_listing(config, state, observed, now)
    actions: list[Action] = []
    session = state.session
    if session is not None and session.active:
        window = Window(session.started_at, session.deadline, session.cost_usd)
    else:
        start = start_reason(state, observed, request)
        if start is None:
            return _keep_down(state, observed)
        why, age = start
        window = Window(now - age, now - age + config.runtime_seconds, 0.0)
        actions.append(StartSession(window.started_at, window.deadline, why))
        # Decide the rest as if the new session were already in the state.
        fresh = Session(started_at=window.started_at, deadline=window.deadline)
        state = state.model_copy(update={"session": fresh})
    limit = limit_reached(config, state, observed, window, now)
    if limit is not None:
        reason, detail = limit
        return [*actions, *_terminate_all(state, observed, reason), EndSession(reason, detail)]
    if not observed.proxy.healthy:
        why = "not running" if observed.proxy.pid is None else "not answering /health"
        actions.append(StartProxy(why))
    actions.extend(_pods(config, state, observed, now, window))
    return actions


def _shutdown(state: State, observed: Observed) -> list[Action]:
    actions: list[Action] = _terminate_all(state, observed, "shutdown requested")
    if state.session is not None and state.session.active:
        actions.append(EndSession("shutdown", "requested"))
    if observed.proxy.pid is not None:
        actions.append(StopProxy(observed.proxy.pid))
    return actions or [Noop("no pod and no proxy: already shut down")]


def _without_listing(config: Config, state: State, observed: Observed, now: float) -> list[Action]:
    """The listing failed: limits on the state's pod (found by id), nothing else."""
    why = f"RunPod's pod listing failed ({observed.listing_error})"
    session = state.session
    if session is None or not session.active:
        return [*_terminate_all(state, observed, "session ended"), Noop(f"{why}; no session")]
    window = Window(session.started_at, session.deadline, session.cost_usd)
    limit = limit_reached(config, state, observed, window, now)
    if limit is not None:
        reason, detail = limit
        return [*_terminate_all(state, observed, reason), EndSession(reason, detail)]
    return [Noop(f"{why}; limits checked, nothing else decided until the listing works")]


def _keep_down(state: State, observed: Observed) -> list[Action]:
    session = state.session
    if session is None:
        why = "no session; `podmgr up` (or manage_pod.py --start) starts one"
    else:
        why = f"session ended ({session.end_reason}); `podmgr up` starts a new one"
    return [*_terminate_all(state, observed, "session ended"), Noop(why)]


def _terminate_all(state: State, observed: Observed, reason: str) -> list[Action]:
    """Terminate the state's pod and every pod of ours RunPod still lists."""
    actions: list[Action] = []
    if state.pod is not None:
        if observed.pod(state.pod.id) is not None:
            actions.append(TerminatePod(state.pod.id, reason))
        else:
            actions.append(ForgetPod(state.pod.id, "no longer on RunPod"))
    known = state.pod.id if state.pod is not None else None
    actions.extend(TerminatePod(p.id, reason) for p in observed.pods if p.id != known)
    return actions


def _pods(
    config: Config, state: State, observed: Observed, now: float, window: Window
) -> list[Action]:
    known = state.pod.id if state.pod is not None else None
    strays = [p for p in observed.pods if p.id != known]
    adopt = _adoptable(strays) if state.pod is None else None
    actions: list[Action] = [
        TerminatePod(p.id, "stray pod of ours unknown to the state")
        for p in strays
        if p is not adopt
    ]
    if adopt is not None:
        actions.append(AdoptPod(adopt.id, adopt.name, adopt.uptime_seconds or 0.0))
        actions.append(WaitReady(adopt.id))
        return actions
    if state.pod is None:
        return actions + _create(config, state, now)
    pod = state.pod
    live = observed.pod(pod.id)
    if live is None:
        trouble = "gone from RunPod"
    elif live.stopped:
        trouble = f"pod is {live.desired_status}"
    elif not live.running or pod.phase != "ready":  # starting, or a status we do not know
        return [*actions, WaitReady(pod.id)]
    elif observed.pod_healthy is False:
        trouble = f"vLLM not healthy ({observed.health_detail or 'no answer'})"
    else:
        left = window.deadline - now
        return [*actions, Noop(f"pod {pod.id} ready, {left:.0f}s left, ${window.cost_usd:.2f}")]
    return actions + _restart(config, state, live, trouble, now)


def _adoptable(strays: list[PodInfo]) -> PodInfo | None:
    """The state's lost pod: the newest running (or starting) pod of ours."""
    running = [p for p in strays if p.running or p.starting]
    return min(running, key=lambda p: p.uptime_seconds or 0.0) if running else None


def _restart(
    config: Config, state: State, live: PodInfo | None, trouble: str, now: float
) -> list[Action]:
    assert state.pod is not None
    pod_id = state.pod.id
    restarts = state.session.restarts if state.session is not None else 0
    if restarts >= config.max_restarts:
        reason = f"{trouble}; {restarts} restarts used"
        end: list[Action] = [EndSession("crash_loop", reason)]
        if live is None:
            return [ForgetPod(pod_id, trouble), *end]
        return [TerminatePod(pod_id, "crash loop"), *end]
    wait = restart_wait(config, state, now)
    if wait > 0:
        return [Noop(f"{trouble}; restart backoff, next try in {wait:.0f}s")]
    if live is None:
        recreate = CreatePod(tuple(config.gpu_type_ids), replaces_lost_pod=True)
        return [ForgetPod(pod_id, trouble), recreate, WaitReady(None)]
    return [RestartPod(pod_id, trouble), WaitReady(pod_id)]


def _create(config: Config, state: State, now: float) -> list[Action]:
    """A first pod, or another one after pods failed to start (bounded like restarts)."""
    restarts = state.session.restarts if state.session is not None else 0
    if restarts > 0 and restarts >= config.max_restarts:
        detail = f"pods failed {restarts} times; max_restarts is {config.max_restarts}"
        return [EndSession("crash_loop", detail)]
    wait = restart_wait(config, state, now)
    if wait > 0:
        return [Noop(f"last pod failed; backoff, next create in {wait:.0f}s")]
    return [CreatePod(tuple(config.gpu_type_ids)), WaitReady(None)]
