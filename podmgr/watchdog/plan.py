"""`plan(config, state, observed, now, request) -> list[Action]`: the watchdog's decisions.

Purely computational: no I/O, no clock, no randomness. `apply` performs the actions in
order and records each in the state before the next. The rules, in the order they apply:

1. `shutdown`: terminate every pod of ours, forget a create that got no clear answer,
   end the session, stop our proxy (with `wake_on_request` the proxy keeps running: a
   later request may wake a new session).
2. No active session: start one if a person asked (see `session.py`); otherwise keep our
   pods down (terminate any still alive) and say that the session has ended; with
   `wake_on_request`, start the proxy if it is not running (it wakes the next session).
3. Limits (deadline, budget, idle): terminate every pod of ours and end the session.
   When RunPod's pod listing failed, the limits still hold on the state's pod, read by
   its id; nothing else is decided (no session starts, no pod is made) until it works.
4. The proxy: start it when it does not answer its /health.
5. Strays (ours by prefix and markers, unknown to the state) are terminated, except that
   a state without a pod adopts its lost pod: the one a create whose answer was lost
   named (`pending_create`; until it shows up in the listing, or `create_confirm_seconds`
   passed, no other pod is created), else the newest running or starting one.
6. The state's pod, by its phase (readiness.py names them): gone from RunPod -> forget and
   recreate (unless its guard ended it: a limit of rule 3, session.py); a stopped spot pod
   (ours or RunPod's `interruptible`) -> RunPod preempted it:
   resume it, no restart counted, or from the `max_preemptions`-th preemption on, replace it
   by an on-demand pod (a balance at $0 shows in the start's answer: apply ends the session,
   exit 11); stopped (EXITED ...) -> restart; a ready pod that serves -> nothing; a ready
   pod whose container is gone, or whose vLLM fails /health -> restart. A pod not yet ready:
   serving -> mark it ready; its container gone after it was seen (a crash) -> restart; no
   container `no_container_timeout_seconds` after its create or restart -> a likely
   image/CUDA problem: replace it by a fresh create once per session, end the session the
   second time; past the startup budget (`initial_wait_seconds + max_startup_attempts *
   poll_interval_seconds`) -> terminate it, count a restart (the next pass creates another);
   otherwise record its phase and wait for the next pass (starting: PROVISIONING, STARTING
   or an unknown status is never started again). ERROR is a status to start from (RunPod
   OpenAPI v2, podAction), counted as a restart like a crash, so only repeated errors make
   a crash loop. Restarts back off exponentially; past `max_restarts` the pod is
   terminated and the session ends as a crash loop.
7. Before its phase: the pod's guard, read from its log while unconfirmed
   (guard_check.py): confirmed -> recorded; RunPod passed the start-command JSON to vLLM
   literally -> recorded (later pods are made without the guard), the pod terminated and
   replaced at once. A RUNNING pod with zero GPUs (a start may give none: RunPod docs,
   pods/manage-pods.mdx) is terminated and replaced at once, counted as a restart.
"""

from __future__ import annotations

from podmgr.config import Config, LimitsSection, PodSection
from podmgr.runpod.values import PodInfo
from podmgr.state import Session, State
from podmgr.watchdog.actions import (
    AbandonPod,
    Action,
    AdoptPod,
    CreatePod,
    EndSession,
    ForgetCreate,
    ForgetPod,
    MarkReady,
    Noop,
    NoteLog,
    PodProgress,
    RestartPod,
    ResumePreempted,
    StartProxy,
    StartSession,
    StopProxy,
    TerminatePod,
)
from podmgr.watchdog.observed import Observed, Request
from podmgr.watchdog.podlog import Fatal
from podmgr.watchdog.readiness import Phase, phase_text, pod_phase, startup_began
from podmgr.watchdog.session import Window, limit_reached, restart_wait, start_reason

__all__ = ["plan"]


