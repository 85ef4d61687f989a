"""`podmgr cost` against the simulator: podmgr's figure, the ledger and GET /billing/pods
agree per pod and in total (issue 14's done-when: "to the cent").

A "week" of sessions here is a few sessions seconds long (the simulator bills on the real
clock): one ended by `--shutdown`, one whose pod vanished and was replaced (two pods in one
session), one ended by its runtime. The grouping by UTC day is tested on records in
tests/test_costs.py.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import runpod
from wdkit import Harness

from podmgr.cli import main
from podmgr.history import history_path, read_history

# Per pod, podmgr books from creation to its termination call at each pass; RunPod bills
# from creation to termination. What separates them is seconds of pass time.
SECONDS_OF_DRIFT = 10.0


def billing(wd: Harness) -> dict[str, float]:
    answer = httpx.get(
        f"{wd.sim.rest_url}/billing/pods",
        params={"bucketSize": "hour"},
        headers={"Authorization": f"Bearer {wd.sim.api_key}"},
        timeout=30,
    )
    answer.raise_for_status()
    totals: dict[str, float] = {}
    for record in answer.json()["records"]:  # RunPod OpenAPI v2, ListPodBillingResponse
        totals[record["podId"]] = totals.get(record["podId"], 0.0) + record["totalAmount"]
    return totals


def cost_json(wd: Harness, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["cost", "--config", str(wd.config_path), "--json", *args]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def wait_until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_cost_matches_the_ledger_and_runpod_billing_to_the_cent(
    wd: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # Session 1: up, then --shutdown.
    wd.up()
    wd.run("shutdown")
    # Session 2: its pod vanishes (terminated behind podmgr's back); the watchdog makes
    # another one in the same session; then --shutdown.
    wd.up()
    first = wd.state().pod
    assert first is not None
    runpod.terminate_pod(first.id)
    wait_until(lambda: all(p["id"] != first.id for p in wd.alive()))
    wd.up()
    second = wd.state().pod
    assert second is not None and second.id != first.id
    wd.run("shutdown")
    # Session 3: ended by its runtime.
    wd.configure(runtime_seconds=3)
    wd.up()
    deadline = wd.state().session
    assert deadline is not None
    wait_until(lambda: time.time() > deadline.deadline + 0.5)
    wd.run()
    assert wd.alive() == []

    records, problems = read_history(history_path(wd.store.path))
    assert problems == [] and [r.end_reason for r in records] == [
        "shutdown",
        "shutdown",
        "deadline",
    ]
    assert [len(r.pods) for r in records] == [1, 2, 1]  # the replaced pod is listed too
    ours = {pod.id: pod.cost_usd for record in records for pod in record.pods}
    ledger = {pod["id"]: pod for pod in wd.ledger()}
    billed = {pod: usd for pod, usd in billing(wd).items() if pod in ledger}  # shared sim
    assert set(ours) == set(ledger) == set(billed)
    for pod_id, cost in ours.items():
        assert cost is not None
        price = ledger[pod_id]["cost_per_hr"]
        assert abs(cost - ledger[pod_id]["cost_usd"]) <= price * SECONDS_OF_DRIFT / 3600
        assert abs(cost - billed[pod_id]) < 0.01
        assert abs(billed[pod_id] - ledger[pod_id]["cost_usd"]) < 1e-5

    worst = max(abs((ours[pod] or 0.0) - billed[pod]) for pod in ours)
    report = cost_json(wd, capsys, "--by", "session")
    with capsys.disabled():
        print(
            f"\npodmgr ${report['total_usd']:.6f}, RunPod ${report['runpod_total_usd']:.6f}, "
            f"ledger ${sum(p['cost_usd'] for p in ledger.values()):.6f}; worst pod ${worst:.6f}"
        )
    assert report["runpod_error"] is None
    assert len(report["groups"]) == 3
    assert report["total_usd"] == pytest.approx(sum(r.cost_usd for r in records), abs=1e-5)
    assert report["runpod_total_usd"] == pytest.approx(sum(billed.values()), abs=1e-5)
    assert all(pod not in report["runpod_other_pods"] for pod in ledger)
    assert abs(report["total_usd"] - report["runpod_total_usd"]) < 0.01
    assert report["difference_usd"] == pytest.approx(
        report["total_usd"] - report["runpod_total_usd"], abs=1e-5
    )
    for group in report["groups"]:
        assert group["sessions"] == 1
        expected = sum(billed[pod] for pod in group["pods"])
        assert group["runpod_usd"] == pytest.approx(expected, abs=1e-5)

    by_gpu = cost_json(wd, capsys, "--by", "gpu")
    assert by_gpu["total_usd"] == pytest.approx(report["total_usd"], abs=1e-6)
    assert {g["key"] for g in by_gpu["groups"]} == {p["gpu_type_id"] for p in ledger.values()}


def test_cost_without_a_key_gives_podmgrs_figure_and_says_why(
    wd: Harness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wd.up()
    wd.run("shutdown")
    monkeypatch.delenv("RUNPOD_API_KEY")
    report = cost_json(wd, capsys)
    assert report["runpod_total_usd"] is None
    assert report["runpod_error"] == "RUNPOD_API_KEY is not set"
    assert report["total_usd"] > 0 and len(report["groups"]) == 1
    capsys.readouterr()
    assert main(["cost", "--config", str(wd.config_path)]) == 0
    text = capsys.readouterr().out
    assert "RunPod's billing: RUNPOD_API_KEY is not set" in text
    assert "total" in text


def test_a_running_session_is_counted_and_said_to_be(
    wd: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    wd.up()
    report = cost_json(wd, capsys)
    assert report["includes_running_session"] is True
    assert report["total_usd"] > 0 and report["runpod_total_usd"] is not None
    wd.run("shutdown")


def test_a_pod_podmgr_never_made_is_listed_apart(
    wd: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    wd.up()
    wd.run("shutdown")
    stranger = runpod.create_pod(
        name="by-hand", image_name="vllm/vllm-openai:v0.8.5", gpu_type_id="NVIDIA RTX A6000"
    )
    try:
        wait_until(lambda: billing(wd).get(stranger["id"], 0.0) > 0)
        report = cost_json(wd, capsys)
        assert stranger["id"] in report["runpod_other_pods"]
        assert all(stranger["id"] not in g["pods"] for g in report["groups"])
        assert abs(report["total_usd"] - report["runpod_total_usd"]) < 0.01
    finally:
        runpod.terminate_pod(stranger["id"])
