"""Crashes and half-succeeded mutations as the simulator plays them (issue 10, findings 4, 6).

A crash is not EXITED: the container dies and the pod stays RUNNING with `runtime` null
and its URL answering 502 until it is stopped and started (dstack commit c9b4412;
RUNPOD_FACTS.md, "Errors and states that real RunPod produces"): fault and control
`container_crash`. RunPod can also make a change and answer an error after it
(`api_error_after_apply`; runpodctl#45, transformerlab-app#2305).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from wdkit import Harness, MakeWd

from podmgr.errors import PodmgrError, UnconfirmedCreateError
from podmgr.sim.process import SimProcess

LOAD_SECONDS = 3.0


@pytest.fixture(scope="module")
def loading_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=0.1, load_seconds=LOAD_SECONDS) as process:
        yield process


@pytest.fixture
def slow_load(loading_sim: SimProcess, make_wd: MakeWd) -> Harness:
    return make_wd(loading_sim)


def kinds(wd: Harness, request: str = "pass") -> list[str]:
    return [type(a).__name__ for a in wd.run(request).actions]  # type: ignore[arg-type]


def until_loading(wd: Harness, timeout: float = 120) -> str:
    """Passes until one has seen the container up and vLLM loading; the pod's id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wd.run()
        pod = wd.state().pod
        if pod is not None and pod.container_seen_at is not None and pod.phase != "ready":
            return pod.id
        time.sleep(0.05)
    raise AssertionError(f"no pass saw the container up while loading: {wd.lines[-5:]}")


def restarted_once(wd: Harness, pod_id: str) -> None:
    wd.up()
    state = wd.state()
    assert state.pod is not None and state.pod.id == pod_id and state.pod.phase == "ready"
    assert state.session is not None and state.session.restarts == 1
    assert state.pod.restarts == 1
    assert [p["id"] for p in wd.alive()] == [pod_id] and len(wd.ledger()) == 1


def test_container_crash_while_loading_is_one_restart(slow_load: Harness) -> None:
    slow_load.configure(restart_backoff_seconds=0, max_startup_attempts=2000)
    pod_id = until_loading(slow_load)
    slow_load.sim.crash_container(pod_id)  # v2: ERROR, runtime null, URL 502
    assert kinds(slow_load) == ["RestartPod"]
    assert any("ERROR: the container failed" in line for line in slow_load.lines)
    restarted_once(slow_load, pod_id)
    slow_load.run("shutdown")


@pytest.mark.parametrize("how", ["control", "fault"])
def test_container_crash_after_ready_is_one_restart(wd: Harness, how: str) -> None:
    wd.up()
    pod_id = wd.state().pod.id  # type: ignore[union-attr]
    if how == "control":
        wd.sim.crash_container(pod_id)
    else:
        wd.sim.set_fault("container_crash", count=1, pod_id=pod_id)
    actions = kinds(wd)
    if "RestartPod" not in actions:  # the fault strikes on this pass's first API call
        actions = kinds(wd)
    assert actions.count("RestartPod") == 1, actions
    restarted_once(wd, pod_id)
    wd.run("shutdown")


def test_a_start_answering_an_error_after_it_started_counts_one_restart(wd: Harness) -> None:
    wd.up()
    pod_id = wd.state().pod.id  # type: ignore[union-attr]
    wd.sim.crash_container(pod_id)
    wd.sim.set_fault("api_error_after_apply", count=1, field="start", pod_id=pod_id)
    with contextlib.suppress(PodmgrError):  # the adapter's retry may hide it or not:
        wd.run()  # counted once either way
    state = wd.state()
    assert state.pod is not None and state.pod.phase == "restarting"
    assert state.session is not None and state.session.restarts == 1
    assert [f["fired"] for f in wd.sim.faults() if f["fault"] == "api_error_after_apply"] == [1]
    restarted_once(wd, pod_id)
    wd.run("shutdown")


def test_a_create_answering_an_error_after_it_made_the_pod_leaves_one_pod(wd: Harness) -> None:
    wd.sim.set_fault("api_error_after_apply", count=1, field="create")
    with contextlib.suppress(PodmgrError):  # the adapter's retry by name finds the pod,
        wd.run()  # or the next pass adopts it
    wd.up()
    [record] = wd.ledger()
    state = wd.state()
    assert state.pod is not None and state.pod.id == record["id"] and state.pod.phase == "ready"
    assert state.session is not None and state.session.restarts == 0
    wd.run("shutdown")


def test_a_spot_create_answering_errors_after_it_made_the_pod_leaves_one_pod(wd: Harness) -> None:
    """The spot create (GraphQL) follows the REST create's rule: after an error that may
    have applied, the pod is looked for by name, not created again (the two-pod chaos saw
    one spot create make four live pods, one per failed attempt)."""
    wd.configure(interruptible=True)
    wd.sim.set_fault("api_error_after_apply", count=3, field="create")
    with contextlib.suppress(PodmgrError):  # the adapter's look-up by name finds the pod,
        wd.run()  # or the next pass adopts it
    assert len(wd.ledger()) == 1, wd.ledger()
    wd.up()
    [record] = wd.ledger()
    state = wd.state()
    assert state.pod is not None and state.pod.id == record["id"] and record["interruptible"]
    wd.run("shutdown")


def test_a_terminate_answering_an_error_after_it_ended_the_pod_is_done(wd: Harness) -> None:
    """Terminating an already-gone pod is success: the retry's 404 means done."""
    wd.run()
    wd.sim.set_fault("api_error_after_apply", count=1, field="terminate")
    wd.run("shutdown")  # no error: the adapter's retry finds the pod gone, which is done
    assert wd.alive() == [] and len(wd.ledger()) == 1
    assert [f["fired"] for f in wd.sim.faults() if f["fault"] == "api_error_after_apply"] == [1]
    state = wd.state()
    assert state.pod is None and state.session is not None
    assert state.session.end_reason == "shutdown"


def test_a_created_pod_slow_to_appear_in_listings_is_not_created_twice(wd: Harness) -> None:
    """The create answered 500 after making the pod, which the listing hides for longer
    than the adapter looks for it (transformerlab-app#2305): the pass ends without a second
    create, and a later pass adopts the pod by its name."""
    hidden = 2 * wd.config.watchdog.api_retry_max_seconds  # beyond the adapter's look-up window
    wd.sim.set_fault("api_error_after_apply", count=1, field="create", hide_seconds=hidden)
    with pytest.raises(UnconfirmedCreateError):
        wd.run()
    assert len(wd.ledger()) == 1, wd.ledger()
    [record] = wd.ledger()
    assert wd.state().pod is None and wd.state().pending_create is not None
    wd.up()  # passes wait for the named pod (create_confirm_seconds), then adopt it
    assert len(wd.ledger()) == 1, wd.ledger()
    state = wd.state()
    assert state.pod is not None and state.pod.id == record["id"] and state.pod.phase == "ready"
    assert state.session is not None and state.session.restarts == 0
    wd.run("shutdown")
