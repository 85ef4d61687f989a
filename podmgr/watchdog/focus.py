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
- `limits.max_cost_usd` is the pod's **guard share** of the budget: an equal share here
  (`guard_share`), the price-weighted, capped one at a create (`guard_budget`); the guard
  is told what this pod (by name, across its recreations) has cost so far
  (`guard_session`), not the whole session's cost.

**Guard shares** (`guard_budget`, set when a pod is created): pod k's guard may let the
pods of name k cost `M_k = min(budget x w_k, budget - sum of the others' bounds)`, where
`w_k` = k's $/h over the summed $/h of the pods the session runs (each pod with a record
at its price, k at its candidate's price, a wanted pod not created yet at its catalog
price; equal weights when a price is unknown), and a pod's *bound* is what the pods of
its name can cost at most with no watchdog running: its running guard's limit, else what
they cost so far (a pod not running cannot cost more until it is created again, and that
create computes its limit by this same rule).

Why the shares cannot let the total pass the budget: the sum of the bounds never passes
the budget. A create sets `M_k <= budget - sum(others' bounds)`, so it holds after each
create; a pod that ends turns its bound from its guard's limit into its cost so far,
which is no more than that limit, so the sum only falls; no guard's limit is ever raised
(the env of a running guard is fixed). Each guard ends its pod before its name's cost
passes its bound, so the pods' total cost stays within the budget even with no watchdog.
The weights make the split fair; the cap is what makes it safe (the weights alone,
recomputed at each create, would not be: a pod created first alone would hold the whole
budget). The watchdog's own budget rule (plan_set) counts the sum over every pod and ends
all of them first whenever it runs. The share each guard got is in its record
(`PodRecord.guard["max_cost_usd"]`), for `status`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from podmgr.config import Config
from podmgr.state import ONE_POD, PodCounters, Session, State
from podmgr.watchdog.identity import MARKER_POD

__all__ = [
    "counting_for",
    "guard_budget",
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


def guard_budget(
    config: Config, state: State, name: str, prices: Mapping[str, float | None]
) -> float | None:
    """The budget pod `name`'s guard enforces on its name's cost, as it is created (see
    the module docstring for the rule and why the total stays within the budget);
    `prices`: $/h by pod name (None or missing: unknown). None without a budget."""
    budget = config.limits.max_cost_usd
    if budget is None:
        return None
    ended = state.session.ended_pods if state.session is not None else {}
    wanted = [n for n in config.pod_names if n == name or n not in ended]
    known = [prices.get(n) for n in wanted]
    if all(price is not None and price > 0 for price in known):
        weight = (prices[name] or 0.0) / sum(price or 0.0 for price in known)
    else:
        weight = 1.0 / len(wanted)
    held = sum(_bound(state, other) for other in config.pod_names if other != name)
    share = max(0.0, min(budget * weight, budget - held))
    # The guard reads its limit from env written with 6 significant digits (launch.py,
    # `:g`), which may round up by 5e-6 of it: shrink by 1e-5 first, so the value written
    # is the value held here and never more than the share.
    return float(f"{share * (1 - 1e-5):g}")


def _bound(state: State, name: str) -> float:
    """What the pods of `name` can cost at most with no watchdog running: its running
    guard's limit, else what they cost so far."""
    session = state.session
    spent = sum(p.cost_usd for p in session.pods if p.pod_name == name) if session else 0.0
    record = state.pods.get(name)
    limit = (record.guard or {}).get("max_cost_usd") if record is not None else None
    return max(spent, float(limit)) if limit is not None else spent
