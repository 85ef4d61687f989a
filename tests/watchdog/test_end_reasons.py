"""The table of session end reasons (podmgr/rules.py): its rules, and one new limit added
by a test alone, seen by the watchdog, the proxy's wake, the what-if replay, the history
and the pod's guard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from podmgr import rules
from podmgr.guard.guard import Activity, Limits, decide
from podmgr.guard.launch import guard_env, guard_limits
from podmgr.history import session_record
from podmgr.proxy.observe.history_page import render_history_text
from podmgr.proxy.wake import wake_refusal
from podmgr.rules import EndReason, Figures, GuardLimit
from podmgr.state import Session, State
from podmgr.watchdog import actions as act
from podmgr.watchdog.plan import plan
from podmgr.whatif.replay import Prices, replay
from podmgr.whatif.runpod_model import StartupPace
from podmgr.whatif.trace import read_trace

from .helpers import NOW, config, ended, live, record, seen, session, state

T0 = 1_000_000.0
LIMITS = rules.Limits(runtime_seconds=3600, max_cost_usd=1.0, idle_seconds=600, margin_seconds=300)
TRACE = Path(__file__).resolve().parents[2] / "traces" / "workweek.csv"
GPU = "NVIDIA GeForce RTX 4090"
CAP_USD = 0.3
CAP_LABEL = "today's spend cap was reached"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({}, None, id="nothing-reached"),
        pytest.param({"now": T0 + 3540}, "deadline", id="deadline-due"),
        pytest.param({"cost_usd": 0.89}, None, id="budget-not-yet"),
        pytest.param({"cost_usd": 0.91}, "budget", id="budget-one-check-early"),
        pytest.param({"idle_seconds": 599}, None, id="idle-not-yet"),
        pytest.param({"idle_seconds": 600}, "idle", id="idle"),
        pytest.param({"now": T0 + 3540, "idle_seconds": 999}, "deadline", id="first-row-wins"),
    ],
)
def test_first_limit(values: dict[str, float], expected: str | None) -> None:
    now = values.pop("now", T0)
    reached = rules.first_limit(
        Figures(now, T0 - 60, T0 + 3540, LIMITS, price_per_hr=1.2, **values)  # type: ignore[arg-type]
    )
    assert (reached[0] if reached else None) == expected


@pytest.mark.parametrize(
    ("reason", "wake", "normal"),
    [
        pytest.param(None, True, False, id="no-session-ended"),
        pytest.param("deadline", True, True, id="deadline"),
        pytest.param("idle", True, True, id="idle"),
        pytest.param("shutdown", True, True, id="shutdown"),
        pytest.param("budget", False, False, id="budget"),
        pytest.param("crash_loop", False, False, id="crash-loop"),
        pytest.param("no_container", False, False, id="no-container"),
        pytest.param("pod_failed", False, False, id="pod-failed"),
        pytest.param("balance_zero", True, False, id="balance-zero"),
        pytest.param("from_a_newer_podmgr", False, False, id="unknown"),
    ],
)
def test_what_each_end_reason_allows(reason: str | None, wake: bool, normal: bool) -> None:
    assert rules.allows_wake(reason) is wake
    assert rules.normal_end(reason) is normal


def test_the_guard_gets_its_rules_from_the_table() -> None:
    cfg = config(max_cost_usd=2.0, idle_timeout_seconds=600)
    sess = Session(started_at=T0, deadline=T0 + 3600, cost_usd=0.25)
    env = guard_env(cfg, sess, T0 + 60, environ={})
    sent = json.loads(env["PODMGR_GUARD_RULES"])
    assert [(r["reason"], r["measure"], r["limit"]) for r in sent] == [
        ("deadline", "clock", T0 + 3600),
        ("budget", "projected_cost_usd", 2.0),
        ("idle", "idle_seconds", 600),
    ]
    limits = Limits.from_env(env)
    assert decide(limits, T0 + 3600, None, Activity()) == "deadline passed (0s ago)"


# --- one new limit: one row and one rule, in the test suite only -------------------------
def spend_cap(figures: Figures) -> str | None:
    """A test-only limit: a spend cap tighter than the budget, with a name of its own."""
    if figures.cost_usd < CAP_USD:
        return None
    return f"${figures.cost_usd:.2f} spent, cap ${CAP_USD:.2f}"


def curfew(figures: Figures) -> float:
    """A test-only limit of the guard's: a minute after the session started."""
    return figures.started_at + 60