def plan(
    config: Config, state: State, observed: Observed, now: float, request: Request = "pass"
) -> list[Action]:
    """Decide this pass's actions; see the module docstring for the rules."""
    if request == "shutdown":
        return _shutdown(state, observed, keep_proxy=config.limits.wake_on_request)
    if observed.listing_error is not None:
        return _without_listing(config, state, observed, now)
    actions: list[Action] = []
    session = state.session
    if session is not None and session.active:
        window = Window(session.started_at, session.deadline, session.cost_usd)
    else:
        start = start_reason(state, observed, request)
        if start is None:
            return [*_keep_down(state, observed), *_waking_proxy(config.limits, observed)]
        why, age = start
        window = Window(now - age, now - age + config.limits.runtime_seconds, 0.0)
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


def _waking_proxy(limits: LimitsSection, observed: Observed) -> list[Action]:
    """With wake_on_request, the proxy runs between sessions too (it starts the next one)."""
    if not limits.wake_on_request or observed.proxy.healthy:
        return []
    return [StartProxy("wake_on_request: the proxy wakes the pod on the next request")]


def _shutdown(state: State, observed: Observed, keep_proxy: bool = False) -> list[Action]:
    actions: list[Action] = _terminate_all(state, observed, "shutdown requested")
    if state.pending_create is not None:
        actions.append(ForgetCreate(state.pending_create.name, "shutdown requested"))
    if state.session is not None and state.session.active:
        actions.append(EndSession("shutdown", "requested"))
    if observed.proxy.pid is not None and not keep_proxy:
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
    adopt = _adoptable(state, strays) if state.pod is None else None
    actions: list[Action] = [
        TerminatePod(p.id, "stray pod of ours unknown to the state")
        for p in strays
        if p is not adopt
    ]
    if adopt is not None:
        actions.append(AdoptPod(adopt.id, adopt.name, adopt.uptime_seconds or 0.0))
        return actions
    if state.pod is None:
        pending = state.pending_create
        if pending is not None and now - pending.at < config.startup.create_confirm_seconds:
            left = pending.at + config.startup.create_confirm_seconds - now
            why = f"the create of {pending.name} got no clear answer; waiting {left:.0f}s more"
            return [*actions, Noop(f"{why} for it to appear before creating another")]
        return actions + _create(config, state, now)
    return actions + _state_pod(config, state, observed, now, window)


def _adoptable(state: State, strays: list[PodInfo]) -> PodInfo | None:
    """The state's lost pod: the one a lost create named, else the newest running one."""
    pending = state.pending_create
    named = next((p for p in strays if pending is not None and p.name == pending.name), None)
    if named is not None and not named.stopped:
        return named
    running = [p for p in strays if p.running or p.starting]
    return min(running, key=lambda p: p.uptime_seconds or 0.0) if running else None


def _state_pod(
    config: Config, state: State, observed: Observed, now: float, window: Window
) -> list[Action]:
    pod = state.pod
    assert pod is not None
    live = observed.pod(pod.id)
    noted = _log_note(state, observed)
    if noted and noted[0].confirmed is False:  # vLLM got the JSON: replace, guard off
        spot = _spot(config.pod, state)
        why = "the start command reached vLLM literally"
        return [
            *noted,
            TerminatePod(pod.id, why),
            CreatePod(tuple(config.pod.gpu_type_ids), spot=spot),
        ]
    seen = observed.pod_log
    if seen is not None and seen.reading.fatal is not None and pod.phase != "ready":
        host_cuda = live.cuda_version if live is not None else None
        fatal = _fatal(config, state, seen.reading.fatal, now, seen.bigger_gpu, host_cuda)
        return [*noted, *fatal]
    if live is not None and (live.running or live.starting) and live.gpu_count == 0:
        # "You may be allocated zero GPUs" on a start (RunPod docs, pods/manage-pods.mdx):
        # vLLM cannot run there; waiting out the start-up budget would bill for nothing.
        spot = _spot(config.pod, state)
        create = CreatePod(tuple(config.pod.gpu_type_ids), replaces_lost_pod=True, spot=spot)
        return [*noted, TerminatePod(pod.id, "RunPod started it with zero GPUs"), create]
    return [*noted, *_state_pod_phase(config, state, observed, now, window)]


