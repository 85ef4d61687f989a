"""The watchdog's idle rule, whatever the limit: never before the pod served, and a pod its
guard ended is read as its guard's end, never as a crash (podmgr/watchdog/session.py).

Short idle limits ended in crash loops: the guard ended its pod for idle (its clock runs
from the model's load and sees only requests that reached the pod), the next pass found
the pod gone with requests answered by a fallback since, read it as lost, counted a
restart and made another pod, until `max_restarts` ended the session as a crash loop.
"""

from __future__ import annotations

import pytest

from podmgr.errors import TransientApiError
from podmgr.watchdog import actions as act
from podmgr.watchdog.accounting import book
from podmgr.watchdog.observed import Observed, ProxyView
from podmgr.watchdog.plan import plan

from .helpers import NOW, config, live, record, seen, session, state

IDLE_LIMITS = [1, 20, 120, 1800]


def _guarded(phase: str = "ready", created_ago: float = 600, idle: int = 120) -> object:
    pod = record(phase=phase, created_ago=created_ago, ready_ago=min(500, created_ago))
    pod.guard = {"idle_seconds": str(idle), "interval_seconds": "10"}
    return pod


def _names(actions: list[act.Action]) -> list[str]:
    return [type(action).__name__ for action in actions]


@pytest.mark.parametrize("idle", IDLE_LIMITS)
@pytest.mark.parametrize(
    ("phase", "status"),
    [
        pytest.param("starting", "STARTING", id="starting"),
        pytest.param("starting", "RUNNING", id="loading"),
        pytest.param("restarting", "RUNNING", id="restarting"),
    ],
)
def test_a_pod_that_has_not_served_is_never_ended_for_idle(
    idle: int, phase: str, status: str
) -> None:
    pod = record(phase=phase, created_ago=5000, restart_ago=4000 if phase == "restarting" else None)
    pod.container_seen_at = NOW - 3000
    cfg = config(idle_timeout_seconds=idle, runtime_seconds=99999, max_startup_attempts=9999)
    actions = plan(cfg, state(session(age=5000, left=9000), pod), seen(live(status=status)), NOW)
    assert not any(isinstance(a, act.EndSession) for a in actions), actions


@pytest.mark.parametrize("idle", IDLE_LIMITS)
@pytest.mark.parametrize("phase", ["ready", "starting"])
@pytest.mark.parametrize(
    "request_ago",
    [
        pytest.param(None, id="no-request"),
        pytest.param(5.0, id="a-fallback-answered-a-request-since"),
    ],
)
def test_a_pod_its_guard_ended_for_idle_ends_the_session_for_idle(
    idle: int, phase: str, request_ago: float | None
) -> None:
    """Gone, guarded with an idle limit, up at least that long: its guard's end, not a
    crash. No restart counted, no new pod, the session ends for idle."""
    pod = _guarded(phase=phase, created_ago=idle + 300, idle=idle)
    proxy = ProxyView(1, True, NOW - request_ago if request_ago is not None else None)
    observed = seen(proxy=proxy)
    booked = book(state(session(age=idle + 400), pod), observed, NOW)  # type: ignore[arg-type]
    actions = plan(config(idle_timeout_seconds=idle), booked, observed, NOW)
    assert _names(actions) == ["ForgetPod", "EndSession"], actions
    end = actions[-1]
    assert isinstance(end, act.EndSession) and end.reason == "idle"


@pytest.mark.parametrize(
    ("guard", "created_ago", "listing_failed"),
    [
        pytest.param({"idle_seconds": "600"}, 300, False, id="gone-sooner-than-its-idle-limit"),
        pytest.param({"max_cost_usd": "9"}, 3000, False, id="guard-without-idle-limit"),
        pytest.param(None, 3000, False, id="no-guard"),
        pytest.param({"idle_seconds": "60"}, 3000, True, id="listing-failed-not-gone"),
    ],
)
def test_a_pod_gone_otherwise_is_replaced_as_before(
    guard: dict[str, str] | None, created_ago: float, listing_failed: bool
) -> None:
    pod = record(phase="starting", created_ago=created_ago)
    pod.guard = guard
    observed = seen(proxy=ProxyView(1, True, NOW - 5))
    if listing_failed:
        observed = Observed(proxy=observed.proxy, listing_error=TransientApiError("x"))
    cfg = config(idle_timeout_seconds=600 if guard is None else 60)
    actions = plan(cfg, state(session(age=created_ago + 10), pod), observed, NOW)
    assert not any(isinstance(a, act.EndSession) for a in actions), actions
    if not listing_failed:
        assert _names(actions) == ["ForgetPod", "CreatePod"], actions
