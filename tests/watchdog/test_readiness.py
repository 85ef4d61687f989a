"""The phases of a starting pod (readiness.py), pure: which statuses wait, which end (issue 10)."""

from __future__ import annotations

import pytest

from podmgr.runpod.values import PodInfo
from podmgr.watchdog.readiness import Phase, phase_text, pod_phase


def pod(status: str = "RUNNING", runtime: bool = False) -> PodInfo:
    return PodInfo(id="p1", name="podmgr-p1", status=status, has_runtime=runtime)


@pytest.mark.parametrize(
    ("live", "healthy", "seen", "expected"),
    [
        pytest.param(pod("CREATED"), None, False, "starting", id="created"),
        pytest.param(pod("RESTARTING"), None, True, "starting", id="restarting"),
        pytest.param(pod("PROVISIONING"), None, False, "starting", id="unknown-status"),
        pytest.param(pod("UNKNOWN"), None, False, "starting", id="no-status-reported"),
        pytest.param(pod(), None, False, "no_container", id="image-pull"),
        pytest.param(pod(runtime=True), False, False, "loading", id="model-loading"),
        pytest.param(pod(runtime=True), None, False, "loading", id="not-probed-is-not-serving"),
        pytest.param(pod(runtime=True), True, True, "serving", id="serving"),
        pytest.param(pod(), None, True, "failed", id="container-gone-after-seen"),
        pytest.param(pod("EXITED"), None, True, "stopped", id="exited"),
        pytest.param(pod("PAUSED"), None, True, "stopped", id="paused"),
        pytest.param(pod("DEAD"), None, True, "stopped", id="dead"),
        pytest.param(None, None, True, "gone", id="gone"),
    ],
)
def test_pod_phase(live: PodInfo | None, healthy: bool | None, seen: bool, expected: Phase) -> None:
    assert pod_phase(live, healthy, container_seen=seen) == expected


def test_phase_text_for_people() -> None:
    assert phase_text("starting", pod("CREATED")) == "CREATED: RunPod is starting it"
    assert "unknown to podmgr" in phase_text("starting", pod("SOMETHING_NEW"))
    assert phase_text("no_container", pod()) == "no container yet (image pull)"
    loading = phase_text("loading", pod(runtime=True), "health 502")
    assert loading == "container up, model download or load (health 502)"
    assert "crash" in phase_text("failed", pod())
