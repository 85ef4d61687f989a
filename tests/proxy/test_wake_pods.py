"""Wake on request with several pods (issue 23): a request wakes only the pod serving its
model (`podmgr up ... NAME`), also while the session goes on for the other pod; one pod
wakes as it always did (no NAME)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from podmgr.cli.upstream_check import _pod_down
from podmgr.config import build_config
from podmgr.proxy.wake import Waker
from podmgr.sim.process import wait_until
from podmgr.state import PodRecord, Session, State
from podmgr.watchdog.plan_set import NOT_ASKED

from .proxykit import make_waker, wake_window_two_hours_on

PODS = [{"name": "chat", "model": "big"}, {"name": "fast", "model": "small"}]


def _record(pod_id: str) -> PodRecord:
    now = time.time()
    return PodRecord(
        id=pod_id, name=f"podmgr-{pod_id}", gpu_type_id="g", created_at=now, phase="ready",
        endpoint_url="http://127.0.0.1:9", vllm_api_key="k",
    )  # fmt: skip


def _active(**pods: PodRecord) -> State:
    now = time.time()
    return State(session=Session(started_at=now - 60, deadline=now + 3600), pods=pods)


def test_the_pod_of_the_model_is_woken_by_name_while_the_session_goes_on(
    tmp_path: Path,
) -> None:
    waker = make_waker(tmp_path, _active(chat=_record("a")), pods=PODS)
    assert waker.on_request("chat") is None and waker.wakes == 0  # it has its pod
    assert waker.on_request("fast") is None
    assert waker.wakes == 1 and waker.pod == "fast"
    assert waker.command_for("fast") == ["true", "fast"]
    assert waker.view()["pod"] == "fast"


def test_with_no_session_the_pod_asked_for_is_woken(tmp_path: Path) -> None:
    waker = make_waker(tmp_path, None, pods=PODS)
    assert waker.on_request("chat") is None
    assert waker.wakes == 1 and waker.pod == "chat"


def test_one_pod_wakes_as_before_without_a_name(tmp_path: Path) -> None:
    waker = make_waker(tmp_path, None)
    assert waker.command_for("pod") == ["true"]
    assert waker.on_request("pod") is None and waker.wakes == 1


def test_two_cold_pods_wake_at_once_and_each_only_once(tmp_path: Path) -> None:
    config = build_config({"wake_on_request": True, "pods": PODS}, base_dir=tmp_path, environ={})
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]  # a `podmgr up` still running
    waker = Waker(config, tmp_path / "pod_config.json", lambda: None, command=slow)
    try:
        assert waker.on_request("chat") is None and waker.on_request("fast") is None
        assert waker.on_request("chat") is None and waker.on_request("fast") is None
        assert waker.wakes == 2
        assert waker.view()["running_for"] == ["chat", "fast"]
    finally:
        for process in waker._processes.values():
            process.kill()
            process.wait()


def test_the_503_while_a_pod_starts_names_that_pod_and_its_phase(tmp_path: Path) -> None:
    starting = _record("b").model_copy(update={"phase": "starting"})
    waker = make_waker(tmp_path, _active(chat=_record("a"), fast=starting), pods=PODS)
    failure = waker.starting_failure(None, "fast")
    assert failure is not None and failure.status == 503
    assert "the GPU pod fast is starting (phase: starting" in failure.message
    alone = make_waker(tmp_path, None).starting_failure(None, "pod")
    assert alone is not None and "the GPU pod is starting (phase: starting a session" in (
        alone.message
    )


def _ended(**ended: str) -> State:
    """An active session in which the pods `ended` ended alone (chat's record kept if not)."""
    now = time.time()
    session = Session(started_at=now - 60, deadline=now + 3600, ended_pods=ended)
    return State(session=session, pods={"chat": _record("a")} if "chat" not in ended else {})


def _finish(waker: Waker, pod: str) -> None:
    wait_until(lambda: not waker.running(pod), f"the wake of {pod} to exit", timeout=60)


def test_a_failed_wake_rests_only_its_own_pod(tmp_path: Path) -> None:
    config = build_config({"wake_on_request": True, "pods": PODS}, base_dir=tmp_path, environ={})
    state = _ended(chat="idle", fast="idle")  # both idled out, the session goes on
    waker = Waker(config, tmp_path / "pod_config.json", lambda: state, command=["false"])
    assert waker.on_request("fast") is None and waker.wakes == 1
    _finish(waker, "fast")
    why = waker.on_request("fast")  # its `podmgr up fast` failed: fast rests ...
    assert why is not None and "the last wake of the GPU pod fast failed (podmgr up exit 1)" in why
    assert waker.wakes == 1
    assert waker.on_request("chat") is None and waker.wakes == 2  # ... chat does not
    assert waker.pod == "chat"
    _finish(waker, "chat")
    by_pod = waker.view()["by_pod"]
    assert by_pod["chat"]["last_exit"] == 1 and by_pod["fast"]["last_exit"] == 1
    assert "fast failed" in by_pod["fast"]["blocked"] and "chat failed" in by_pod["chat"]["blocked"]


def test_a_failed_wake_of_the_one_pod_still_rests_the_next(tmp_path: Path) -> None:
    config = build_config({"wake_on_request": True}, base_dir=tmp_path, environ={})
    waker = Waker(config, tmp_path / "pod_config.json", lambda: None, command=["false"])
    assert waker.on_request("pod") is None and waker.wakes == 1
    _finish(waker, "pod")
    why = waker.on_request("pod")
    assert why is not None and why.startswith("the last wake failed (podmgr up exit 1)")
    assert waker.wakes == 1 and "by_pod" not in waker.view()


def test_a_pod_ended_alone_for_idle_is_woken_even_with_its_record_still_kept(
    tmp_path: Path,
) -> None:
    state = _ended(fast="idle")
    state.pods["fast"] = _record("b")  # a pass that recorded the end, not yet the terminate
    waker = make_waker(tmp_path, state, pods=PODS)
    assert waker.needs_wake("fast") and not waker.needs_wake("chat")
    assert waker.on_request("fast") is None and waker.wakes == 1


@pytest.mark.parametrize("reason", ["crash_loop", "no_container", "pod_failed"])
def test_a_pod_ended_alone_by_a_limit_is_not_woken(tmp_path: Path, reason: str) -> None:
    waker = make_waker(tmp_path, _ended(fast=reason), pods=PODS)
    why = waker.on_request("fast")
    assert why is not None and why.startswith(f"the GPU pod fast ended for {reason}")
    assert "`podmgr up fast`" in why and waker.wakes == 0
    failure = waker.starting_failure(why, "fast")
    assert failure is not None and failure.status == 503


def test_a_pod_whose_share_of_the_budget_is_spent_is_not_woken(tmp_path: Path) -> None:
    """`up fast` would not revive it in this session (plan_set): the refusal says what does."""
    waker = make_waker(tmp_path, _ended(fast="budget_share"), pods=PODS)
    why = waker.on_request("fast")
    assert why is not None and why.startswith("the GPU pod fast ended for budget_share")
    assert "`podmgr shutdown`, then `podmgr up`" in why and waker.wakes == 0


def test_a_pod_left_out_by_up_name_is_woken_by_its_request(tmp_path: Path) -> None:
    waker = make_waker(tmp_path, _ended(fast=NOT_ASKED), pods=PODS)
    assert waker.on_request("fast") is None and waker.wakes == 1


def test_outside_wake_hours_a_pod_of_a_running_session_is_not_woken(tmp_path: Path) -> None:
    window = wake_window_two_hours_on()
    waker = make_waker(tmp_path, _ended(fast="idle"), pods=PODS, wake_hours=[window])
    why = waker.on_request("fast")
    assert why is not None and why.startswith("outside wake_hours") and waker.wakes == 0


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        pytest.param("idle", "a request for its model would wake it", id="idle-wakes"),
        pytest.param("crash_loop", "would not wake it: the GPU pod fast ended", id="limit"),
    ],
)
def test_upstreams_test_says_a_pod_ended_alone_and_whether_a_request_wakes_it(
    tmp_path: Path, reason: str, said: str
) -> None:
    config = build_config({"wake_on_request": True, "pods": PODS}, base_dir=tmp_path, environ={})
    line = _pod_down(config, _ended(fast=reason), None, "fast")
    assert line.startswith(f"not running: pod fast ended alone in the active session ({reason})")
    assert said in line, line
    assert "starting" in _pod_down(config, _ended(fast=reason), None, "chat")  # has its record
