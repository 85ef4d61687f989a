"""The simulator's REST API v1 (`/v1`) with httpx, and one world seen through both APIs.

Shapes, statuses and error bodies follow RunPod's OpenAPI v1 (see podmgr/sim/rest.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import runpod

from podmgr.sim.testkit import SimProcess

RTX_4090 = "NVIDIA GeForce RTX 4090"
H100 = "NVIDIA H100 80GB HBM3"
READ_ONLY_KEY = "test-read-only-key-not-real"


@pytest.fixture
def rest(sim: SimProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    with httpx.Client(base_url=sim.rest_url, headers=headers, timeout=30.0) as client:
        yield client


def create_body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "podmgr-rest",
        "imageName": "vllm/vllm-openai:v0.11.0",
        "gpuTypeIds": [RTX_4090],
        "cloudType": "SECURE",
        "gpuCount": 1,
        "containerDiskInGb": 40,
        "volumeInGb": 0,
        "ports": ["8000/http"],
        "env": {"VLLM_API_KEY": "pod-key-not-real", "PODMGR_MANAGED": "1"},
        "dockerStartCmd": ["--model", "Qwen/Qwen2.5-0.5B-Instruct", "--port", "8000"],
        "supportPublicIp": False,
        "interruptible": False,
        "allowedCudaVersions": ["12.8", "12.9"],
        **overrides,
    }


def create_pod(rest: httpx.Client, **overrides: Any) -> dict[str, Any]:
    answer = rest.post("/pods", json=create_body(**overrides))
    assert answer.status_code == 201, answer.text
    pod: dict[str, Any] = answer.json()
    return pod


def wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"gave up after {timeout} s waiting for {what}")


def test_create_answers_201_with_the_documents_pod(rest: httpx.Client) -> None:
    pod = create_pod(rest)
    assert pod["desiredStatus"] == "RUNNING"
    assert "runtime" not in pod
    assert pod["image"] == "vllm/vllm-openai:v0.11.0"
    assert pod["gpu"]["id"] == RTX_4090 and pod["gpu"]["count"] == 1
    assert pod["env"] == {"VLLM_API_KEY": "pod-key-not-real", "PODMGR_MANAGED": "1"}
    assert pod["ports"] == ["8000/http"]
    assert pod["dockerStartCmd"] == ["--model", "Qwen/Qwen2.5-0.5B-Instruct", "--port", "8000"]
    assert pod["interruptible"] is False and pod["containerDiskInGb"] == 40
    assert pod["costPerHr"] > 0 and pod["lastStartedAt"].endswith("Z")


def test_gpu_type_ids_are_tried_in_order_on_capacity(sim: SimProcess, rest: httpx.Client) -> None:
    sim.set_fault("capacity", count=1, gpu_type_ids=[RTX_4090])
    pod = create_pod(rest, gpuTypeIds=[RTX_4090, H100])
    assert pod["gpu"]["id"] == H100


def test_capacity_on_every_gpu_type_is_400_with_message(
    sim: SimProcess, rest: httpx.Client
) -> None:
    sim.set_fault("capacity", count=1)
    answer = rest.post("/pods", json=create_body())
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("There are no longer any instances available")
    assert sim.ledger() == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"gpuCount": "one"},
        {"cloudType": "ALL"},
        {"ports": "8000/http"},
        {"env": ["A=1"]},
        {"gpuTypeIds": ["NVIDIA Imaginary 1"]},
        {"gpuTypeIds": []},
        {"imageName": None},
        {"dockerStartCmd": "--model x"},
    ],
)
def test_malformed_create_is_400_with_message(
    sim: SimProcess, rest: httpx.Client, overrides: dict[str, Any]
) -> None:
    answer = rest.post("/pods", json=create_body(**overrides))
    assert answer.status_code == 400, answer.text
    assert isinstance(answer.json()["message"], str)
    assert sim.ledger() == []


def test_body_that_is_not_json_is_400(rest: httpx.Client) -> None:
    answer = rest.post("/pods", content=b"{not json", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 400 and "message" in answer.json()


def test_list_filters_by_name_id_and_status(rest: httpx.Client) -> None:
    first = create_pod(rest, name="alpha")
    second = create_pod(rest, name="beta")
    assert rest.post(f"/pods/{second['id']}/stop").status_code == 200
    by_name = rest.get("/pods", params={"name": "alpha"}).json()
    assert [pod["id"] for pod in by_name] == [first["id"]]
    by_id = rest.get("/pods", params={"id": second["id"]}).json()
    assert [pod["id"] for pod in by_id] == [second["id"]]
    exited = rest.get("/pods", params={"desiredStatus": "EXITED"}).json()
    assert [pod["id"] for pod in exited] == [second["id"]]
    assert len(rest.get("/pods").json()) == 2
    assert rest.get("/pods", params={"desiredStatus": "ASLEEP"}).status_code == 400


def test_stop_start_delete_and_404_after(sim: SimProcess, rest: httpx.Client) -> None:
    pod_id = create_pod(rest)["id"]
    stopped = rest.post(f"/pods/{pod_id}/stop")
    assert stopped.status_code == 200 and stopped.json()["desiredStatus"] == "EXITED"
    started = rest.post(f"/pods/{pod_id}/start")
    assert started.status_code == 200 and started.json()["desiredStatus"] == "RUNNING"
    assert rest.delete(f"/pods/{pod_id}").status_code == 204
    for method, path in [
        ("GET", f"/pods/{pod_id}"),
        ("DELETE", f"/pods/{pod_id}"),
        ("POST", f"/pods/{pod_id}/start"),
        ("POST", f"/pods/{pod_id}/stop"),
        ("POST", f"/pods/{pod_id}/restart"),
        ("POST", f"/pods/{pod_id}/reset"),
        ("GET", "/pods/nosuchpod12345"),
    ]:
        answer = rest.request(method, path)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json() == {"message": "Pod not found"}
    (record,) = sim.ledger()
    assert record["status"] == "TERMINATED"


def test_restart_does_nothing(rest: httpx.Client) -> None:
    """runpod-python#450: restart reportedly leaves the pod as it was."""
    pod_id = create_pod(rest)["id"]
    rest.post(f"/pods/{pod_id}/stop")
    answer = rest.post(f"/pods/{pod_id}/restart")
    assert answer.status_code == 200 and answer.json()["desiredStatus"] == "EXITED"


