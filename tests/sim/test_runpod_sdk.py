"""The real `runpod` SDK against the simulator: the pod lifecycle and every API-level fault."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import runpod
from runpod.api.graphql import run_graphql_query
from runpod.error import AuthenticationError, QueryError

from podmgr.sim.process import SimProcess

RTX_4090 = "NVIDIA GeForce RTX 4090"
CAPACITY = (
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again."
)

pytestmark = pytest.mark.usefixtures("runpod_env")


def create(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "name": "podmgr-test",
        "image_name": "vllm/vllm-openai:latest",
        "gpu_type_id": RTX_4090,
        "cloud_type": "SECURE",
        "env": {"VLLM_API_KEY": "pod-key-not-real", "PODMGR_MANAGED": "1"},
        "docker_args": "--model Qwen/Qwen2.5-Coder-7B-Instruct --port 8000",
        "ports": "8000/http",
        "gpu_count": 1,
        **overrides,
    }
    pod: dict[str, Any] = runpod.create_pod(**arguments)
    return pod


def test_create_records_public_ip_ssh_template_and_ports(sim: SimProcess) -> None:
    """The ledger shows what a create asked for (the SDK asks for a public IP and SSH)."""
    create()
    create(support_public_ip=False, start_ssh=False, template_id="runpod-torch-v21")
    default, lean = sim.ledger()
    assert (default["support_public_ip"], default["start_ssh"]) == (True, True)
    assert (lean["support_public_ip"], lean["start_ssh"]) == (False, False)
    assert (default["template_id"], lean["template_id"]) == (None, "runpod-torch-v21")
    assert default["ports"] == "8000/http" and default["image_name"] == "vllm/vllm-openai:latest"


def wait_for_runtime(pod_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod: dict[str, Any] = runpod.get_pod(pod_id)
        if pod["runtime"]:
            return pod
        time.sleep(0.02)
    raise AssertionError(f"pod {pod_id} never got a runtime")


def test_create_read_list_stop_resume_terminate(sim: SimProcess) -> None:
    created = create()
    pod_id = created["id"]
    assert created["env"] == ["VLLM_API_KEY=pod-key-not-real", "PODMGR_MANAGED=1"]
    assert created["imageName"] == "vllm/vllm-openai:latest"

    fresh = runpod.get_pod(pod_id)
    assert fresh["desiredStatus"] == "RUNNING"
    assert fresh["runtime"] is None
    assert fresh["name"] == "podmgr-test"
    assert fresh["gpuCount"] == 1
    assert fresh["costPerHr"] == pytest.approx(0.69)
    assert fresh["machine"] == {"gpuDisplayName": "RTX 4090"}
    assert fresh["dockerArgs"] == "--model Qwen/Qwen2.5-Coder-7B-Instruct --port 8000"

    running = wait_for_runtime(pod_id)
    (port,) = running["runtime"]["ports"]
    assert port["privatePort"] == 8000
    assert port["type"] == "http"
    assert [p["id"] for p in runpod.get_pods()] == [pod_id]

    assert runpod.stop_pod(pod_id) == {"id": pod_id, "desiredStatus": "EXITED"}
    stopped = runpod.get_pod(pod_id)
    assert (stopped["desiredStatus"], stopped["runtime"]) == ("EXITED", None)

    resumed = runpod.resume_pod(pod_id, 1)
    assert resumed["desiredStatus"] == "RUNNING"
    assert runpod.get_pod(pod_id)["runtime"] is None
    wait_for_runtime(pod_id)

    assert runpod.terminate_pod(pod_id) is None
    assert runpod.get_pod(pod_id) is None
    assert runpod.get_pods() == []
    with pytest.raises(QueryError) as caught:
        runpod.terminate_pod(pod_id)
    assert str(caught.value) == "pod not found to terminate"


def test_gpu_catalog_answers_the_sdk_queries() -> None:
    ids = [gpu["id"] for gpu in runpod.get_gpus()]
    assert {RTX_4090, "NVIDIA RTX A6000", "NVIDIA L40S", "NVIDIA A100 80GB PCIe"} <= set(ids)
    assert "NVIDIA H100 80GB HBM3" in ids
    gpu = runpod.get_gpu("NVIDIA L40S")
    assert gpu["memoryInGb"] == 48
    assert gpu["lowestPrice"]["uninterruptablePrice"] == pytest.approx(gpu["communityPrice"])
    with pytest.raises(ValueError, match="No GPU found"):
        runpod.get_gpu("NVIDIA GeForce GTX 1080")


def test_unknown_pod_reads_as_null_and_runtime_uptime_is_queryable() -> None:
    assert runpod.get_pod("doesnotexist01") is None
    pod_id = create()["id"]
    wait_for_runtime(pod_id)
    answer = run_graphql_query(
        f'query {{ pod(input: {{podId: "{pod_id}"}}) {{ runtime {{ uptimeInSeconds }} }} }}'
    )
    assert answer["data"]["pod"]["runtime"]["uptimeInSeconds"] >= 0


def test_unknown_field_is_a_query_error() -> None:
    with pytest.raises(QueryError, match="Cannot query field 'tags' on type 'Pod'"):
        run_graphql_query('query { pod(input: {podId: "x"}) { id tags } }')
    with pytest.raises(QueryError, match="Syntax Error"):
        run_graphql_query("query { pod(")


def test_deploy_with_unknown_gpu_type_errors() -> None:
    mutation = (
        'mutation { podFindAndDeployOnDemand(input: {name: "x", imageName: "i", '
        'gpuTypeId: "NVIDIA Imaginary 9000", cloudType: SECURE}) { id } }'
    )
    with pytest.raises(QueryError, match="NVIDIA Imaginary 9000"):
        run_graphql_query(mutation)


def test_wrong_key_is_authentication_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runpod, "api_key", "wrong-key-not-real")
    with pytest.raises(AuthenticationError, match="Unauthorized request"):
        runpod.get_pods()


def test_capacity_fault_hits_only_its_gpu_types(sim: SimProcess) -> None:
    sim.set_fault("capacity", count=1, gpu_type_ids=[RTX_4090])
    with pytest.raises(QueryError) as caught:
        create()
    assert str(caught.value) == CAPACITY
    assert create(gpu_type_id="NVIDIA L40S")["id"]
    assert create()["id"]
    (fault,) = sim.faults()
    assert (fault["fired"], fault["remaining"]) == (1, 0)


def test_something_went_wrong_fault(sim: SimProcess) -> None:
    sim.set_fault("api_something_went_wrong", count=1)
    with pytest.raises(QueryError, match=r"^Something went wrong\. Please try again later"):
        runpod.get_pods()
    assert runpod.get_pods() == []


def test_api_fault_can_target_one_root_field(sim: SimProcess) -> None:
    pod_id = create()["id"]
    sim.set_fault("api_something_went_wrong", count=1, field="podTerminate")
    assert runpod.get_pod(pod_id)["id"] == pod_id
    with pytest.raises(QueryError, match="Something went wrong"):
        runpod.terminate_pod(pod_id)
    assert runpod.get_pod(pod_id)["desiredStatus"] == "RUNNING"
    runpod.terminate_pod(pod_id)
    assert sim.ledger()[0]["status"] == "TERMINATED"


def test_list_error_fails_the_listing_but_not_one_pods_query(sim: SimProcess) -> None:
    pod_id = create()["id"]
    sim.set_fault("list_error")
    with pytest.raises(QueryError, match="Something went wrong"):
        runpod.get_pods()
    assert runpod.get_pod(pod_id)["id"] == pod_id
    runpod.terminate_pod(pod_id)  # by id, no listing needed
    assert sim.ledger()[0]["status"] == "TERMINATED"
    sim.clear_faults()
    sim.set_fault("list_error", count=1, status=503)
    with pytest.raises((json.JSONDecodeError, requests.exceptions.JSONDecodeError)):
        runpod.get_pods()
    assert runpod.get_pods() == []


def test_transient_status_shows_created_then_restarting_without_runtime(sim: SimProcess) -> None:
    sim.set_fault("transient_status", count=2, seconds=0.5)
    pod_id = create()["id"]
    shown = runpod.get_pod(pod_id)
    assert (shown["desiredStatus"], shown["runtime"]) == ("CREATED", None)
    assert wait_for_runtime(pod_id)["desiredStatus"] == "RUNNING"
    runpod.stop_pod(pod_id)
    runpod.resume_pod(pod_id, 1)
    shown = runpod.get_pod(pod_id)
    assert (shown["desiredStatus"], shown["runtime"]) == ("RESTARTING", None)
    assert wait_for_runtime(pod_id)["desiredStatus"] == "RUNNING"
    assert sim.ledger()[0]["status"] == "RUNNING"  # billing sees a running pod throughout


def test_resume_without_free_gpus(sim: SimProcess) -> None:
    pod_id = create()["id"]
    runpod.stop_pod(pod_id)
    sim.set_fault("resume_no_gpus", count=1)
    with pytest.raises(QueryError) as caught:
        runpod.resume_pod(pod_id, 1)
    assert (
        str(caught.value) == "There are not enough free GPUs on the host machine to start this pod."
    )
    assert runpod.get_pod(pod_id)["desiredStatus"] == "EXITED"
    assert runpod.resume_pod(pod_id, 1)["desiredStatus"] == "RUNNING"


@pytest.mark.parametrize("status", [502, 503, 429, 500])
def test_html_error_pages_fail_to_decode(sim: SimProcess, status: int) -> None:
    sim.set_fault("api_error", count=1, status=status)
    with pytest.raises((json.JSONDecodeError, requests.exceptions.JSONDecodeError)):
        runpod.get_pods()
    assert runpod.get_pods() == []


def test_pod_crash_fault_exits_a_running_pod(sim: SimProcess) -> None:
    pod_id = create()["id"]
    sim.set_fault("pod_crash", count=1, pod_id=pod_id)
    assert runpod.get_pod(pod_id)["desiredStatus"] == "EXITED"
    (record,) = sim.ledger()
    assert record["status"] == "EXITED"


def test_direct_crash_action(sim: SimProcess) -> None:
    pod_id = create()["id"]
    sim.crash_pod(pod_id)
    assert runpod.get_pod(pod_id)["desiredStatus"] == "EXITED"


def test_slow_api_times_out_the_sdk_but_the_work_is_done(sim: SimProcess) -> None:
    """The one slow test (~30 s): the SDK's own 30 s timeout must fire."""
    # The answer comes 60 s late, so only the SDK's timeout can end the call in time; a
    # 31 s delay let a client stalled by a loaded machine see the answer instead.
    sim.set_fault("api_slow", count=1, seconds=60, field="podFindAndDeployOnDemand")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        create()
    assert time.monotonic() - started > 29  # its 30 s timeout, not an earlier failure
    (record,) = sim.ledger()
    assert record["status"] == "RUNNING"
