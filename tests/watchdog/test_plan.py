"""plan() as decision tables: one row per rule (see podmgr/watchdog/plan.py's docstring)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from podmgr.errors import TransientApiError
from podmgr.state import State
from podmgr.watchdog import actions as act
from podmgr.watchdog.observed import Observed, ProxyView, Request
from podmgr.watchdog.plan import plan

from .helpers import NOW, PROXY_UP, config, ended, live, record, seen, session, state


def summary(action: act.Action) -> str:
    """A short, comparable form of an action."""
    match action:
        case act.TerminatePod(pod_id=pod_id) | act.RestartPod(pod_id=pod_id):
            return f"{type(action).__name__} {pod_id}"
        case act.ForgetPod(pod_id=pod_id) | act.AdoptPod(pod_id=pod_id):
            return f"{type(action).__name__} {pod_id}"
        case act.PodProgress(pod_id=pod_id, phase=phase):
            return f"PodProgress {pod_id} {phase}"
        case act.MarkReady(pod_id=pod_id):
            return f"MarkReady {pod_id}"
        case act.AbandonPod(pod_id=pod_id, replace=replace):
            return f"AbandonPod {pod_id}" + (" replace" if replace else "")
        case act.EndSession(reason=reason):
            return f"EndSession {reason}"
        case act.CreatePod(replaces_lost_pod=again):
            return "CreatePod again" if again else "CreatePod"
        case act.StopProxy(pid=pid):
            return f"StopProxy {pid}"
    return type(action).__name__


def run(st: State, obs: Observed, request: Request = "pass", **cfg: Any) -> list[str]:
    before = st.model_dump()
    decided = plan(config(**cfg), st, obs, NOW, request)
    assert st.model_dump() == before, "plan() must not change its input"
    return [summary(a) for a in decided]


PROXY_DOWN = ProxyView()
HUNG_PROXY = ProxyView(pid=4242, healthy=False)
NO_HISTORY: tuple[str, ...] = ()


@pytest.mark.parametrize(
    ("st", "obs", "request_", "cfg", "expected"),
    [
        pytest.param(
            state(history=NO_HISTORY),
            seen(proxy=PROXY_DOWN),
            "pass",
            {},
            ["StartSession", "StartProxy", "CreatePod"],
            id="first-run-on-a-fresh-machine-starts-a-session",
        ),
        pytest.param(
            state(history=NO_HISTORY),
            seen(),
            "pass",
            {},
            ["StartSession", "CreatePod"],
            id="first-run-proxy-already-up",
        ),
        pytest.param(
            state(ended()),
            seen(),
            "pass",
            {},
            ["Noop"],
            id="ended-session-cron-keeps-it-down",
        ),
        pytest.param(
            state(ended()),
            seen(live("p9")),
            "pass",
            {},
            ["TerminatePod p9", "Noop"],
            id="ended-session-terminates-a-pod-still-alive",
        ),
        pytest.param(
            state(None, history=("EndSession",)),
            seen(),
            "pass",
            {},
            ["Noop"],
            id="no-session-with-history-does-not-start",
        ),
        pytest.param(
            state(ended()),
            seen(),
            "start",
            {},
            ["StartSession", "CreatePod"],
            id="up-starts-a-new-session-after-one-ended",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(), healthy=True),
            "start",
            {},
            ["Noop"],
            id="up-during-an-active-session-changes-nothing",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(), healthy=True),
            "pass",
            {},
            ["Noop"],
            id="healthy-ready-pod-is-a-noop",
        ),
        pytest.param(
            state(session(left=0), record()),
            seen(live(), healthy=True),
            "pass",
            {},
            ["TerminatePod p1", "EndSession deadline"],
            id="deadline-reached-terminates",
        ),
        pytest.param(
            state(session(left=-900), record()),
            seen(live(), live("p2")),
            "pass",
            {},
            ["TerminatePod p1", "TerminatePod p2", "EndSession deadline"],
            id="deadline-terminates-strays-too",
        ),
        pytest.param(
            state(session(left=-1), record()),
            seen(),
            "pass",
            {},
            ["ForgetPod p1", "EndSession deadline"],
            id="deadline-with-pod-already-gone",
        ),
        pytest.param(
            state(session(left=-1, restarts=0), None),
            seen(),
            "pass",
            {},
            ["EndSession deadline"],
            id="deadline-before-any-pod",
        ),
        pytest.param(
            state(session(cost=2.41), record()),
            seen(live(), healthy=True),
            "pass",
            {"max_cost_usd": 2.5},
            ["TerminatePod p1", "EndSession budget"],
            id="budget-with-one-interval-margin",
        ),
        pytest.param(
            state(session(cost=2.39), record()),
            seen(live(), healthy=True),
            "pass",
            {"max_cost_usd": 2.5},
            ["Noop"],
            id="budget-not-yet-reached",
        ),
        pytest.param(
            state(session(age=2500), record(ready_ago=2000)),
            seen(live(), healthy=True),
            "pass",
            {"idle_timeout_seconds": 1800},
            ["TerminatePod p1", "EndSession idle"],
            id="idle-since-ready-without-requests",
        ),
        pytest.param(
            state(session(age=2500), record(ready_ago=2000)),
            seen(live(), healthy=True, proxy=ProxyView(1, True, NOW - 60)),
            "pass",
            {"idle_timeout_seconds": 1800},
            ["Noop"],
            id="recent-request-keeps-it-up",
        ),
        pytest.param(
            state(session(), record(ready_ago=2000), last_request_at=NOW - 60),
            seen(live(), healthy=True),
            "pass",
            {"idle_timeout_seconds": 1800},
            ["Noop"],
            id="request-remembered-across-proxy-restarts",
        ),
        pytest.param(
            state(session(age=4000, left=4000), record(phase="starting")),
            seen(live()),
            "pass",
            {"idle_timeout_seconds": 1800, "runtime_seconds": 8000},
            ["PodProgress p1 loading"],
            id="idle-not-counted-while-starting",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(), live("p2"), healthy=True),
            "pass",
            {},
            ["TerminatePod p2", "Noop"],
            id="stray-terminated",
        ),
        pytest.param(
            state(session(), None),
            seen(live("p2")),
            "pass",
            {},
            ["AdoptPod p2"],
            id="lost-pod-adopted",
        ),
        pytest.param(
            state(session(), None),
            seen(live("old", uptime=900), live("new", uptime=5)),
            "pass",
            {},
            ["TerminatePod old", "AdoptPod new"],
            id="newest-lost-pod-adopted-older-terminated",
        ),
        pytest.param(
            state(session(), None),
            seen(live("p2", status="EXITED")),
            "pass",
            {},
            ["TerminatePod p2", "CreatePod"],
            id="stopped-stray-not-adopted",
        ),
        pytest.param(
            state(session(), record()),
            seen(),
            "pass",
            {},
            ["ForgetPod p1", "CreatePod again"],
            id="pod-gone-is-recreated",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(status="EXITED")),
            "pass",
            {},
            ["RestartPod p1"],
            id="stopped-pod-restarted",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(), healthy=False, detail="health 503"),
            "pass",
            {},
            ["RestartPod p1"],
            id="dead-vllm-restarted",
        ),
        pytest.param(
            state(session(restarts=2), record()),
            seen(live(), healthy=False),
            "pass",
            {},
            ["TerminatePod p1", "EndSession crash_loop"],
            id="crash-loop-terminated",
        ),
        pytest.param(
            state(session(restarts=2), record()),
            seen(),
            "pass",
            {},
            ["ForgetPod p1", "EndSession crash_loop"],
            id="crash-loop-pod-gone",
        ),
        pytest.param(
            state(session(restarts=1, last_restart_at=NOW - 10), record()),
            seen(live(status="EXITED")),
            "pass",
            {},
            ["Noop"],
            id="restart-backoff",
        ),
        pytest.param(
            state(session(restarts=1, last_restart_at=NOW - 31), record()),
            seen(live(status="EXITED")),
            "pass",
            {},
            ["RestartPod p1"],
            id="restart-after-backoff",
        ),
        pytest.param(
            state(session(restarts=2), None),
            seen(),
            "pass",
            {},
            ["EndSession crash_loop"],
            id="pods-kept-failing-to-start",
        ),
        pytest.param(
            state(session(restarts=1, last_restart_at=NOW - 5), None),
            seen(),
            "pass",
            {},
            ["Noop"],
            id="create-backoff-after-failed-start",
        ),
        pytest.param(
            state(session(), record(phase="starting")),
            seen(live()),
            "pass",
            {},
            ["PodProgress p1 loading"],
            id="still-starting-keeps-waiting",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(), healthy=True, proxy=PROXY_DOWN),
            "pass",
            {},
            ["StartProxy", "Noop"],
            id="proxy-down-started",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(), healthy=True, proxy=HUNG_PROXY),
            "pass",
            {},
            ["StartProxy", "Noop"],
            id="hung-proxy-restarted",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(), live("p2")),
            "shutdown",
            {},
            ["TerminatePod p1", "TerminatePod p2", "EndSession shutdown", "StopProxy 4242"],
            id="shutdown-terminates-all-and-stops-proxy",
        ),
        pytest.param(
            state(ended()),
            seen(proxy=PROXY_DOWN),
            "shutdown",
            {},
            ["Noop"],
            id="shutdown-when-already-down",
        ),
        pytest.param(
            state(session(), record()),
            seen(live()),
            "shutdown",
            {"wake_on_request": True},
            ["TerminatePod p1", "EndSession shutdown"],
            id="shutdown-with-wake-on-request-leaves-the-proxy-to-wake-later",
        ),
        pytest.param(
            state(ended()),
            seen(proxy=PROXY_DOWN),
            "pass",
            {"wake_on_request": True},
            ["Noop", "StartProxy"],
            id="wake-on-request-keeps-the-proxy-running-between-sessions",
        ),
        pytest.param(
            state(ended()),
            seen(),
            "pass",
            {"wake_on_request": True},
            ["Noop"],
            id="wake-on-request-proxy-up-between-sessions-nothing-to-do",
        ),
        pytest.param(
            state(None, history=("state_recovered",)),
            seen(live("p5", uptime=1000)),
            "pass",
            {},
            ["StartSession", "AdoptPod p5"],
            id="corrupt-state-recovers-running-pod",
        ),
        pytest.param(
            state(None, history=("state_recovered",)),
            seen(),
            "pass",
            {},
            ["Noop"],
            id="corrupt-state-without-pod-stays-down",
        ),
        pytest.param(
            state(None, history=("state_recovered",)),
            seen(live("p5", uptime=4000)),
            "pass",
            {},
            ["StartSession", "TerminatePod p5", "EndSession deadline"],
            id="recovered-pod-past-its-deadline",
        ),
    ],
)
def test_plan_table(
    st: State, obs: Observed, request_: Request, cfg: dict[str, Any], expected: list[str]
) -> None:
    assert run(st, obs, request_, **cfg) == expected


# Issue 10, finding 8: CREATED/RESTARTING mean "starting" (wait, never resume); a status
# RunPod's schema does not list means "not ready" (wait), never a crash or a resume.
@pytest.mark.parametrize(
    ("st", "obs", "expected"),
    [
        pytest.param(
            state(session(), record(phase="starting")),
            seen(live(status="CREATED")),
            ["PodProgress p1 starting"],
            id="created-while-starting-waits",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(status="RESTARTING")),
            ["PodProgress p1 starting"],
            id="restarting-ready-pod-waits-no-resume",
        ),
        pytest.param(
            state(session(), record(phase="restarting")),
            seen(live(status="RESTARTING")),
            ["PodProgress p1 starting"],
            id="restarting-after-our-resume-is-not-another-restart",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(status="PROVISIONING")),
            ["PodProgress p1 starting"],
            id="unknown-status-is-not-ready",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(status="UNKNOWN")),
            ["PodProgress p1 starting"],
            id="missing-status-is-not-ready",
        ),
        pytest.param(
            state(session(), record()),
            seen(live(status="EXITED")),
            ["RestartPod p1"],
            id="exited-is-still-resumed",
        ),
        pytest.param(
            state(session()),
            seen(live("p5", status="CREATED")),
            ["AdoptPod p5"],
            id="lost-pod-still-created-is-adopted-not-terminated",
        ),
        pytest.param(
            state(session(left=0), record()),
            seen(live(status="RESTARTING")),
            ["TerminatePod p1", "EndSession deadline"],
            id="deadline-ends-a-restarting-pod",
        ),
    ],
)
def test_plan_statuses(st: State, obs: Observed, expected: list[str]) -> None:
    assert run(st, obs) == expected


def listing_failed(obs: Observed) -> Observed:
    """What observe() returns when `myself.pods` failed: the state's pod read by its id."""
    return dataclasses.replace(obs, listing_error=TransientApiError("Something went wrong"))