def _log_note(state: State, observed: Observed) -> list[NoteLog]:
    """What the pod's new log lines said (guard, phase, cursor) for apply to record."""
    pod, seen = state.pod, observed.pod_log
    if pod is None or seen is None:
        return []
    confirmed, why = (seen.guard.confirmed, seen.guard.why) if seen.guard else (None, "")
    elapsed = seen.read_at - startup_began(pod)
    phases = seen.reading.phases
    return [NoteLog(pod.id, confirmed, why, phases, seen.cursor, seen.read_at, elapsed)]


def _fatal(
    config: Config,
    state: State,
    fatal: Fatal,
    now: float,
    bigger: str | None,
    host_cuda: str | None,
) -> list[Action]:
    """A failure in the pod's log that waiting cannot cure (podlog.py): the pod goes at once.
    A host's failure is tried on another host once per session; a configuration's ends the
    session (a person must change the config)."""
    pod, session = state.pod, state.session
    assert pod is not None
    elapsed = now - startup_began(pod)
    said = f"pod {pod.id}, {elapsed:.0f}s after its start: {fatal.message(bigger)}"
    if fatal.signature.scope == "host":
        said += f" ({_cuda_said(config.pod, host_cuda)})"
        if session is not None and session.no_container_replacements == 0:
            create = CreatePod(tuple(config.pod.gpu_type_ids), spot=_spot(config.pod, state))
            return [
                AbandonPod(pod.id, f"{said}; replacing it on another host", replace=True),
                create,
            ]
        return [TerminatePod(pod.id, fatal.signature.name), EndSession("no_container", said)]
    return [TerminatePod(pod.id, fatal.signature.name), EndSession("pod_failed", said)]


def _state_pod_phase(
    config: Config, state: State, observed: Observed, now: float, window: Window
) -> list[Action]:
    pod = state.pod
    assert pod is not None
    live = observed.pod(pod.id)
    ready = pod.phase == "ready"
    seen = pod.container_seen_at is not None or ready
    phase = pod_phase(live, observed.pod_healthy, container_seen=seen)
    text = phase_text(phase, live, observed.health_detail)
    if phase in ("starting", "no_container", "loading") and not ready:
        text = _with_log_phase(text, observed, pod.log_phase)
    spot = pod.interruptible or (live is not None and live.interruptible)
    if phase == "stopped" and spot:  # RunPod took the spot pod's GPU back
        return [_preempted(config.pod, state)]
    if phase in ("gone", "stopped", "failed"):  # failed: a crash, the pod still RUNNING
        return _restart(config, state, live, text, now)
    if ready and phase == "loading":  # runtime up, every /health probe of this pass failed
        trouble = f"vLLM not healthy ({observed.health_detail or 'no answer'})"
        return _restart(config, state, live, trouble, now)
    if ready and phase == "serving":
        left = window.deadline - now
        return [Noop(f"pod {pod.id} ready, {left:.0f}s left, ${window.cost_usd:.4f}")]
    elapsed = now - startup_began(pod)
    if ready:  # RunPod shows it starting again (RESTARTING, unknown status): wait
        return [PodProgress(pod.id, phase, text, elapsed)]
    if phase == "serving":
        return [MarkReady(pod.id, elapsed)]
    host_cuda = live.cuda_version if live is not None else None
    return _not_serving_yet(config, state, phase, text, elapsed, host_cuda)


def _with_log_phase(text: str, observed: Observed, last: str | None) -> str:
    """The phase read from the pod's own log, when it has said one (podlog.py)."""
    seen = observed.pod_log.reading.phase if observed.pod_log is not None else None
    phase = seen or last
    return f"{phase} (from the pod's log)" if phase else text


