"""Stops RunPod makes (issue 11): the balance at $0 and spot preemption, on REST API v2.

Facts in podmgr/sim/runpod_stops.py: at $0 pods with a network volume are stopped, the
others terminated; creates and starts are refused (402) until the faults are cleared.
Spot pods exist only in GraphQL (`podRentInterruptable`) and show in v2 like any pod.
"""

from __future__ import annotations

from typing import Any

import httpx

from podmgr.sim.process import SimProcess

from .v2kit import RTX_4090, act, create_body, problem_of


def create(rest: httpx.Client, **overrides: Any) -> httpx.Response:
    return rest.post("/pods", json=create_body(**{"name": "stops", **overrides}))


def network(volume_id: str) -> dict[str, Any]:
    return {"network": [{"volumeId": volume_id, "path": "/runpod-volume"}]}


def spot_pod(sim: SimProcess) -> str:
    answer = sim.graphql(
        'mutation { podRentInterruptable(input: {name: "spot", imageName: "x", '
        f'gpuTypeId: "{RTX_4090}", gpuCount: 1, bidPerGpu: 0.3}}) {{ id }} }}'
    )
    return str(answer["data"]["podRentInterruptable"]["id"])


def ledger_of(sim: SimProcess, pod_id: str) -> dict[str, Any]:
    return next(p for p in sim.ledger() if p["id"] == pod_id)


def test_balance_zero_stops_volume_pods_terminates_others_and_refuses_starts(
    sim: SimProcess, rest: httpx.Client
) -> None:
    volume = rest.post("/network-volumes", json={"name": "w", "size": 50, "dataCenter": "EU-RO-1"})
    kept = create(rest, name="with-volume", mounts=network(volume.json()["id"])).json()["id"]
    lost = create(rest, name="no-volume").json()["id"]
    sim.set_fault("balance_zero", count=1)
    rest.get("/pods")  # any call: the balance reaches $0
    assert ledger_of(sim, kept)["status"] == "EXITED"
    assert ledger_of(sim, lost)["status"] == "TERMINATED"
    assert {ledger_of(sim, i)["ended_by"] for i in (kept, lost)} == {"runpod"}
    refused = act(rest, kept, "start")
    assert "Insufficient balance" in problem_of(refused, 402)["detail"]
    assert create(rest, name="another").status_code == 402  # the count is spent: still $0
    assert ledger_of(sim, kept)["status"] == "EXITED"
    sim.clear_faults()  # funds added
    assert act(rest, kept, "start").json()["status"] in ("STARTING", "RUNNING")


def test_preempt_stops_only_interruptible_pods(sim: SimProcess, rest: httpx.Client) -> None:
    reserved = create(rest, name="reserved").json()["id"]
    spot = spot_pod(sim)
    sim.set_fault("preempt", count=1)
    rest.get("/pods")
    assert ledger_of(sim, reserved)["status"] == "RUNNING"
    record = ledger_of(sim, spot)
    assert record["status"] == "EXITED" and record["ended_by"] == "runpod", record
    assert record["interruptible"] is True
    assert act(rest, spot, "start").json()["status"] in ("STARTING", "RUNNING")


def test_balance_refusals_classify_as_balance_error() -> None:
    """v2 says it with the status (createPod: 402); GraphQL (spot) with its wording."""
    from podmgr.errors import BalanceError
    from podmgr.runpod.problems import classify_graphql_message, classify_status

    body = {"title": "Payment Required", "status": 402, "detail": "Insufficient balance."}
    error = classify_status(402, body, what="POST /pods", fallback="HTTP 402", create=True)
    assert isinstance(error, BalanceError) and error.exit_code == 11
    assert "balance is at $0" in error.message
    graphql = classify_graphql_message("Insufficient balance.", what="podResume")
    assert isinstance(graphql, BalanceError)


def test_network_volume_placement_rules(rest: httpx.Client) -> None:
    made = rest.post("/network-volumes", json={"name": "w", "size": 50, "dataCenter": "US-TX-3"})
    volume = made.json()
    pod = create(rest, mounts=network(volume["id"])).json()
    assert pod["dataCenterId"] == "US-TX-3"  # pinned to the volume's data center
    elsewhere = create(rest, mounts=network(volume["id"]), dataCenterIds=["EU-RO-1"])
    assert "US-TX-3" in problem_of(elsewhere, 400)["detail"]
    problem_of(create(rest, mounts=network(volume["id"]), cloud="COMMUNITY"), 400)
    missing = create(rest, mounts=network("nosuch"))
    assert problem_of(missing, 404)["detail"] == "Network volume not found"