# Issue 10, finding 7: limits hold when listing pods fails; nothing else is decided.
@pytest.mark.parametrize(
    ("st", "obs", "request_", "cfg", "expected"),
    [
        pytest.param(
            state(session(left=0), record()),
            listing_failed(seen(live())),
            "pass",
            {},
            ["TerminatePod p1", "EndSession deadline"],
            id="deadline-terminates-by-id",
        ),
        pytest.param(
            state(session(cost=2.5), record()),
            listing_failed(seen(live())),
            "pass",
            {"max_cost_usd": 2.5},
            ["TerminatePod p1", "EndSession budget"],
            id="budget-terminates-by-id",
        ),
        pytest.param(
            state(session(left=0), record()),
            listing_failed(seen()),
            "pass",
            {},
            ["ForgetPod p1", "EndSession deadline"],
            id="deadline-pod-already-gone",
        ),
        pytest.param(
            state(session(), record()),
            listing_failed(seen(live(), proxy=PROXY_DOWN)),
            "pass",
            {},
            ["Noop"],
            id="within-limits-decides-nothing",
        ),
        pytest.param(
            state(session()),
            listing_failed(seen()),
            "pass",
            {},
            ["Noop"],
            id="no-pod-creates-nothing-blind",
        ),
        pytest.param(
            state(ended()),
            listing_failed(seen()),
            "start",
            {},
            ["Noop"],
            id="up-starts-no-session-blind",
        ),
        pytest.param(
            state(session(), record()),
            listing_failed(seen(live())),
            "shutdown",
            {},
            ["TerminatePod p1", "EndSession shutdown", "StopProxy 4242"],
            id="shutdown-terminates-by-id",
        ),
    ],
)
def test_plan_when_listing_fails(
    st: State, obs: Observed, request_: Request, cfg: dict[str, Any], expected: list[str]
) -> None:
    assert run(st, obs, request_, **cfg) == expected


