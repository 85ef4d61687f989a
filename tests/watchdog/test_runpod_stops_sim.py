"""The watchdog and the stops RunPod makes (issue 11): the balance at $0 ends the session
at once with its own exit code, after one start attempt at most; no resume loop."""

from __future__ import annotations

import pytest
from wdkit import Harness

from podmgr.errors import BalanceError
from podmgr.sim.process import wait_until


def test_balance_zero_ends_the_session_with_exit_code_11_after_one_start_attempt(
    wd: Harness,
) -> None:
    wd.up()
    first = wd.ledger()[0]["id"]
    wd.sim.set_fault("balance_zero", count=1)
    with pytest.raises(BalanceError) as raised:
        wd.run()
    assert raised.value.exit_code == 11
    assert "balance is at $0" in raised.value.message, raised.value.message
    state = wd.state()
    assert state.session is not None and state.session.end_reason == "balance_zero"
    assert state.pod is None and state.pending_create is None
    pods = wd.ledger()
    assert [p["id"] for p in pods] == [first], pods  # the one create attempt made nothing
    assert pods[0]["ended_by"] == "runpod" and pods[0]["status"] == "TERMINATED"
    requests = wd.sim.rest_requests()
    wd.run()  # the next pass: the session has ended, no create, no start
    assert wd.ledger() == pods
    assert wd.sim.rest_requests() - requests <= 2, "only reads after the session ended"
    assert any("balance is at $0" in line for line in wd.lines), wd.lines


def test_balance_zero_on_a_stopped_pod_is_one_start_attempt(wd: Harness) -> None:
    wd.up()
    pod_id = wd.ledger()[0]["id"]
    wd.sim.crash_pod(pod_id)  # RunPod stopped it (EXITED): the watchdog will resume it
    wd.sim.set_fault("balance_zero")
    with pytest.raises(BalanceError):
        wd.run()
    state = wd.state()
    assert state.session is not None and state.session.end_reason == "balance_zero"
    assert wd.alive() == [] and len(wd.ledger()) == 1


def serving_again(wd: Harness, pod_id: str) -> None:
    """Pass 1 resumed (or replaced) the pod; wait until the simulator serves it, then
    pass 2 must find it ready."""
    wait_until(lambda: wd.sim.pod_phase(pod_id)["phase"] == "serving", f"pod {pod_id} serving")
    wd.run()
    state = wd.state()
    assert state.pod is not None and state.pod.id == pod_id and state.pod.phase == "ready"


def test_a_preempted_spot_pod_is_resumed_then_on_demand_after_max_preemptions(
    wd: Harness,
) -> None:
    wd.configure(interruptible=True, max_preemptions=2)
    wd.up()
    [spot] = wd.ledger()
    assert spot["interruptible"] is True and spot["cost_per_hr"] == pytest.approx(0.69 * 0.6)
    wd.sim.set_fault("preempt", count=1)
    wd.run()  # pass 1: RunPod stopped it; resumed, not counted as a restart
    assert wd.ledger()[0]["ended_by"] == "runpod"
    serving_again(wd, spot["id"])  # pass 2
    session = wd.state().session
    assert session is not None and session.preemptions == 1 and session.restarts == 0
    wd.sim.set_fault("preempt", count=1)
    wd.run()  # the second preemption: max_preemptions reached, on-demand from now on
    pods = wd.ledger()
    assert len(pods) == 2 and pods[0]["status"] == "TERMINATED", pods
    on_demand = pods[1]
    assert on_demand["interruptible"] is False and on_demand["cost_per_hr"] == 0.69
    assert len(wd.alive()) == 1
    serving_again(wd, on_demand["id"])
    session = wd.state().session
    assert session is not None and session.preemptions == 2 and session.restarts == 0
    assert any("preempted by RunPod" in line for line in wd.lines), wd.lines
