"""The watchdog after a pod's guard ended it: no replacement for a budget the guard spent."""

from __future__ import annotations

import pytest
from watchdog.helpers import NOW, config, record, seen, session, state

from podmgr.watchdog.accounting import book
from podmgr.watchdog.plan import plan

GUARD = {"max_cost_usd": "2.5", "interval_seconds": "10"}


def _guarded(guard: dict[str, str] | None = GUARD, billed_ago: float = 100) -> object:
    pod = record()  # $1.20/h, created 600 s ago
    pod.guard, pod.billed_until = guard, NOW - billed_ago
    return state(session(cost=2.0), pod)


@pytest.mark.parametrize(
    ("guard", "billed_ago", "cost"),
    [
        pytest.param(GUARD, 100, 2.0 + 1.2 * 100 / 3600, id="guarded-pod-gone-counted-to-now"),
        pytest.param(GUARD, 3600 * 5, 2.5, id="never-past-the-guards-budget"),
        pytest.param(None, 100, 2.0, id="unguarded-pod-gone-as-before"),
    ],
)
def test_book_a_vanished_pod(guard: dict[str, str] | None, billed_ago: float, cost: float) -> None:
    booked = book(_guarded(guard, billed_ago), seen(), NOW)  # type: ignore[arg-type]
    assert booked.session is not None
    assert booked.session.cost_usd == pytest.approx(cost)


def test_a_pod_the_guard_ended_for_the_budget_is_not_replaced() -> None:
    """Guard interval (60 s) longer than the watchdog's (30 s): the session ends as budget."""
    cfg = config(max_cost_usd=2.5, watchdog_interval_seconds=30, guard_interval_seconds=60)
    # Counted to now, the session is 45 s of the pod's price short of its budget: more than
    # one watchdog interval, less than one guard interval (the guard's rule ended it).
    booked = book(_guarded(billed_ago=1455), seen(), NOW)  # type: ignore[arg-type]
    assert booked.session is not None
    assert booked.session.cost_usd == pytest.approx(2.5 - 1.2 * 45 / 3600)
    names = [type(action).__name__ for action in plan(cfg, booked, seen(), NOW)]
    assert "CreatePod" not in names and "EndSession" in names, names
