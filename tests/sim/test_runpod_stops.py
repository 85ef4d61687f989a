"""Stops RunPod makes (issue 11): the balance at $0 and spot preemption, on the REST API.

Facts in podmgr/sim/runpod_stops.py: at $0 pods with a network volume are stopped, the
others terminated; creates and starts are refused until the faults are cleared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from podmgr.sim.testkit import SimProcess

RTX_4090 = "NVIDIA GeForce RTX 4090"


@pytest.fixture
def rest(sim: SimProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    with httpx.Client(base_url=sim.rest_url, headers=headers, timeout=30.0) as client:
        yield client


def create(rest: httpx.Client, **overrides: Any) -> httpx.Response:
    body = {
        "name": "stops",
        "imageName": "vllm/vllm-openai:v0.8.5",
        "gpuTypeIds": [RTX_4090],
        "ports": ["8000/http"],
        **overrides,
    }
    return rest.post("/pods", json=body)


def ledger_of(sim: SimProcess, pod_id: str) -> dict[str, Any]:
    return next(p for p in sim.ledger() if p["id"] == pod_id)


def test_balance_zero_stops_volume_pods_terminates_others_and_refuses_starts(
    sim: SimProcess, rest: httpx.Client
) -> None:
    volume = rest.post("/networkvolumes", json={"name": "w", "size": 50, "dataCenterId": "EU-RO-1"})
    kept = create(rest, name="with-volume", networkVolumeId=volume.json()["id"]).json()["id"]
    lost = create(rest, name="no-volume").json()["id"]
    sim.set_fault("balance_zero", count=1)
    rest.get("/pods")  # any call: the balance reaches $0
    assert ledger_of(sim, kept)["status"] == "EXITED"
    assert ledger_of(sim, lost)["status"] == "TERMINATED"
    assert {ledger_of(sim, i)["ended_by"] for i in (kept, lost)} == {"runpod"}
    refused = rest.post(f"/pods/{kept}/start")
    assert refused.status_code == 402, refused.text
    assert "Insufficient balance" in refused.json()["message"]
    assert create(rest, name="another").status_code == 402  # the count is spent: still $0
    assert ledger_of(sim, kept)["status"] == "EXITED"
    sim.clear_faults()  # funds added
    assert rest.post(f"/pods/{kept}/start").json()["desiredStatus"] == "RUNNING"


def test_preempt_stops_only_interruptible_pods(sim: SimProcess, rest: httpx.Client) -> None:
    reserved = create(rest, name="reserved").json()["id"]
    spot = create(rest, name="spot", interruptible=True).json()["id"]
    sim.set_fault("preempt", count=1)
    rest.get("/pods")
    assert ledger_of(sim, reserved)["status"] == "RUNNING"
    record = ledger_of(sim, spot)
    assert record["status"] == "EXITED" and record["ended_by"] == "runpod", record
    assert rest.post(f"/pods/{spot}/start").json()["desiredStatus"] == "RUNNING"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        pytest.param(402, "Payment Required", id="rest-402"),
        pytest.param(400, "Insufficient balance: add funds", id="wording-under-400"),
    ],
)
def test_balance_refusals_classify_as_balance_error(status: int, message: str) -> None:
    from podmgr.errors import BalanceError
    from podmgr.runpod.problems import classify_graphql_message, classify_status

    error = classify_status(status, message, what="POST /pods", pod_resource=False)
    assert isinstance(error, BalanceError) and error.exit_code == 11
    assert "balance is at $0" in error.message
    graphql = classify_graphql_message("Insufficient balance.", what="podResume")
    assert isinstance(graphql, BalanceError)


def test_network_volumes_create_list_get_delete(rest: httpx.Client) -> None:
    made = rest.post("/networkvolumes", json={"name": "w", "size": 50, "dataCenterId": "US-TX-3"})
    assert made.status_code == 200, made.text
    volume = made.json()
    assert volume["size"] == 50 and volume["dataCenterId"] == "US-TX-3"
    assert volume in rest.get("/networkvolumes").json()
    assert rest.get(f"/networkvolumes/{volume['id']}").json() == volume
    pod = create(rest, networkVolumeId=volume["id"]).json()
    assert pod["machine"]["dataCenterId"] == "US-TX-3"  # pinned to the volume's data center
    elsewhere = create(rest, networkVolumeId=volume["id"], dataCenterIds=["EU-RO-1"])
    assert elsewhere.status_code == 400 and "US-TX-3" in elsewhere.json()["message"]
    community = create(rest, networkVolumeId=volume["id"], cloudType="COMMUNITY")
    assert community.status_code == 400
    assert create(rest, networkVolumeId="nosuch").json()["message"] == "Network volume not found"
    assert rest.delete(f"/networkvolumes/{volume['id']}").status_code == 400  # attached
    assert rest.delete(f"/pods/{pod['id']}").status_code == 204
    assert rest.delete(f"/networkvolumes/{volume['id']}").status_code == 204
    assert rest.get(f"/networkvolumes/{volume['id']}").status_code == 404
    assert rest.post("/networkvolumes", json={"name": "w", "size": 5000}).status_code == 400
