"""Bookkeeping before each plan: cost so far, the pod's price, the last request time.

Cost so far is our own account: for each pod of the session, wall-clock time since it was
created (or last billed) times its `costPerHr`. Counting from creation, image pull and
model load included, errs on the side of more cost than RunPod's uptime-based bill, so a
budget check on it never lets the real bill pass the budget first.

Pure functions: they return a new State and never read the clock themselves.
"""

from __future__ import annotations

from podmgr.state import ONE_POD, PodRecord, Session, State
from podmgr.watchdog.observed import Observed

__all__ = ["accrue_pod", "book"]


def accrue_pod(session: Session, pod: PodRecord, now: float, pod_name: str = ONE_POD) -> None:
    """Add the pod's cost since `billed_until` to the session and to the session's entry
    for the pod (in place, on copies); `pod_name`: the configured pod it was made for."""
    if pod.cost_per_hr <= 0:
        session.book_pod(pod, 0.0, pod_name)
        return  # price not known yet: keep billed_until so the time is counted once it is
    since = pod.billed_until if pod.billed_until is not None else pod.created_at
    cost = pod.cost_per_hr * (now - since) / 3600 if now > since else 0.0
    session.book_pod(pod, cost, pod_name)
    if now > since:
        pod.billed_until = now


def book(state: State, observed: Observed, now: float) -> State:
    """A copy of `state` with each pod's price, the cost so far and last requests updated
    (`observed.pods`: every pod of ours RunPod lists, for one pod or a set)."""
    new = state.model_copy(deep=True)
    seen = observed.proxy.last_request_at
    if seen is not None and (new.last_request_at is None or seen > new.last_request_at):
        new.last_request_at = seen
    by_model = dict(new.last_request_by_model)
    for model, at in observed.proxy.last_request_by_model.items():
        by_model[model] = max(at, by_model.get(model, at))
    if by_model != new.last_request_by_model:
        new.last_request_by_model = by_model
    for name in list(new.pods):
        _book_pod(new, name, observed, now)
    return new


def _book_pod(state: State, name: str, observed: Observed, now: float) -> None:
    """The price and cost so far of the record of configured pod `name` (in place)."""
    pod = state.pods[name]
    live = observed.pod(pod.id)
    if live is not None and live.cost_per_hr > 0:
        pod.cost_per_hr = live.cost_per_hr
    if state.session is not None and live is not None:
        accrue_pod(state.session, pod, now, name)
    elif state.session is not None and pod.guard is not None:
        _accrue_vanished_guarded(state.session, pod, now, name)


def _accrue_vanished_guarded(session: Session, pod: PodRecord, now: float, name: str) -> None:
    """A guarded pod gone from RunPod may have run until now: its guard ends it by the
    session's limits, not at our last pass (issue 12: the laptop was closed). Count it up
    to now, but beyond the budget its guard enforced never: over-counting is this module's
    side to err on, and a pass after the guard's end must see the budget as spent.

    The guard of a pod of a set enforces its share on that pod's own cost (focus.py), so
    the cap is compared with what pods of that name cost; a one-pod config's with the
    session's cost, as before."""
    assert pod.guard is not None

    def spent() -> float:
        if name == ONE_POD:
            return session.cost_usd
        return sum(known.cost_usd for known in session.pods if known.pod_name == name)

    before = spent()
    accrue_pod(session, pod, now, name)
    cap = pod.guard.get("max_cost_usd")
    if cap is not None:
        after = spent()
        capped = max(before, min(after, float(cap)))
        if after > capped:
            session.book_pod(pod, capped - after, name)  # the pod's entry too
