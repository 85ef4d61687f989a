"""Wake on request with several pods (issue 23): a request wakes only the pod serving its
model (`podmgr up ... NAME`), also while the session goes on for the other pod; one pod
wakes as it always did (no NAME)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from podmgr.config import build_config
from podmgr.proxy.wake import Waker
from podmgr.state import PodRecord, Session, State

PODS = [{"name": "chat", "model": "big"}, {"name": "fast", "model": "small"}]


def _waker(tmp_path: Path, state: State | None, **fields: Any) -> Waker:
    config = build_config({"wake_on_request": True, **fields}, base_dir=tmp_path, environ={})
    return Waker(config, tmp_path / "pod_config.json", lambda: state, command=["true"])


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
    waker = _waker(tmp_path, _active(chat=_record("a")), pods=PODS)
    assert waker.on_request("chat") is None and waker.wakes == 0  # it has its pod
    assert waker.on_request("fast") is None
    assert waker.wakes == 1 and waker.pod == "fast"
    assert waker.command_for("fast") == ["true", "fast"]
    assert waker.view()["pod"] == "fast"


def test_with_no_session_the_pod_asked_for_is_woken(tmp_path: Path) -> None:
    waker = _waker(tmp_path, None, pods=PODS)
    assert waker.on_request("chat") is None
    assert waker.wakes == 1 and waker.pod == "chat"


def test_one_pod_wakes_as_before_without_a_name(tmp_path: Path) -> None:
    waker = _waker(tmp_path, None)
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
    waker = _waker(tmp_path, _active(chat=_record("a"), fast=starting), pods=PODS)
    failure = waker.starting_failure(None, "fast")
    assert failure is not None and failure.status == 503
    assert "the GPU pod fast is starting (phase: starting" in failure.message
    alone = _waker(tmp_path, None).starting_failure(None, "pod")
    assert alone is not None and "the GPU pod is starting (phase: starting a session" in (
        alone.message
    )
