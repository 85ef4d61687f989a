"""The guard's decisions as pure functions: one row per case (podmgr/guard/guard.py)."""

from __future__ import annotations

import pytest

from podmgr.guard.guard import (
    BACKOFF_MAX,
    Activity,
    Backoff,
    Limits,
    decide,
    metrics_url,
    observe_activity,
    parse_metrics,
)

T0 = 1_000_000.0
QUIET = Activity((3.0, 0.0, 0.0), T0)

METRICS = """\
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{finished_reason="stop",model_name="m"} 4.0
vllm:request_success_total{finished_reason="length",model_name="m"} 2.0
vllm:num_requests_running{model_name="m"} 1.0
vllm:num_requests_waiting{model_name="m"} 0.0
vllm:prompt_tokens_total{model_name="m"} 99.0
"""


def test_parse_metrics_sums_labels_and_ignores_other_series() -> None:
    assert parse_metrics(METRICS) == (6.0, 1.0, 0.0)
    assert parse_metrics("garbage\n") == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("limits", "now", "cost", "activity", "expected"),
    [
        pytest.param(Limits(deadline=T0 + 60), T0 + 59, None, Activity(), None, id="early"),
        pytest.param(Limits(deadline=T0 + 60), T0 + 60, None, Activity(), "deadline", id="due"),
        pytest.param(
            Limits(max_cost_usd=1.0, created_at=T0, interval=10), T0 + 3600 - 11, 1.0, Activity(),
            None, id="budget-not-yet",
        ),
        pytest.param(
            Limits(max_cost_usd=1.0, created_at=T0, interval=10), T0 + 3600 - 10, 1.0, Activity(),
            "budget", id="budget-passed-by-next-check",
        ),
        pytest.param(
            Limits(max_cost_usd=1.0, spent_usd=0.9, created_at=T0, interval=10), T0 + 350, 1.0,
            Activity(), "budget", id="budget-counts-spent-before-create",
        ),
        pytest.param(
            Limits(max_cost_usd=0.01, created_at=T0), T0 + 9999, None, Activity(), None,
            id="budget-unknown-cost-no-decision",
        ),
        pytest.param(Limits(idle_seconds=30), T0 + 29, None, QUIET, None, id="idle-not-yet"),
        pytest.param(Limits(idle_seconds=30), T0 + 30, None, QUIET, "idle", id="idle"),
        pytest.param(
            Limits(idle_seconds=30), T0 + 999, None, Activity(), None, id="idle-before-vllm-serves"
        ),
        pytest.param(
            Limits(deadline=T0, idle_seconds=1), T0 + 5, None, QUIET, "deadline",
            id="deadline-first",
        ),
    ],
)  # fmt: skip
def test_decide(
    limits: Limits, now: float, cost: float | None, activity: Activity, expected: str | None
) -> None:
    reason = decide(limits, now, cost, activity)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and reason.startswith(expected), reason


@pytest.mark.parametrize(
    ("before", "sample", "now", "last_active"),
    [
        pytest.param(Activity(), None, T0, None, id="no-answer-yet"),
        pytest.param(Activity(), (0.0, 0.0, 0.0), T0, T0, id="first-answer-starts-clock"),
        pytest.param(QUIET, (3.0, 0.0, 0.0), T0 + 20, T0, id="unchanged-stays-idle"),
        pytest.param(QUIET, (4.0, 0.0, 0.0), T0 + 20, T0 + 20, id="finished-request"),
        pytest.param(QUIET, (3.0, 1.0, 0.0), T0 + 20, T0 + 20, id="running-request"),
        pytest.param(QUIET, (3.0, 0.0, 2.0), T0 + 20, T0 + 20, id="waiting-request"),
        pytest.param(QUIET, None, T0 + 20, T0, id="metrics-down-changes-nothing"),
    ],
)
def test_observe_activity(
    before: Activity,
    sample: tuple[float, float, float] | None,
    now: float,
    last_active: float | None,
) -> None:
    assert observe_activity(before, sample, now).last_active == last_active


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff, waits = Backoff(), []
    for _ in range(10):
        backoff = backoff.failed(T0)
        waits.append(backoff.next_at - T0)
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(waits) == BACKOFF_MAX


def test_limits_from_env_and_metrics_url() -> None:
    env = {"PODMGR_GUARD_DEADLINE": "123.5", "PODMGR_GUARD_IDLE_SECONDS": "30"}
    limits = Limits.from_env(env)
    assert (limits.deadline, limits.idle_seconds, limits.max_cost_usd) == (123.5, 30.0, None)
    assert metrics_url({}, ["vllm", "serve", "--port", "8001"]) == "http://127.0.0.1:8001/metrics"
    assert metrics_url({}, ["vllm", "serve"]) == "http://127.0.0.1:8000/metrics"
    url = {"PODMGR_GUARD_VLLM_URL": "http://127.0.0.1:5/"}
    assert metrics_url(url, []) == "http://127.0.0.1:5/metrics"
