"""When a session starts and ends (pure functions; `plan()` applies them).

The limits themselves and what each end reason allows afterwards are rows of one table,
podmgr/rules.py; this module gathers a session's figures for them.

A session starts only when a person asks for one:
  - the first pass on a machine with no state at all (installing the cron line starts it),
  - `manage_pod.py --start`, `podmgr up`, `podmgr demo` (request "start"),
  - recovery: the state file was corrupt and moved aside while a pod of ours is still
    running; that pod's session is rebuilt, anchored at the pod's start.
A session ends at the first of:
  - its deadline: `runtime_seconds` after it started (restarts inside it do not extend it);
    enforced on the first pass at or after the deadline;
  - its budget: when cost so far plus one more watchdog interval (or guard interval, if
    longer and the pod's guard is on) at the pod's price would pass `max_cost_usd`: the
    guard ends its pod by that rule, and a pass after it must not replace the pod;
  - idleness: `idle_timeout_seconds` since the latest of (last client request seen by the
    proxy, pod ready time, session start), counted only while the pod is ready: whatever
    the limit, a pod is never ended for idle before it served;
  - its pod's guard ended the pod: a pod with the guard's limits in the state is gone from
    RunPod (listing answered) and one of those limits was reached. Deadline and budget are
    the rules above; idle is its guard's own clock, which starts when vLLM first answers
    `/metrics` (after the model loaded) and sees only the requests that reached the pod:
    when the pod has lived `idle_seconds` since its start, its guard may have ended it for
    idle, so the session ends for idle. Never a crash: no restart counted, no new pod
    (requests that went to fallbacks after it ended say nothing of its guard's clock, and
    RunPod shows a crash as EXITED or ERROR, not as a pod gone);
  - a crash loop: the pod died again after `max_restarts` restarts;
  - `--shutdown` / `podmgr shutdown`.
Once ended, cron passes keep our pods down and say so; they never start a session.
"""

from __future__ import annotations

from dataclasses import dataclass

from podmgr.config import Config
from podmgr.guard.launch import guard_rules_of
from podmgr.rules import Figures, Limits, first_limit
from podmgr.state import State
from podmgr.watchdog.actions import EndReason
from podmgr.watchdog.observed import Observed, Request

__all__ = [
    "Window",
    "figures",
    "limit_reached",
    "pod_served",
    "restart_wait",
    "start_reason",
]

MAX_BACKOFF_SECONDS = 3600.0


@dataclass(frozen=True)
class Window:
    """The session values the limits are checked against (existing or just started)."""

    started_at: float
    deadline: float
    cost_usd: float


def start_reason(state: State, observed: Observed, request: Request) -> tuple[str, float] | None:
    """Why a new session starts now and how long ago it began, or None: keep down."""
    if state.session is not None and state.session.active:
        return None
    if request == "start":
        return "requested", 0.0
    if state.session is None and not state.history:
        return "first run on this machine", 0.0
    recovered = state.session is None and any(h.action == "state_recovered" for h in state.history)
    running = [p for p in observed.pods if p.running or p.starting]
    if recovered and running:
        age = max(p.uptime_seconds or 0.0 for p in running)
        return "rebuilt after the state file was lost", age
    return None


def figures(
    config: Config, state: State, observed: Observed, window: Window, now: float
) -> Figures:
    """The session's figures for the limit rules (podmgr/rules.py): idleness counts from
    the latest of (session start, pod ready, last request the proxy saw), and only while
    the pod is ready."""
    pod = state.pod
    idle = None
    if pod is not None and pod.phase == "ready":
        marks = [window.started_at, pod.ready_at, state.last_request_at]
        marks.append(observed.proxy.last_request_at)
        idle = now - max(m for m in marks if m is not None)
    return Figures(
        now=now,
        started_at=window.started_at,
        deadline=window.deadline,
        limits=Limits.of(config),
        cost_usd=window.cost_usd,
        price_per_hr=pod.cost_per_hr if pod is not None else 0.0,
        idle_seconds=idle,
    )


def limit_reached(
    config: Config, state: State, observed: Observed, window: Window, now: float
) -> tuple[EndReason, str] | None:
    """The first limit the session has reached, with a detail for people, or None."""
    reached = first_limit(figures(config, state, observed, window, now))
    return reached if reached is not None else _guard_ended(state, observed, now)


def _guard_ended(state: State, observed: Observed, now: float) -> tuple[EndReason, str] | None:
    """The rule by which the pod's guard may have ended it, if it is gone: the first of its
    rules on the clock that is due, or on idleness that may have run out by now."""
    pod = state.pod
    if pod is None or not pod.guard or observed.listing_error is not None:
        return None
    if observed.pod(pod.id) is not None:
        return None
    try:
        rules = guard_rules_of(pod.guard).active_rules()
    except (ValueError, KeyError, TypeError):
        return None
    began = pod.last_restart_at if pod.last_restart_at is not None else pod.created_at
    for rule in rules:
        if rule.measure == "clock" and now >= rule.limit:
            return rule.reason, f"pod {pod.id} gone: its guard ended it ({rule.reason})"
        if rule.measure == "idle_seconds" and now - began >= rule.limit:
            # its guard's idle clock may have run out (else: gone for another cause)
            return rule.reason, (
                f"pod {pod.id} gone: its guard ended it (idle limit {rule.limit:g}s)"
            )
    return None


def restart_wait(config: Config, state: State, now: float) -> float:
    """Seconds to wait before the next restart (exponential backoff), 0 if none."""
    session = state.session
    if session is None or session.restarts == 0 or session.last_restart_at is None:
        return 0.0
    backoff = min(
        config.watchdog.restart_backoff_seconds * 2.0 ** (session.restarts - 1), MAX_BACKOFF_SECONDS
    )
    return max(0.0, session.last_restart_at + backoff - now)


def pod_served(state: State) -> bool:
    """A pod of the state's session served (a pass saw it ready): by the pods the session
    booked (`ready_at`), the state's pod, or a `MarkReady` in the history since it began."""
    session = state.session
    if session is None:
        return False
    if any(pod.ready_at is not None for pod in session.pods):
        return True
    if state.pod is not None and state.pod.ready_at is not None:
        return True
    return any(h.action == "MarkReady" and h.at >= session.started_at for h in state.history)
