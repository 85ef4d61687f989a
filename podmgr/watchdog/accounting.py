"""Bookkeeping before each plan: cost so far, the pod's price, the last request time.

Cost so far is our own account: for each pod of the session, wall-clock time since it was
created (or last billed) times its `costPerHr`. Counting from creation, image pull and
model load included, errs on the side of more cost than RunPod's uptime-based bill, so a
budget check on it never lets the real bill pass the budget first.

Pure functions: they return a new State and never read the clock themselves.
"""

from __future__ import annotations

from podmgr.state import PodRecord, Session, State
from podmgr.watchdog.observed import Observed

__all__ = ["accrue_pod", "book"]


def accrue_pod(session: Session, pod: PodRecord, now: float) -> None:
    """Add the pod's cost since `billed_until` to the session and to the session's entry
    for the pod (in place, on copies)."""
    if pod.cost_per_hr <= 0:
        session.book_pod(pod, 0.0)
        return  # price not known yet: keep billed_until so the time is counted once it is
    since = pod.billed_until if pod.billed_until is not None else pod.created_at
    cost = pod.cost_per_hr * (now - since) / 3600 if now > since else 0.0
    session.book_pod(pod, cost)
    if now > since:
        pod.billed_until = now


def book(state: State, observed: Observed, now: float) -> State:
    """A copy of `state` with the pod's price, the cost so far and last request updated."""
    new = state.model_copy(deep=True)
    seen = observed.proxy.last_request_at
    if seen is not None and (new.last_request_at is None or seen > new.last_request_at):
        new.last_request_at = seen
    pod = new.pod
    if pod is None:
        return new
    live = observed.pod(pod.id)
    if live is not None and live.cost_per_hr > 0:
        pod.cost_per_hr = live.cost_per_hr
    if new.session is not None and live is not None:
        accrue_pod(new.session, pod, now)
    elif new.session is not None and pod.guard is not None:
        _accrue_vanished_guarded(new.session, pod, now)
    return new


def _accrue_vanished_guarded(session: Session, pod: PodRecord, now: float) -> None:
    """A guarded pod gone from RunPod may have run until now: its guard ends it by the
    session's limits, not at our last pass (issue 12: the laptop was closed). Count it up
    to now, but beyond the budget its guard enforced never: over-counting is this module's
    side to err on, and a pass after the guard's end must see the budget as spent."""
    assert pod.guard is not None
    before = session.cost_usd
    accrue_pod(session, pod, now)
    cap = pod.guard.get("max_cost_usd")
    if cap is not None:
        capped = max(before, min(session.cost_usd, float(cap)))
        if session.cost_usd > capped:
            session.book_pod(pod, capped - session.cost_usd)  # the pod's entry too
