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
pods of name k cost `M_k = budget - sum of the other names' bounds`. A name's *bound* is
what its pods can cost at most with no watchdog running: a running pod's guard limit;
for a name with no running pod, the larger of what it cost so far and its *reserve*,
`budget x w_j`, where `w_j` is j's $/h over the summed $/h of **every configured pod**
(its record's price, else its first catalog candidate's; equal weights when a price is
unknown). So a pod created while the others are down (the first one a request wakes, or
`podmgr up chat` alone) gets its own weighted share, not the whole budget, and a pod
woken later in the session still finds its share there: with every name at its reserve,
`M_k = budget x w_k`.

Why the shares cannot let the total pass the budget: at each create, every other name's
bound is at least what its pods can cost with no watchdog (a running guard ends its pod
before its name passes its limit; a name with no pod costs nothing more until it is
created again, and that create computes its own limit by this same rule), so the new
pod's limit plus those bounds is at most the budget. No running guard's limit is ever
raised (the env of a running guard is fixed). Each guard ends its pod before its name's
cost passes its bound, so the pods' total cost stays within the budget even with no
watchdog. The watchdog's own rules come first whenever it runs: the budget over every pod
together ends all of them (plan_set), and a pod whose name's cost reaches its guard's
limit ends alone (`share_spent`, end reason `budget_share`): its guard would end it
anyway, and a pod made again for it would find no share left. The share each guard got is
in its record (`PodRecord.guard["max_cost_usd"]`, for `status`).

The cost of the rule: the split is fixed for the session. A pod that serves alone (the
others idle or not asked for) still stops at its own share, not at the whole budget;
moving unspent shares to running guards would need a way to lower and raise a running
guard's limit (the lease endpoint could carry it), which the guard does not have.
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
    "name_cost",
    "pod_config",
    "session_for_pod",
    "share_spent",
    "share_weights",
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
    weights = share_weights(config, prices)
    held = sum(
        _bound(state, other, budget * weights[other]) for other in config.pod_names if other != name
    )
    share = max(0.0, budget - held)
    # The guard reads its limit from env written with 6 significant digits (launch.py,
    # `:g`), which may round up by 5e-6 of it: shrink by 1e-5 first, so the value written
    # is the value held here and never more than the share.
    return float(f"{share * (1 - 1e-5):g}")


def share_weights(config: Config, prices: Mapping[str, float | None]) -> dict[str, float]:
    """Each configured pod's weight in the budget's split: its $/h over the sum of every
    configured pod's $/h (equal weights when any price is unknown or zero)."""
    names = config.pod_names
    known = [prices.get(name) for name in names]
    if all(price is not None and price > 0 for price in known):
        total = sum(price or 0.0 for price in known)
        return {name: (prices[name] or 0.0) / total for name in names}
    return {name: 1.0 / len(names) for name in names}


def name_cost(state: State, name: str) -> float:
    """What the pods made for configured pod `name` have cost in this session so far."""
    session = state.session
    return sum(p.cost_usd for p in session.pods if p.pod_name == name) if session else 0.0


def share_spent(state: State, name: str, margin_seconds: float) -> str | None:
    """Why pod `name` must end alone because its share of the budget is spent, or None:
    its record's guard limit is reached by its name's cost plus `margin_seconds` at its
    price (the budget rule's look-ahead, so the watchdog ends it no later than its guard
    would). A record without a guard limit (no budget, or no guard) has no share."""
    record = state.pods.get(name)
    limit = (record.guard or {}).get("max_cost_usd") if record is not None else None
    if record is None or limit is None:
        return None
    spent = name_cost(state, name)
    if spent + record.cost_per_hr * margin_seconds / 3600 <= float(limit):
        return None
    return f"${spent:.2f} spent of its ${float(limit):.2f} share of the budget"


def _bound(state: State, name: str, reserve: float) -> float:
    """What the pods of `name` can cost at most with no watchdog running: its running
    guard's limit; with no running pod, what they cost so far or its reserve (its share
    kept for it), whichever is larger."""
    spent = name_cost(state, name)
    record = state.pods.get(name)
    limit = (record.guard or {}).get("max_cost_usd") if record is not None else None
    return max(spent, float(limit)) if limit is not None else max(spent, reserve)