def test_new_session_deadline_is_runtime_after_now() -> None:
    actions = plan(config(runtime_seconds=900), state(history=()), seen(), NOW, "pass")
    start = actions[0]
    assert isinstance(start, act.StartSession)
    assert (start.started_at, start.deadline) == (NOW, NOW + 900)


def test_recovered_session_is_anchored_at_the_pods_start() -> None:
    actions = plan(
        config(), state(None, history=("state_recovered",)), seen(live(uptime=1000)), NOW
    )
    start = actions[0]
    assert isinstance(start, act.StartSession)
    assert start.started_at == NOW - 1000 and start.deadline == NOW - 1000 + 3600


def test_create_uses_the_gpu_list_in_order() -> None:
    actions = plan(config(gpu_type_id=["X", "Y", "Z"]), state(session()), seen(), NOW)
    create = next(a for a in actions if isinstance(a, act.CreatePod))
    assert create.gpu_type_ids == ("X", "Y", "Z")


def test_restarts_do_not_extend_the_deadline() -> None:
    st = state(session(age=3599, left=1, restarts=1, last_restart_at=NOW - 1000), record())
    assert run(st, seen(live(status="EXITED"))) == ["RestartPod p1"]
    st = state(session(age=3600, left=0, restarts=1, last_restart_at=NOW - 1000), record())
    assert run(st, seen(live(status="EXITED"))) == ["TerminatePod p1", "EndSession deadline"]


def test_every_action_describes_itself() -> None:
    samples: list[act.Action] = [
        act.StartSession(NOW, NOW + 60, "requested"),
        act.EndSession("idle", "no request for 60s"),
        act.CreatePod(("A",), replaces_lost_pod=True),
        act.PodProgress("p1", "loading", "container up, model download or load (health 502)", 95),
        act.MarkReady("p1", 120),
        act.AbandonPod("p1", "no container", replace=True),
        act.RestartPod("p1", "pod is EXITED"),
        act.TerminatePod("p1", "deadline"),
        act.AdoptPod("p1", "podmgr-x", 5.0),
        act.ForgetPod("p1", "gone"),
        act.StartProxy("not running"),
        act.StopProxy(12),
        act.Noop("fine"),
    ]
    texts = [a.describe() for a in samples]
    assert all(texts) and len(set(texts)) == len(texts)
    assert "PROXY_UP" not in texts and PROXY_UP.healthy
