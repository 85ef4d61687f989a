"""The simulator's REST API v2 (`/v2`) with plain httpx against a real `podmgr sim`.

Shapes, statuses and error bodies follow RunPod's REST API v2 document (see
podmgr/sim/v2/); the world is the one GraphQL acts on.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from podmgr.sim.operations import CAPACITY_MESSAGE
from podmgr.sim.process import SimProcess

from .v2kit import (
    H100,
    RTX_4090,
    act,
    create,
    create_body,
    problem_of,
    read_events,
    wait_for,
    wait_status,
)

READ_ONLY_KEY = "test-read-only-key-not-real"
POD_FIELDS = {
    "id", "name", "status", "actions", "image", "args", "disk", "mounts", "ports", "env",
    "registry", "cloud", "dataCenterId", "cudaVersion", "ssh", "template", "cost", "locked",
    "runtime", "createdAt", "startedAt", "globalNetworking", "gpu",
}  # fmt: skip


def test_create_answers_201_with_exactly_the_documents_pod(rest: httpx.Client) -> None:
    answer = rest.post("/pods", json=create_body())
    assert answer.status_code == 201, answer.text
    pod = answer.json()
    assert set(pod) == POD_FIELDS
    assert (pod["status"], pod["runtime"], pod["startedAt"]) == ("STARTING", None, None)
    assert pod["actions"] == ["stop", "terminate"]
    assert pod["gpu"] == {"id": RTX_4090, "count": 1}
    assert pod["args"] == "--model sim-model --port 8000" and pod["disk"] == 40
    assert pod["env"] == {"VLLM_API_KEY": "pod-key-not-real", "PODMGR_MANAGED": "1"}
    assert pod["ports"] == ["8000/http"] and pod["mounts"] == {} and pod["cloud"] == "SECURE"
    assert pod["cost"] > 0 and pod["createdAt"].endswith("Z") and pod["cudaVersion"]
    assert "RateLimit" in answer.headers and "RateLimit-Policy" in answer.headers


def test_running_pod_has_a_runtime_and_shows_in_the_listing(rest: httpx.Client) -> None:
    pod_id = create(rest)["id"]
    pod = wait_status(rest, pod_id, "RUNNING")
    assert pod["actions"] == ["stop", "restart", "terminate"]
    runtime = pod["runtime"]
    assert isinstance(runtime["uptime"], int) and len(runtime["gpus"]) == 1
    assert runtime["ports"] == [{"private": 8000, "public": None, "type": "http", "ip": None}]
    assert pod["startedAt"].endswith("Z")
    listing = rest.get("/pods", params={"includeClusterPods": "true"})
    assert listing.status_code == 200
    assert [p["id"] for p in listing.json()["pods"]] == [pod_id]


def test_actions_follow_the_documents_table(sim: SimProcess, rest: httpx.Client) -> None:
    pod_id = create(rest)["id"]
    sim.wait_serving(pod_id)
    stopped = act(rest, pod_id, "stop")
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "EXITED" and stopped.json()["cost"] == 0.0
    assert stopped.json()["actions"] == ["start", "terminate"]
    assert "not valid" in problem_of(act(rest, pod_id, "stop"), 409)["detail"]
    problem_of(act(rest, pod_id, "restart"), 409)
    assert act(rest, pod_id, "start").json()["status"] in ("STARTING", "RUNNING")
    sim.wait_serving(pod_id)
    restarted = act(rest, pod_id, "restart")
    assert restarted.status_code == 200 and restarted.json()["id"] == pod_id
    sim.wait_serving(pod_id)
    problem_of(act(rest, pod_id, "start"), 409)
    terminated = act(rest, pod_id, "terminate")
    assert terminated.status_code == 204 and terminated.content == b""
    problem_of(rest.get(f"/pods/{pod_id}"), 404)
    assert rest.get("/pods").json() == {"pods": []}


def test_delete_is_204_then_404(sim: SimProcess, rest: httpx.Client) -> None:
    pod_id = create(rest)["id"]
    assert rest.delete(f"/pods/{pod_id}").status_code == 204
    problem_of(rest.delete(f"/pods/{pod_id}"), 404)
    assert sim.ledger()[0]["status"] == "TERMINATED"


def test_bad_action_body_is_422(rest: httpx.Client) -> None:
    pod_id = create(rest)["id"]
    body = problem_of(rest.post(f"/pods/{pod_id}/action", json={"action": "reset"}), 422)
    assert body["errors"] and body["errors"][0].startswith("$.action")
    extra = rest.post(f"/pods/{pod_id}/action", json={"action": "stop", "now": True})
    assert problem_of(extra, 422)["errors"] == ["$: additional properties 'now' not allowed"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            create_body(gpu={"id": RTX_4090, "bogus": 1}),
            "$.gpu: additional properties 'bogus' not allowed",
        ),
        (create_body(disk="40"), "$.disk: expected integer"),
        (create_body(interruptible=True), "$: additional properties 'interruptible' not allowed"),
        (create_body(env={"A": 1}), "$.env.A: expected string"),
        ({k: v for k, v in create_body().items() if k != "name"}, "$: missing property 'name'"),
        ({k: v for k, v in create_body().items() if k != "image"}, "$: missing property 'image'"),
        (
            create_body(mounts={"persistent": {"size": 5, "path": "/w"}}),
            "$.mounts.persistent.size: must be at least 10",
        ),
    ],
)
def test_a_body_outside_the_contract_is_422_with_errors(
    sim: SimProcess, rest: httpx.Client, body: dict[str, object], error: str
) -> None:
    answer = problem_of(rest.post("/pods", json=body), 422)
    assert error in answer["errors"]
    assert sim.ledger() == []


def test_capacity_and_cross_field_rules_are_400(sim: SimProcess, rest: httpx.Client) -> None:
    sim.set_fault("capacity", count=1, gpu_type_ids=[RTX_4090])
    assert problem_of(rest.post("/pods", json=create_body()), 400)["detail"] == CAPACITY_MESSAGE
    both_cuda = create_body(
        gpu={"id": RTX_4090, "allowedCudaVersions": ["12.8"], "minCudaVersion": "12.4"}
    )
    assert "mutually exclusive" in problem_of(rest.post("/pods", json=both_cuda), 400)["detail"]
    floor_only = create_body(
        gpu={"id": RTX_4090, "allowedCudaVersions": [], "minCudaVersion": "12.11"}
    )
    assert rest.post("/pods", json=floor_only).status_code == 201
    too_new = create_body(gpu={"id": RTX_4090, "minCudaVersion": "14.0"})
    assert problem_of(rest.post("/pods", json=too_new), 400)["detail"] == CAPACITY_MESSAGE
    mounts = {
        "persistent": {"size": 20, "path": "/w"},
        "network": [{"volumeId": "v", "path": "/n"}],
    }
    problem_of(rest.post("/pods", json=create_body(mounts=mounts)), 400)
    problem_of(rest.post("/pods", json=create_body(gpu={"id": H100}, cloud="COMMUNITY")), 400)
    assert len(sim.ledger()) == 1


def test_min_cuda_version_places_on_hosts_at_or_above_it() -> None:
    with SimProcess(extra_args=["--host-cuda", "12.2,12.4,12.8"]) as sim:
        headers = {"Authorization": f"Bearer {sim.api_key}"}
        with httpx.Client(base_url=sim.rest_url, headers=headers, timeout=30.0) as rest:
            pod = create(rest, gpu={"id": RTX_4090, "minCudaVersion": "12.3"})
            assert pod["cudaVersion"] == "12.4"
            exact = create(rest, gpu={"id": RTX_4090, "allowedCudaVersions": ["12.8"]})
            assert exact["cudaVersion"] == "12.8"
            problem_of(
                rest.post(
                    "/pods", json=create_body(gpu={"id": RTX_4090, "minCudaVersion": "12.9"})
                ),
                400,
            )


def test_unknown_template_and_network_volume_are_404(sim: SimProcess, rest: httpx.Client) -> None:
    problem_of(rest.post("/pods", json=create_body(templateId="vllm")), 404)
    network = {"network": [{"volumeId": "nope", "path": "/runpod-volume"}]}
    problem_of(rest.post("/pods", json=create_body(mounts=network)), 404)
    templated = {
        k: v for k, v in create_body(templateId="runpod-torch-v21").items() if k != "image"
    }
    assert create(rest, **templated)["template"] is None
    assert len(sim.ledger()) == 1


def test_balance_at_zero_is_402(sim: SimProcess, rest: httpx.Client) -> None:
    sim.set_fault("balance_zero", count=1)
    rest.get("/pods")  # any call: the balance reaches $0
    body = problem_of(rest.post("/pods", json=create_body()), 402)
    assert "balance" in body["detail"].lower()


def test_keys_401_and_read_only_403() -> None:
    with SimProcess(read_only_keys=[READ_ONLY_KEY]) as sim:
        anonymous = httpx.get(sim.rest_url + "/pods", timeout=30.0)
        assert problem_of(anonymous, 401)["detail"] == "missing bearer token"
        assert "RateLimit" not in anonymous.headers
        headers = {"Authorization": f"Bearer {READ_ONLY_KEY}"}
        with httpx.Client(base_url=sim.rest_url, headers=headers, timeout=30.0) as reader:
            assert reader.get("/pods").status_code == 200
            refused = reader.post("/pods", json=create_body())
            problem_of(refused, 403)
            assert "RateLimit" in refused.headers
        assert sim.ledger() == []


def test_rate_limited_fault_is_429_with_retry_after(sim: SimProcess, rest: httpx.Client) -> None:
    sim.set_fault("rate_limited", count=1, seconds=3, field="list")
    assert rest.get("/catalog/gpus").status_code == 200  # another operation
    answer = rest.get("/pods")
    assert problem_of(answer, 429)["title"] == "Too Many Requests"
    assert answer.headers["Retry-After"] == "3"
    assert rest.get("/pods").status_code == 200


def test_a_tiny_rate_limit_is_counted_per_account() -> None:
    with SimProcess(rate_limit="minute=3") as sim:
        headers = {"Authorization": f"Bearer {sim.api_key}"}
        with httpx.Client(base_url=sim.rest_url, headers=headers, timeout=30.0) as rest:
            answers = [rest.get("/pods") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[0].headers["RateLimit-Policy"] == (
        '"minute";q=3;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400'
    )
    assert answers[0].headers["RateLimit"].startswith('"minute";r=2;t=')
    refused = answers[3]
    problem_of(refused, 429)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit"].startswith('"minute";r=0;t=')


def test_v1_is_gone(sim: SimProcess) -> None:
    for method, path in (("GET", "/v1/pods"), ("POST", "/v1/pods"), ("GET", "/v1/billing/pods")):
        answer = httpx.request(method, sim.base_url + path, timeout=30.0)
        body = problem_of(answer, 410)
        assert body["title"] == "Gone" and "https://api.runpod.io/v2" in body["detail"]
    counts = sim.api_requests()
    assert counts["v1"] == 3 and counts["v2"] == 0 and counts["graphql"] == 0


def spot_create(sim: SimProcess, bid: float) -> dict[str, Any]:
    return sim.graphql(
        'mutation { podRentInterruptable(input: {name: "spot", imageName: "x", '
        f'gpuTypeId: "{RTX_4090}", gpuCount: 1, bidPerGpu: {bid}, cloudType: SECURE}}) '
        "{ id } }"
    )


def test_a_graphql_spot_pod_shows_in_v2(sim: SimProcess, rest: httpx.Client) -> None:
    low = spot_create(sim, 0.3)  # under the RTX 4090's secure spot price (0.414)
    assert "no longer any instances available" in low["errors"][0]["message"]
    spot = spot_create(sim, 0.42)["data"]["podRentInterruptable"]["id"]
    (pod,) = rest.get("/pods").json()["pods"]
    assert pod["id"] == spot and "interruptible" not in pod
    assert sim.api_requests()["v2"] == 1


def test_container_crash_is_error_and_start_recovers(sim: SimProcess, rest: httpx.Client) -> None:
    pod_id = create(rest)["id"]
    sim.wait_serving(pod_id)
    sim.crash_container(pod_id)
    pod = rest.get(f"/pods/{pod_id}").json()
    assert (pod["status"], pod["runtime"], pod["actions"]) == (
        "ERROR",
        None,
        ["start", "terminate"],
    )
    assert pod["cost"] > 0  # the GPU is still held
    problem_of(act(rest, pod_id, "stop"), 409)
    assert httpx.get(sim.pod_url(pod_id) + "/health", timeout=30.0).status_code == 502
    assert act(rest, pod_id, "start").status_code == 200
    sim.wait_serving(pod_id)
    assert rest.get(f"/pods/{pod_id}").json()["status"] == "RUNNING"


def test_zero_gpus_after_start(sim: SimProcess, rest: httpx.Client) -> None:
    pod_id = create(rest)["id"]
    sim.wait_serving(pod_id)
    act(rest, pod_id, "stop")
    sim.set_fault("zero_gpus", count=1, pod_id=pod_id)
    assert act(rest, pod_id, "start").json()["gpu"]["count"] == 0
    pod = wait_status(rest, pod_id, "RUNNING")
    assert pod["gpu"]["count"] == 0 and pod["runtime"]["gpus"] == []
    wait_for("vLLM's error", lambda: _log_has(rest, pod_id, "No CUDA GPUs are available"))
    assert httpx.get(sim.pod_url(pod_id) + "/health", timeout=30.0).status_code == 502


def _log_has(rest: httpx.Client, pod_id: str, text: str) -> bool:
    events, _ended = read_events(
        rest, f"/pods/{pod_id}/logs", until=lambda seen: any(text in e["line"] for e in seen),
        timeout=2.0,
    )  # fmt: skip
    return any(text in event["line"] for event in events)


def test_transient_status_shows_provisioning_then_starting(
    sim: SimProcess, rest: httpx.Client
) -> None:
    sim.set_fault("transient_status", count=1, seconds=600)
    pod = create(rest)
    assert (pod["status"], pod["actions"]) == ("PROVISIONING", ["stop", "terminate"])
    act(rest, pod["id"], "stop")
    sim.set_fault("transient_status", count=1, seconds=600, pod_id=pod["id"])
    assert act(rest, pod["id"], "start").json()["status"] == "STARTING"


def test_after_apply_500_on_v2_create_and_the_pod_exists(
    sim: SimProcess, rest: httpx.Client
) -> None:
    sim.set_fault("api_error_after_apply", count=1, field="create", hide_seconds=600)
    answer = rest.post("/pods", json=create_body())
    assert "Something went wrong" in problem_of(answer, 500)["detail"]
    (record,) = sim.ledger()
    assert rest.get("/pods").json() == {"pods": []}  # slow to appear in listings
    assert rest.get(f"/pods/{record['id']}").status_code == 200
    sim.set_fault("api_error", count=1, status=503, field="get")
    page = rest.get(f"/pods/{record['id']}")
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")


def test_start_command_json_is_honoured_by_default(sim: SimProcess, rest: httpx.Client) -> None:
    args = json.dumps({"cmd": ["vllm", "serve", "--model", "org/json-model", "--port", "8000"]})
    pod = create(rest, args=args)
    assert pod["args"] == args
    sim.wait_serving(pod["id"])
    key = {"Authorization": "Bearer pod-key-not-real"}
    models = httpx.get(sim.pod_url(pod["id"]) + "/v1/models", headers=key, timeout=30.0)
    assert models.json()["data"][0]["id"] == "org/json-model"


def test_start_command_json_ignored_reaches_vllm_literally() -> None:
    with SimProcess(extra_args=["--start-command-json", "ignore"]) as sim:
        headers = {"Authorization": f"Bearer {sim.api_key}"}
        with httpx.Client(base_url=sim.rest_url, headers=headers, timeout=30.0) as rest:
            args = json.dumps({"entrypoint": ["python3", "-c", "print(1)"], "cmd": ["x"]})
            pod_id = create(rest, args=args)["id"]
            wait_status(rest, pod_id, "RUNNING")
            wait_for("argparse's error", lambda: _log_has(rest, pod_id, "exited with code 2"))
            text = _log_lines(rest, pod_id)
            assert any(line.startswith("usage: api_server.py [-h]") for line in text)
            assert any(
                line.startswith('api_server.py: error: unrecognized arguments: {"entrypoint"')
                for line in text
            )
            url = sim.pod_url(pod_id) + "/health"
            assert httpx.get(url, timeout=30.0).status_code == 502


def _log_lines(rest: httpx.Client, pod_id: str) -> list[str]:
    events, _ended = read_events(rest, f"/pods/{pod_id}/logs", timeout=1.0)
    return [event["line"] for event in events]
