"""The billing ledger over real API calls: running time is billed, stopped time is not."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from podmgr.sim.process import SimProcess

STOP = 'mutation {{ podStop(input: {{podId: "{0}"}}) {{ id }} }}'
RESUME = 'mutation {{ podResume(input: {{podId: "{0}", gpuCount: 1}}) {{ id }} }}'
TERMINATE = 'mutation {{ podTerminate(input: {{podId: "{0}"}}) }}'

T = TypeVar("T")


def record(sim: SimProcess, pod_id: str) -> dict[str, object]:
    return next(r for r in sim.ledger() if r["id"] == pod_id)


def timed(call: Callable[[], T]) -> tuple[T, float, float]:
    """`call()`'s result and time.time() just before and just after it."""
    before = time.time()
    result = call()
    return result, before, time.time()


# The simulator bills on time.time(), the clock we read here, and acts somewhere inside each
# API call. So billed time lies between the time from the end of the call that started the
# meter to the start of the one that stopped it, and the time from the start of the first
# to the end of the second. That bracket holds however long a loaded machine stalls either
# process; EPSILON only absorbs float rounding.
EPSILON = 1e-3


def test_running_time_costs_time_times_price(sim: SimProcess) -> None:
    pod_id, create_from, create_to = timed(
        lambda: sim.create_pod(gpu_type_id="NVIDIA A100 80GB PCIe", cloud_type="COMMUNITY")
    )
    time.sleep(0.5)
    _, end_from, end_to = timed(lambda: sim.graphql(TERMINATE.format(pod_id)))
    row = record(sim, pod_id)
    assert row["cost_per_hr"] == pytest.approx(1.19)
    assert row["status"] == "TERMINATED"
    billed = float(row["billed_seconds"])  # type: ignore[arg-type]
    assert end_from - create_to - EPSILON <= billed <= end_to - create_from + EPSILON
    assert row["cost_usd"] == pytest.approx(billed * 1.19 / 3600)


def test_stopped_time_is_not_billed_and_terminated_pods_stay(sim: SimProcess) -> None:
    pod_id, create_from, create_to = timed(lambda: sim.create_pod())
    time.sleep(0.2)
    _, stop_from, stop_to = timed(lambda: sim.graphql(STOP.format(pod_id)))
    at_stop = float(record(sim, pod_id)["billed_seconds"])  # type: ignore[arg-type]
    time.sleep(0.4)
    assert float(record(sim, pod_id)["billed_seconds"]) == at_stop  # type: ignore[arg-type]
    assert record(sim, pod_id)["status"] == "EXITED"
    _, resume_from, resume_to = timed(lambda: sim.graphql(RESUME.format(pod_id)))
    time.sleep(0.2)
    _, end_from, end_to = timed(lambda: sim.graphql(TERMINATE.format(pod_id)))
    final = record(sim, pod_id)
    shortest = (stop_from - create_to) + (end_from - resume_to)
    longest = (stop_to - create_from) + (end_to - resume_from)
    assert shortest - EPSILON <= float(final["billed_seconds"]) <= longest + EPSILON  # type: ignore[arg-type]
    assert final["terminated_at"] is not None
    other = sim.create_pod(name="podmgr-second")
    ids = [r["id"] for r in sim.ledger()]
    assert ids == [pod_id, other]
    # Stop the second meter first: two readings of a running meter differ by the time
    # between them, which a loaded machine made large enough to break the comparison.
    sim.graphql(TERMINATE.format(other))
    assert sim.total_cost() == pytest.approx(
        sum(float(r["cost_usd"]) for r in sim.ledger()), rel=0.01
    )


def test_multi_gpu_price_and_crash_stops_billing(sim: SimProcess) -> None:
    answer = sim.graphql(
        'mutation { podFindAndDeployOnDemand(input: {name: "podmgr-2x", imageName: "i", '
        'gpuTypeId: "NVIDIA L40S", cloudType: SECURE, gpuCount: 2}) { id costPerHr } }'
    )
    pod = answer["data"]["podFindAndDeployOnDemand"]
    assert pod["costPerHr"] == pytest.approx(2 * 0.86)
    sim.crash_pod(pod["id"])
    billed = float(record(sim, pod["id"])["billed_seconds"])  # type: ignore[arg-type]
    time.sleep(0.2)
    assert float(record(sim, pod["id"])["billed_seconds"]) == billed  # type: ignore[arg-type]
