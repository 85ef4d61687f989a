"""One configured pod of a set, seen as a one-pod config: what apply and observe act with.

The watchdog's create, restart, probe and log code is written for one pod (`config.pod`,
`state.pod`). For a set (config `pods`), apply runs each `ForPod(name, action)` with
`pod_config(config, name)` and the state `focused` on `name` (state.py), so that code acts
on that pod's section and record, unchanged:

- `pod` is the entry's section, with the `PODMGR_POD=<name>` marker in its env (identity.py
  `owner_of` reads it back from RunPod's listing); a one-pod config gets no marker, so its
  pods look exactly as before;
- `limits.idle_timeout_seconds` is the pod's own idle time (its guard's idle rule);
- the session's restart, backoff, no-container and preemption counters are the pod's own
  (`Session.counters[name]`; the session's fields stay the totals): `session_for_pod` for
  plan, `counting_for` around an action in apply;
- `limits.max_cost_usd` is the pod's **guard share** of the budget (`guard_share`), and the
  guard is told what this pod (by name, across its recreations) has cost so far
  (`guard_session`), not the whole session's cost.

Why the shares cannot let the total pass the budget: each configured pod's guard ends its
pod once that pod's own cost (every pod created for that name in the session, counted
from `SessionPod.cost_usd`) would pass `budget x share`; the shares are fixed fractions
of the configured set that sum to 1, so the sum of all pods' costs stays within
`budget x 1`. The watchdog's own budget rule (plan_set) counts the sum over every pod
and ends all of them first whenever it runs.

The share is equal (1/N of the N configured pods) for now. The price-weighted share of the
agreed interface ($/h of the pod over the sum of $/h of the pods running at the session's
start, recomputed at each create) is a next step: a recomputed share can only be given to
a pod being created, while the guards already running keep theirs, so the weights must be
chosen so that the shares in force never sum past 1 (see NOTES-23-CORE23.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from podmgr.config import Config
from podmgr.state import ONE_POD, PodCounters, Session
from podmgr.watchdog.identity import MARKER_POD

__all__ = [
    "counting_for",
    "guard_session",
    "guard_share",
    "is_set",
    "pod_config",
    "session_for_pod",
]

_COUNTERS = tuple(PodCounters.model_fields)


def is_set(config: Config) -> bool:
    """True when the config names its pods (`pods`), False for the one pod "pod"."""
    return config.pod_names != (ONE_POD,)


def guard_share(config: Config, name: str) -> float:
    """The fraction of the budget pod `name`'s guard enforces (equal shares, summing to 1)."""
    config.pod_entry(name)
    return 1.0 / len(config.pods)


def pod_config(config: Config, name: str) -> Config:
    """Pod `name` as a one-pod config: its section (with its marker), idle time and share."""
    if not is_set(config):
        return config
    entry = config.pod_entry(name)
    section = entry.section()
    section = section.model_copy(update={"env": {**section.env, MARKER_POD: name}})
    budget = config.limits.max_cost_usd
    limits = config.limits.model_copy(
        update={
            "idle_timeout_seconds": config.idle_timeout_for(name),
            "max_cost_usd": None if budget is None else budget * guard_share(config, name),
        }
    )
    return config.model_copy(update={"pod": section, "pods": (entry,), "limits": limits})


def guard_session(session: Session | None, config: Config, name: str) -> Session | None:
    """The session as pod `name`'s guard is told it: its cost is this pod's own so far
    (a one-pod config: the session as it is)."""
    if session is None or not is_set(config):
        return session
    own = sum(pod.cost_usd for pod in session.pods if pod.pod_name == name)
    return session.model_copy(update={"cost_usd": own})


def session_for_pod(session: Session, name: str) -> Session:
    """A copy of the session whose counters are pod `name`'s (what plan reads per pod)."""
    own = session.counters.get(name, PodCounters())
    return session.model_copy(update=own.model_dump())


@contextlib.contextmanager
def counting_for(session: Session | None, name: str) -> Iterator[None]:
    """While an action of pod `name` runs, the session's counters are that pod's; after
    it, what the action added is kept for the pod and added to the session's totals."""
    if session is None:
        yield
        return
    totals = {field: getattr(session, field) for field in _COUNTERS}
    own = session.counters.get(name, PodCounters())
    for field in _COUNTERS:
        setattr(session, field, getattr(own, field))
    try:
        yield
    finally:
        after = PodCounters.model_validate({f: getattr(session, f) for f in _COUNTERS})
        session.counters = {**session.counters, name: after}
        for field in ("restarts", "no_container_replacements", "preemptions"):
            added = getattr(after, field) - getattr(own, field)
            setattr(session, field, totals[field] + added)
        marks = [m for m in (totals["last_restart_at"], after.last_restart_at) if m is not None]
        session.last_restart_at = max(marks) if marks else None