CAP = EndReason("spend_cap", CAP_LABEL, wake=False, rule=spend_cap)
CURFEW = EndReason("curfew", "the curfew", wake=True, guard=GuardLimit("clock", curfew))


@pytest.fixture
def cap() -> Iterator[EndReason]:
    with rules.registered(CAP):
        yield CAP
    assert "spend_cap" not in rules.REASONS  # the table is as it was


def test_the_watchdog_ends_the_session_for_the_new_limit(cap: EndReason) -> None:
    st = state(session(cost=CAP_USD + 0.01), record())
    actions = plan(config(), st, seen(live()), NOW)
    assert act.EndSession("spend_cap", f"${CAP_USD + 0.01:.2f} spent, cap $0.30") in actions
    assert any(isinstance(a, act.TerminatePod) for a in actions)


def test_without_the_row_the_watchdog_does_not_know_the_limit() -> None:
    st = state(session(cost=CAP_USD + 0.01), record())
    assert not any(isinstance(a, act.EndSession) for a in plan(config(), st, seen(live()), NOW))


def test_the_wake_refuses_after_the_new_limit(cap: EndReason) -> None:
    refused = wake_refusal(config(), state(ended("spend_cap")), NOW)
    assert refused is not None and "spend_cap" in refused and CAP_LABEL in refused
    assert wake_refusal(config(), state(ended("idle")), NOW) is None


def test_the_history_names_the_new_limit(cap: EndReason) -> None:
    sess = Session(started_at=T0, deadline=T0 + 3600, cost_usd=0.31)
    sess.ended_at, sess.end_reason = T0 + 1800, "spend_cap"
    record_ = session_record(State(session=sess), T0 + 1800)
    assert record_ is not None and record_.session_id == sess.id
    assert record_.ended_why == f"spend_cap: {CAP_LABEL}"
    assert f"spend_cap: {CAP_LABEL}" in render_history_text([record_], [])


def test_the_what_if_ends_sessions_for_the_new_limit_and_starts_none_that_day(
    cap: EndReason,
) -> None:
    cfg = config(gpu_type_id=[GPU], runtime_seconds=8 * 3600, idle_timeout_seconds=3600)
    prices = Prices({GPU: 0.69}, {GPU: 0.41}, "test")
    result = replay(cfg, read_trace(TRACE), prices, pace=StartupPace(150, 40, 60))
    capped = [s for s in result.sessions if s.end_reason == "spend_cap"]
    assert capped, [s.end_reason for s in result.sessions]
    assert capped[0].ended_why == f"spend_cap: {CAP_LABEL}"
    assert len({s.session_id for s in result.sessions}) == len(result.sessions)
    for ended_, later in zip(result.sessions, result.sessions[1:], strict=False):
        if ended_.end_reason == "spend_cap":
            assert ended_.ended_at is not None
            assert later.started_at // 86400 > ended_.ended_at // 86400  # not the same day


def test_the_guard_applies_a_new_rule_it_was_sent() -> None:
    sess = Session(started_at=T0, deadline=T0 + 3600)
    with rules.registered(CURFEW):
        limits = Limits.from_env(guard_env(config(), sess, T0, environ={}))
    assert decide(limits, T0 + 59, None, Activity()) is None
    assert decide(limits, T0 + 61, None, Activity()) == "curfew passed (1s ago)"
    assert "curfew" not in rules.REASONS


def test_the_watchdog_reads_a_gone_pod_as_ended_by_its_guards_new_rule() -> None:
    sess = session()
    with rules.registered(CURFEW):
        guard = guard_limits(guard_env(config(), sess, NOW - 600, environ={}))
        pod = record().model_copy(update={"guard": guard})
        actions = plan(config(), state(sess, pod), seen(), NOW)
    assert act.EndSession("curfew", "pod p1 gone: its guard ended it (curfew)") in actions
    assert not any(isinstance(a, act.CreatePod) for a in actions)  # a limit, not a loss


def test_unreadable_rules_leave_the_guard_its_limits_one_by_one() -> None:
    env = {"PODMGR_GUARD_RULES": "[{not json", "PODMGR_GUARD_DEADLINE": str(T0)}
    limits = Limits.from_env(env)
    assert limits.rules == ()
    assert decide(limits, T0, None, Activity()) == "deadline passed (0s ago)"
