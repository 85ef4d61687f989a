"""Session end reasons and the limit rules: one table, read by every part that needs them.

Each row (`EndReason`) names one way a session ends and what that allows afterwards:

  reason        wake  normal  limit rule                      guard measure
  deadline      yes   yes     now >= the session's deadline   clock
  budget        no    no      cost + one check > max cost     projected_cost_usd
  idle          yes   yes     idle_seconds >= idle limit      idle_seconds
  shutdown      yes   yes     (a person asked)                -
  crash_loop    no    no      (plan: died after max_restarts) -
  no_container  no    no      (plan: no container, twice)     -
  pod_failed    no    no      (plan: the pod's log failed)    -
  balance_zero  yes   no      (apply: RunPod refused, $0)     -
  create_refused no   no      (apply: a clear 4xx to a create) -
  budget_share  no    no      (plan_set: one pod's share spent) -
  lease         yes   no      (guard only: no watchdog pass)  lease_silence_seconds

- `wake`: a request may wake the next session after it (podmgr/proxy/wake.py, and the
  what-if's wake and modelled person, podmgr/whatif/replay.py); otherwise a person decides
  with `podmgr up`. No end reason lets the ended session restart or replace its pod: it
  stays down until the next session starts.
- `normal`: the session did what it was asked when its pod had served (a `podmgr up`
  waiting on it succeeded, podmgr/watchdog/runner.py; a wake that ran it does not rest).
- `rule`: the limit the watchdog checks on every pass (podmgr/watchdog/session.py), a pure
  function of one `Figures` returning a detail for people when the limit is reached. Rules
  run in table order; the first reached ends the session.
- `guard`: the measure the pod's guard compares with the row's threshold; the launcher
  (podmgr/guard/launch.py) sends `guard_rules()` in the pod's env and the guard
  (podmgr/guard/guard.py, stdlib only) applies them without knowing any reason itself.

A new limit is one row with its rule: `register()` adds it (a test adds one inside
`registered()`, which restores the table after), and the watchdog, the wake, the what-if
and the history all see it. This module imports nothing of the watchdog, proxy or what-if.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from podmgr.config import Config

__all__ = [
    "REASONS",
    "EndReason",
    "Figures",
    "GuardLimit",
    "Limits",
    "Rule",
    "allows_wake",
    "first_limit",
    "guard_rules",
    "label",
    "normal_end",
    "register",
    "registered",
]


@dataclass(frozen=True)
class Limits:
    """The session limits of a config (None: no such limit)."""

    runtime_seconds: float
    max_cost_usd: float | None = None
    idle_seconds: float | None = None
    margin_seconds: float = 0.0  # the budget keeps one more check at the pod's price
    lease_seconds: float | None = None

    @classmethod
    def of(cls, config: Config) -> Limits:
        margin: float = config.watchdog.interval_seconds
        if config.guard.enabled:  # the guard ends its pod one of its own intervals early
            margin = max(margin, config.guard.interval_seconds)
        return cls(
            runtime_seconds=config.limits.runtime_seconds,
            max_cost_usd=config.limits.max_cost_usd,
            idle_seconds=config.limits.idle_timeout_seconds,
            margin_seconds=margin,
            lease_seconds=config.guard.lease_seconds,
        )


@dataclass(frozen=True)
class Figures:
    """One session at one moment: everything a limit rule reads."""

    now: float
    started_at: float
    deadline: float
    limits: Limits
    cost_usd: float = 0.0
    price_per_hr: float = 0.0
    idle_seconds: float | None = None  # None: idleness is not counted now (no serving pod)

    @property
    def projected_cost_usd(self) -> float:
        """The cost by the next check if the pod runs until then."""
        return self.cost_usd + self.price_per_hr * self.limits.margin_seconds / 3600


Rule = Callable[[Figures], str | None]


@dataclass(frozen=True)
class GuardLimit:
    """What the pod's guard compares (`measure`, one it knows how to read) with the
    threshold the row takes from the session's figures when the pod is created."""

    measure: str
    threshold: Callable[[Figures], float | None]


@dataclass(frozen=True)
class EndReason:
    """One row of the table (module docstring)."""

    name: str
    label: str  # how people are told, after "the session ended: "
    wake: bool
    normal: bool = False
    rule: Rule | None = None
    guard: GuardLimit | None = field(default=None, compare=False)


