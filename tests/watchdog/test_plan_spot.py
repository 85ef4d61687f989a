"""plan()'s preemption rows (issue 11): a stopped spot pod is RunPod's preemption, not a
crash; from the `max_preemptions`-th on, on-demand. Pure: no simulator."""

from __future__ import annotations

import dataclasses

import pytest

from podmgr.watchdog import actions as act
from podmgr.watchdog.plan import plan

from .helpers import NOW, config, live, record, seen, session, state


def spot_live(spot: bool) -> object:
    return dataclasses.replace(live(status="EXITED", runtime=False), interruptible=spot)


def decide(
    *, ours: bool, runpods: bool, used: int, restarts: int = 0, **cfg: object
) -> list[act.Action]:
    pod = record().model_copy(update={"interruptible": ours})
    st = state(session(restarts=restarts, preemptions=used), pod)
    observed = seen(spot_live(runpods))  # type: ignore[arg-type]
    return plan(config(interruptible=True, max_preemptions=2, **cfg), st, observed, NOW)


@pytest.mark.parametrize(
    ("ours", "runpods", "used", "on_demand"),
    [
        pytest.param(True, True, 0, False, id="first-preemption-resumes"),
        pytest.param(False, True, 0, False, id="runpod-says-spot-an-adopted-pod"),
        pytest.param(True, True, 1, True, id="second-preemption-goes-on-demand"),
    ],
)
def test_a_stopped_spot_pod_is_a_preemption(
    ours: bool, runpods: bool, used: int, on_demand: bool
) -> None:
    actions = [
        a
        for a in decide(ours=ours, runpods=runpods, used=used)
        if not isinstance(a, act.StartProxy)
    ]
    assert actions == [act.ResumePreempted("p1", used + 1, on_demand=on_demand)]


def test_a_preemption_ignores_restart_backoff_and_max_restarts() -> None:
    actions = decide(ours=True, runpods=True, used=0, restarts=2)  # max_restarts 2 used up
    assert [type(a) for a in actions] == [act.ResumePreempted]


def test_a_stopped_on_demand_pod_is_still_a_restart() -> None:
    actions = decide(ours=False, runpods=False, used=0)
    assert [type(a) for a in actions] == [act.RestartPod]


def test_new_pods_are_spot_until_max_preemptions() -> None:
    cfg = config(interruptible=True, max_preemptions=2)
    first = plan(cfg, state(session(preemptions=1)), seen(), NOW)
    assert act.CreatePod(("A", "B"), spot=True) in first
    later = plan(cfg, state(session(preemptions=2)), seen(), NOW)
    assert act.CreatePod(("A", "B"), spot=False) in later