def test_unknown_key_is_401_and_read_only_key_is_403_on_mutations() -> None:
    with SimProcess(read_only_keys=[READ_ONLY_KEY]) as sim:
        owner = {"Authorization": f"Bearer {sim.api_key}"}
        reader = {"Authorization": f"Bearer {READ_ONLY_KEY}"}
        stranger = {"Authorization": "Bearer not-a-key"}
        with httpx.Client(base_url=sim.rest_url, timeout=30.0) as client:
            pod = client.post("/pods", json=create_body(), headers=owner).json()
            assert client.get("/pods", headers=stranger).status_code == 401
            assert client.get("/pods").status_code == 401
            assert client.get("/pods", headers=reader).status_code == 200
            assert client.get(f"/pods/{pod['id']}", headers=reader).status_code == 200
            assert client.get("/billing/pods", headers=reader).status_code == 200
            for method, path in [
                ("POST", "/pods"),
                ("DELETE", f"/pods/{pod['id']}"),
                ("POST", f"/pods/{pod['id']}/stop"),
                ("POST", f"/pods/{pod['id']}/start"),
            ]:
                body = create_body() if path == "/pods" else None
                answer = client.request(method, path, json=body, headers=reader)
                assert answer.status_code == 403, (method, path)
                assert isinstance(answer.json()["message"], str)
        assert [r["status"] for r in sim.ledger()] == ["RUNNING"]


def test_read_only_key_gets_unauthorized_on_graphql_mutations() -> None:
    with SimProcess(read_only_keys=[READ_ONLY_KEY]) as sim:
        query = 'mutation { podTerminate(input: {podId: "x"}) }'
        answer = httpx.post(
            f"{sim.base_url}/graphql",
            json={"query": query},
            headers={"Authorization": f"Bearer {READ_ONLY_KEY}"},
            timeout=30.0,
        )
        assert answer.status_code == 200
        assert answer.json()["errors"][0]["message"] == "Unauthorized"
        reads = httpx.post(
            f"{sim.base_url}/graphql",
            json={"query": "query { myself { pods { id } } }"},
            headers={"Authorization": f"Bearer {READ_ONLY_KEY}"},
            timeout=30.0,
        )
        assert reads.json() == {"data": {"myself": {"pods": []}}}


@pytest.mark.usefixtures("runpod_env")
def test_one_world_through_both_apis(rest: httpx.Client) -> None:
    made_by_rest = create_pod(rest)
    seen = runpod.get_pod(made_by_rest["id"])
    assert seen["desiredStatus"] == "RUNNING" and seen["imageName"] == made_by_rest["image"]
    made_by_sdk = runpod.create_pod(
        name="sdk-made", image_name="vllm/vllm-openai:v0.11.0", gpu_type_id=RTX_4090
    )
    answer = rest.get(f"/pods/{made_by_sdk['id']}")
    assert answer.status_code == 200 and answer.json()["name"] == "sdk-made"
    runpod.stop_pod(made_by_rest["id"])
    assert rest.get(f"/pods/{made_by_rest['id']}").json()["desiredStatus"] == "EXITED"
    assert rest.delete(f"/pods/{made_by_sdk['id']}").status_code == 204
    assert runpod.get_pod(made_by_sdk["id"]) is None


def test_billing_pods_answers_from_the_ledger(sim: SimProcess, rest: httpx.Client) -> None:
    pod_id = create_pod(rest)["id"]
    wait_for("a billed second", lambda: sim.ledger()[0]["billed_seconds"] > 1.0)
    rest.post(f"/pods/{pod_id}/stop")
    (record,) = sim.ledger()
    by_pod = rest.get("/billing/pods", params={"grouping": "podId", "bucketSize": "hour"})
    assert by_pod.status_code == 200
    (bucket,) = by_pod.json()
    assert bucket["podId"] == pod_id and bucket["time"].endswith(":00:00Z")
    assert bucket["amount"] == pytest.approx(record["cost_usd"], abs=1e-5)
    assert bucket["timeBilledMs"] == pytest.approx(record["billed_seconds"] * 1000, abs=2)
    (by_gpu,) = rest.get("/billing/pods").json()
    assert by_gpu["gpuTypeId"] == RTX_4090 and by_gpu["time"].endswith("T00:00:00Z")
    assert rest.get("/billing/pods", params={"bucketSize": "decade"}).status_code == 400
    later = rest.get("/billing/pods", params={"startTime": "2999-01-01T00:00:00Z"})
    assert later.json() == []
