"""plan() rows for what REST v2 shows: ERROR, zero GPUs, the guard's finding in the log."""

from __future__ import annotations

import dataclasses

import pytest

from podmgr.guard.check import GuardFinding
from podmgr.watchdog import actions as act
from podmgr.watchdog.observed import PodLog
from podmgr.watchdog.plan import plan
from podmgr.watchdog.podlog import LogReading

from .helpers import NOW, config, live, record, seen, session, state
from .test_plan import summary

GUARDED = {"deadline": "1", "interval_seconds": "10"}


def guarded(phase: str = "starting", **more: object) -> object:
    pod = record(phase=phase, created_ago=30)
    return pod.model_copy(update={"guard": GUARDED, **more})


@pytest.mark.parametrize(
    ("pod", "observed", "expected"),
    [
        pytest.param(
            record(phase="ready"),
            seen(live(status="ERROR", runtime=False)),
            ["RestartPod p1"],
            id="error-is-started-again",
        ),
        pytest.param(
            record(phase="ready"),
            seen(dataclasses.replace(live(), gpu_count=0), healthy=False),
            ["TerminatePod p1", "CreatePod again"],
            id="zero-gpus-replaced-at-once",
        ),
        pytest.param(
            record(phase="starting", created_ago=30),
            seen(live(status="STARTING", runtime=False)),
            ["PodProgress p1 starting"],
            id="starting-waits",
        ),
        pytest.param(
            record(phase="starting", created_ago=30),
            seen(live(status="PROVISIONING", runtime=False)),
            ["PodProgress p1 starting"],
            id="provisioning-waits",
        ),
    ],
)
def test_v2_statuses(pod: object, observed: object, expected: list[str]) -> None:
    st = state(session(), pod)  # type: ignore[arg-type]
    actions = plan(config(), st, observed, NOW)  # type: ignore[arg-type]
    assert [summary(a) for a in actions] == expected


def test_guard_confirmed_is_noted_and_the_pod_goes_on() -> None:
    obs = dataclasses.replace(
        seen(live(), healthy=False),
        pod_log=PodLog(GuardFinding(True, "armed"), LogReading(), "cursor-1", NOW),
    )
    actions = plan(config(), state(session(), guarded()), obs, NOW)  # type: ignore[arg-type]
    note = actions[0]
    assert isinstance(note, act.NoteLog) and note.confirmed is True and note.cursor == "cursor-1"
    assert [summary(a) for a in actions[1:]] == ["PodProgress p1 loading"]


def test_start_command_passed_literally_replaces_the_pod_once_without_counting() -> None:
    obs = dataclasses.replace(
        seen(live(), healthy=False),
        pod_log=PodLog(GuardFinding(False, "literal"), LogReading(), "cursor-2", NOW),
    )
    actions = plan(config(), state(session(), guarded()), obs, NOW)  # type: ignore[arg-type]
    assert [summary(a) for a in actions] == ["NoteLog", "TerminatePod p1", "CreatePod"]
    assert isinstance(actions[0], act.NoteLog) and actions[0].confirmed is False


def test_a_log_read_without_a_finding_only_moves_the_cursor_and_read_time() -> None:
    log = PodLog(None, LogReading(), "c3", NOW)
    obs = dataclasses.replace(seen(live(), healthy=False), pod_log=log)
    actions = plan(config(), state(session(), guarded()), obs, NOW)  # type: ignore[arg-type]
    assert [summary(a) for a in actions] == ["NoteLog", "PodProgress p1 loading"]
    note = actions[0]
    assert isinstance(note, act.NoteLog) and note.confirmed is None and note.read_at == NOW
