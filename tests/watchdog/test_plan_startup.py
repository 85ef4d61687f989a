"""plan()'s readiness rules at the DEFAULT config, on a fake clock (issue 10, findings 1, 6, 8).

A real vLLM pod takes minutes to serve (RUNPOD_FACTS.md, "Startup as it really is"); the
suite cannot wait that long, so these rows put the pod minutes into its start through
the state's times and what the pass observed. The old default budget, 10 + 20 x 5 =
110 s, terminated every such pod; the default now gives it 60 + 114 x 10 = 1200 s.
"""

from __future__ import annotations

import pytest

from podmgr.state import PendingCreate, State
from podmgr.watchdog import actions as act
from podmgr.watchdog.observed import Observed
from podmgr.watchdog.plan import plan

from .helpers import NOW, config, live, record, seen, session, state
from .test_plan import run


def starting(created_ago: float, container_ago: float | None = None, **more: object) -> State:
    pod = record(phase="starting", created_ago=created_ago, container_ago=container_ago)
    return state(session(age=created_ago + 10, left=3000, **more), pod)  # type: ignore[arg-type]


PULLING = seen(live(runtime=False))  # RUNNING, no runtime yet: the image is being pulled
LOADING = seen(live(runtime=True), healthy=False, detail="health 502")
SERVING = seen(live(runtime=True), healthy=True, detail="health 200")


@pytest.mark.parametrize(
    ("st", "obs", "expected"),
    [
        pytest.param(starting(111), PULLING, ["PodProgress p1 no_container"], id="pull-past-110s"),
        pytest.param(
            starting(600, container_ago=400),
            LOADING,
            ["PodProgress p1 loading"],
            id="loading-at-10-minutes-waits",
        ),
        pytest.param(
            starting(1150, container_ago=300),
            LOADING,
            ["PodProgress p1 loading"],
            id="loading-just-inside-20-minutes-waits",
        ),
        pytest.param(
            starting(1150, container_ago=300), SERVING, ["MarkReady p1"], id="serves-at-1150s"
        ),
        pytest.param(
            starting(1200, container_ago=300),
            LOADING,
            ["AbandonPod p1"],
            id="still-loading-past-the-20-minute-budget",
        ),
        pytest.param(
            starting(500),
            seen(live(status="CREATED", runtime=False)),
            ["PodProgress p1 starting"],
            id="created-status-waits",
        ),
        pytest.param(
            starting(500, container_ago=100),
            seen(live(status="RESTARTING", runtime=False)),
            ["PodProgress p1 starting"],
            id="restarting-status-waits-no-resume",
        ),
        pytest.param(
            starting(800),
            PULLING,
            ["PodProgress p1 no_container"],
            id="no-container-before-its-timeout-waits",
        ),
        pytest.param(
            starting(900),
            PULLING,
            ["AbandonPod p1 replace", "CreatePod"],
            id="no-container-at-900s-replaced-once",
        ),
        pytest.param(
            starting(900),
            seen(live(status="CREATED", runtime=False)),
            ["AbandonPod p1 replace", "CreatePod"],
            id="created-for-900s-replaced-once",
        ),
        pytest.param(
            starting(900, no_container_replacements=1),
            PULLING,
            ["TerminatePod p1", "EndSession no_container"],
            id="no-container-a-second-time-ends-the-session",
        ),
        pytest.param(
            starting(300, container_ago=100),
            PULLING,
            ["RestartPod p1"],
            id="container-gone-while-loading-is-a-crash",
        ),
        pytest.param(
            state(session(), record()),
            PULLING,
            ["RestartPod p1"],
            id="container-gone-after-ready-is-a-crash",
        ),
        pytest.param(
            state(session(restarts=3), record()),
            PULLING,
            ["TerminatePod p1", "EndSession crash_loop"],
            id="crash-past-max-restarts-ends",
        ),
        pytest.param(
            state(session(left=0), record(phase="starting", created_ago=100)),
            PULLING,
            ["TerminatePod p1", "EndSession deadline"],
            id="deadline-comes-first-while-starting",
        ),
        pytest.param(
            state(
                session(restarts=1, last_restart_at=NOW - 100),
                record(phase="restarting", created_ago=5000, restart_ago=100),
            ),
            LOADING,
            ["PodProgress p1 loading"],
            id="budget-counts-from-the-last-restart",
        ),
        pytest.param(
            state(
                session(restarts=1, last_restart_at=NOW - 10),
                record(phase="restarting", created_ago=5000, restart_ago=10),
            ),
            seen(live(status="EXITED", runtime=False)),
            ["Noop"],
            id="restart-answered-an-error-before-the-start-backs-off",
        ),
    ],
)
def test_startup_at_the_default_config(st: State, obs: Observed, expected: list[str]) -> None:
    assert run(st, obs, max_restarts=3) == expected


def test_the_default_budget_is_twenty_minutes() -> None:
    cfg = config()
    assert cfg.startup.budget_seconds == 1200 and cfg.startup.no_container_timeout_seconds == 900


def test_progress_line_names_phase_and_elapsed_time() -> None:
    [progress] = plan(config(), starting(95, container_ago=5), LOADING, NOW)
    expected = "[  95s] pod p1: container up, model download or load (health 502)"
    assert progress.describe() == expected


def test_no_container_message_names_the_image_and_the_host_cuda() -> None:
    actions = plan(config(), starting(900, no_container_replacements=1), PULLING, NOW)
    end = actions[-1]
    assert isinstance(end, act.EndSession) and end.reason == "no_container"
    assert "vllm/vllm-openai:v0.8.5" in end.detail and "CUDA" in end.detail
    assert "image/CUDA problem" in end.detail


def with_pending(at_ago: float) -> State:
    pending = PendingCreate(name="podmgr-lost", gpu_type_id="A", at=NOW - at_ago)
    return state(session()).model_copy(update={"pending_create": pending})


@pytest.mark.parametrize(
    ("st", "obs", "expected"),
    [
        pytest.param(with_pending(10), seen(), ["Noop"], id="lost-create-not-listed-yet-waits"),
        pytest.param(
            with_pending(10),
            seen(live("p7", name="podmgr-lost", runtime=False)),
            ["AdoptPod p7"],
            id="lost-create-shows-up-and-is-adopted",
        ),
        pytest.param(
            with_pending(10),
            seen(live("p7", name="podmgr-lost", uptime=5), live("p8", uptime=1)),
            ["TerminatePod p8", "AdoptPod p7"],
            id="the-named-pod-is-adopted-not-the-newest",
        ),
        pytest.param(
            with_pending(config().startup.create_confirm_seconds),
            seen(),
            ["CreatePod"],
            id="never-listed-after-the-grace-creates",
        ),
    ],
)
def test_a_create_whose_answer_was_lost(st: State, obs: Observed, expected: list[str]) -> None:
    assert run(st, obs) == expected
