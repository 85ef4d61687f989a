"""wait_ready on a fake clock: which statuses it waits out and which end the wait (issue 10)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from podmgr.runpod_models import PodInfo
from podmgr.watchdog.readiness import ReadyResult, wait_ready


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


def pods(*statuses: str) -> Iterator[PodInfo]:
    for status in statuses:
        yield PodInfo(id="p1", name="podmgr-p1", desired_status=status, has_runtime=False)
    while True:  # then it serves
        yield PodInfo(id="p1", name="podmgr-p1", desired_status="RUNNING", has_runtime=True)


def wait(statuses: tuple[str, ...], lines: list[str], attempts: int = 10) -> ReadyResult:
    seen = pods(*statuses)
    return wait_ready(
        "p1",
        "http://pods/p1",
        get_pod=lambda _pod_id: next(seen),
        probe=lambda _url: (200, "health 200"),
        clock=FakeClock(),
        initial_wait=0,
        poll_interval=1,
        max_attempts=attempts,
        deadline=10_000.0,
        progress=lines.append,
    )


@pytest.mark.parametrize(
    "statuses",
    [
        pytest.param(("CREATED",), id="created"),
        pytest.param(("RESTARTING", "RESTARTING"), id="restarting"),
        pytest.param(("CREATED", "RUNNING", "RESTARTING"), id="mixed"),
        pytest.param(("PROVISIONING",), id="unknown-status"),
        pytest.param(("UNKNOWN",), id="no-status-reported"),
    ],
)
def test_starting_and_unknown_statuses_are_waited_out(statuses: tuple[str, ...]) -> None:
    lines: list[str] = []
    result = wait(statuses, lines)
    assert result.outcome == "ready", lines
    for status in set(statuses) - {"RUNNING"}:
        assert any(status in line for line in lines), lines


def test_an_unknown_status_that_stays_is_a_timeout_not_a_crash() -> None:
    lines: list[str] = []
    result = wait(("SOMETHING_NEW",) * 50, lines, attempts=5)
    assert result.outcome == "timeout"
    assert sum("unknown to podmgr" in line for line in lines) == 5


@pytest.mark.parametrize("status", ["EXITED", "PAUSED", "DEAD", "TERMINATED"])
def test_stopped_statuses_end_the_wait(status: str) -> None:
    lines: list[str] = []
    result = wait((status,), lines)
    assert (result.outcome, result.detail) == ("stopped", status)