def _deadline(figures: Figures) -> str | None:
    if figures.now < figures.deadline:
        return None
    return f"runtime {figures.limits.runtime_seconds:.0f}s reached"


def _budget(figures: Figures) -> str | None:
    cap = figures.limits.max_cost_usd
    if cap is None or figures.projected_cost_usd <= cap:
        return None
    return f"${figures.cost_usd:.2f} spent of ${cap:.2f}"


def _idle(figures: Figures) -> str | None:
    limit, idle = figures.limits.idle_seconds, figures.idle_seconds
    if limit is None or idle is None or idle < limit:
        return None
    return f"no request for {idle:.0f}s"


REASONS: dict[str, EndReason] = {}


def register(row: EndReason) -> EndReason:
    """Add a row (or replace the row of the same name, keeping its place)."""
    REASONS[row.name] = row
    return row


@contextmanager
def registered(*rows: EndReason) -> Iterator[None]:
    """The table with `rows` added while the block runs, as it was afterwards."""
    saved = dict(REASONS)
    try:
        for row in rows:
            register(row)
        yield
    finally:
        REASONS.clear()
        REASONS.update(saved)


for _row in (
    EndReason(
        "deadline",
        "its runtime limit was reached",
        wake=True,
        normal=True,
        rule=_deadline,
        guard=GuardLimit("clock", lambda f: f.deadline if math.isfinite(f.deadline) else None),
    ),
    EndReason(
        "budget",
        "its budget was spent",
        wake=False,
        rule=_budget,
        guard=GuardLimit("projected_cost_usd", lambda figures: figures.limits.max_cost_usd),
    ),
    EndReason(
        "idle",
        "no request came for its idle limit",
        wake=True,
        normal=True,
        rule=_idle,
        guard=GuardLimit("idle_seconds", lambda figures: figures.limits.idle_seconds),
    ),
    EndReason("shutdown", "a person shut it down", wake=True, normal=True),
    EndReason("crash_loop", "its pod kept crashing (max_restarts used)", wake=False),
    EndReason("no_container", "its pod never got a container, twice", wake=False),
    EndReason("pod_failed", "its pod's log showed a failure no other pod escapes", wake=False),
    EndReason("balance_zero", "RunPod refused to start a pod: the balance is $0", wake=True),
    EndReason("create_refused", "RunPod refused its create outright: fix the config", wake=False),
    # One pod of a set (config `pods`) alone: its guard's share of the budget is spent
    # (podmgr/watchdog/focus.py `share_spent`); the session and the other pods go on.
    EndReason("budget_share", "its share of the session's budget was spent", wake=False),
    EndReason(
        "lease",
        "the watchdog stopped renewing its guard's lease",
        wake=True,
        guard=GuardLimit("lease_silence_seconds", lambda figures: figures.limits.lease_seconds),
    ),
):
    register(_row)


def first_limit(figures: Figures) -> tuple[str, str] | None:
    """The first row whose rule is reached, as (reason, detail), or None."""
    for row in list(REASONS.values()):
        if row.rule is None:
            continue
        detail = row.rule(figures)
        if detail is not None:
            return row.name, detail
    return None


def allows_wake(reason: str | None) -> bool:
    """A request may wake the next session after one that ended for `reason` (None: no
    session has ended). An unknown reason (a newer podmgr's) does not allow it."""
    if reason is None:
        return True
    row = REASONS.get(reason)
    return row is not None and row.wake


def normal_end(reason: str | None) -> bool:
    """A session that ended for `reason` after its pod served did what it was asked."""
    row = REASONS.get(reason or "")
    return row is not None and row.normal


def label(reason: str | None) -> str:
    """How people are told why a session ended ("-" for a session still running)."""
    if reason is None:
        return "-"
    row = REASONS.get(reason)
    return f"{reason}: {row.label}" if row is not None else reason


def guard_rules(figures: Figures) -> list[dict[str, str | float]]:
    """The limits the pod's guard enforces for a pod created with these figures, in table
    order: reason, measure and threshold each (podmgr/guard/guard.py applies them)."""
    rules: list[dict[str, str | float]] = []
    for row in list(REASONS.values()):
        if row.guard is None:
            continue
        threshold = row.guard.threshold(figures)
        if threshold is not None:
            rules.append({"reason": row.name, "measure": row.guard.measure, "limit": threshold})
    return rules