def _not_serving_yet(
    config: Config, state: State, phase: Phase, text: str, elapsed: float, host_cuda: str | None
) -> list[Action]:
    """A starting pod: wait for the next pass, or give up on it past its time."""
    pod, session = state.pod, state.session
    assert pod is not None
    no_container = phase in ("starting", "no_container") and pod.container_seen_at is None
    if no_container and elapsed >= config.startup.no_container_timeout_seconds:
        reason = _no_container_message(config, pod.id, elapsed, host_cuda)
        if session is not None and session.no_container_replacements == 0:
            create = CreatePod(tuple(config.pod.gpu_type_ids), spot=_spot(config.pod, state))
            return [AbandonPod(pod.id, reason, replace=True), create]
        return [TerminatePod(pod.id, "no container, again"), EndSession("no_container", reason)]
    budget = config.startup.budget_seconds
    if elapsed >= budget:
        reason = f"not serving {elapsed:.0f}s after its start, budget {budget:.0f}s; last: {text}"
        return [AbandonPod(pod.id, reason)]
    return [PodProgress(pod.id, phase, text, elapsed)]


def _no_container_message(
    config: Config, pod_id: str, elapsed: float, host_cuda: str | None
) -> str:
    # No container for this long: the image cannot start on the host, most often a host
    # CUDA older than the image needs (vllm#18813, dstack#3299; RUNPOD_FACTS.md "Startup as
    # it really is"). REST v2 reports the host's CUDA (Pod.cudaVersion) when it knows it.
    return (
        f"pod {pod_id} showed no container {elapsed:.0f}s after its start "
        f"(startup.no_container_timeout_seconds {config.startup.no_container_timeout_seconds:g}): "
        f"likely an image/CUDA problem: image_name {config.pod.image_name} may need a newer CUDA "
        f"({_cuda_said(config.pod, host_cuda)}), or its pull fails"
    )


def _cuda_said(pod: PodSection, host_cuda: str | None) -> str:
    host = f"the host's CUDA is {host_cuda}" if host_cuda else "the host's CUDA is not reported"
    field = "allowed_cuda_versions" if pod.allowed_cuda_versions else "min_cuda_version"
    return f"{host}; the CUDA floor sent is {pod.cuda_floor}: raise {field}"


def _restart(
    config: Config, state: State, live: PodInfo | None, trouble: str, now: float
) -> list[Action]:
    assert state.pod is not None
    pod_id = state.pod.id
    restarts = state.session.restarts if state.session is not None else 0
    if restarts >= config.limits.max_restarts:
        reason = f"{trouble}; {restarts} restarts used"
        end: list[Action] = [EndSession("crash_loop", reason)]
        if live is None:
            return [ForgetPod(pod_id, trouble), *end]
        return [TerminatePod(pod_id, "crash loop"), *end]
    wait = restart_wait(config, state, now)
    if wait > 0:
        return [Noop(f"{trouble}; restart backoff, next try in {wait:.0f}s")]
    if live is None:
        spot = _spot(config.pod, state)
        recreate = CreatePod(tuple(config.pod.gpu_type_ids), replaces_lost_pod=True, spot=spot)
        return [ForgetPod(pod_id, trouble), recreate]
    return [RestartPod(pod_id, trouble)]


def _preempted(pod: PodSection, state: State) -> Action:
    """A stopped spot pod: RunPod stopped it (we never stop ours without terminating it),
    so it is a preemption, not a crash. From `max_preemptions` on, on-demand."""
    assert state.pod is not None
    count = (state.session.preemptions if state.session is not None else 0) + 1
    return ResumePreempted(state.pod.id, count, on_demand=count >= pod.max_preemptions)


def _spot(pod: PodSection, state: State) -> bool:
    """Create spot pods while the session has had fewer than `max_preemptions`."""
    used = state.session.preemptions if state.session is not None else 0
    return pod.interruptible and used < pod.max_preemptions


def _create(config: Config, state: State, now: float) -> list[Action]:
    """A first pod, or another one after pods failed to start (bounded like restarts)."""
    restarts = state.session.restarts if state.session is not None else 0
    if restarts > 0 and restarts >= config.limits.max_restarts:
        detail = f"pods failed {restarts} times; max_restarts is {config.limits.max_restarts}"
        return [EndSession("crash_loop", detail)]
    wait = restart_wait(config, state, now)
    if wait > 0:
        return [Noop(f"last pod failed; backoff, next create in {wait:.0f}s")]
    return [CreatePod(tuple(config.pod.gpu_type_ids), spot=_spot(config.pod, state))]
