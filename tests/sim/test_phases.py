"""Start-up phases: pull, weights download (container disk or volume), load.

Stopping a pod wipes its container disk (RunPod docs pods/maintenance-and-outages): weights
there are downloaded again after a start; weights on the pod's volume stay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from podmgr.sim.process import SimProcess

RTX_4090 = "NVIDIA GeForce RTX 4090"
DOWNLOAD_SECONDS = 0.5


@pytest.fixture
def slow_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=0.1, download_seconds=DOWNLOAD_SECONDS, load_seconds=0.1) as sim:
        yield sim


def rest_client(sim: SimProcess) -> httpx.Client:
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    return httpx.Client(base_url=sim.rest_url, headers=headers, timeout=30.0)


def create(
    client: httpx.Client,
    *,
    volume: int = 0,
    path: str = "/runpod-volume",
    args: str = "--model sim-model",
    env: dict[str, str] | None = None,
) -> str:
    """A REST v2 create; `volume` GB of persistent mount at `path` (none when 0)."""
    body: dict[str, Any] = {
        "name": "phases",
        "image": "vllm/vllm-openai:v0.11.0",
        "gpu": {"id": RTX_4090},
        "ports": ["8000/http"],
        "args": args,
        "env": env or {},
    }
    if volume:
        body["mounts"] = {"persistent": {"size": volume, "path": path}}
    answer = client.post("/pods", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def wait_phase(sim: SimProcess, pod_id: str, wanted: str, timeout: float = 60.0) -> None:
    wait_for(
        f"pod {pod_id} in phase {wanted}", lambda: sim.pod_phase(pod_id)["phase"] == wanted, timeout
    )


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"gave up after {timeout} s waiting for {what}")


def restart(client: httpx.Client, pod_id: str) -> None:
    """Stop, then start (a new container: the pull again)."""
    for action in ("stop", "start"):
        answer = client.post(f"/pods/{pod_id}/action", json={"action": action})
        assert answer.status_code == 200, answer.text


def test_weights_on_the_container_disk_download_again_after_stop(slow_sim: SimProcess) -> None:
    with rest_client(slow_sim) as client:
        pod_id = create(client, volume=20, env={"HF_HOME": "/root/.cache/huggingface"})
        first = slow_sim.pod_phase(pod_id)
        assert first["weights_on_volume"] is False
        assert first["download_seconds"] == DOWNLOAD_SECONDS
        wait_phase(slow_sim, pod_id, "serving")
        restart(client, pod_id)
        again = slow_sim.pod_phase(pod_id)
        assert again["download_seconds"] == DOWNLOAD_SECONDS
        assert again["volume_has_weights"] is False
        wait_phase(slow_sim, pod_id, "serving")


@pytest.mark.parametrize(
    "overrides",
    [
        {"env": {"HF_HOME": "/workspace/hf"}},
        {"args": "--model sim-model --download-dir /workspace/models"},
    ],
)
def test_weights_on_the_volume_stay_across_stop(
    slow_sim: SimProcess, overrides: dict[str, Any]
) -> None:
    with rest_client(slow_sim) as client:
        pod_id = create(client, volume=20, path="/workspace", **overrides)
        assert slow_sim.pod_phase(pod_id)["weights_on_volume"] is True
        wait_phase(slow_sim, pod_id, "serving")
        restart(client, pod_id)
        again = slow_sim.pod_phase(pod_id)
        assert (again["download_seconds"], again["volume_has_weights"]) == (0.0, True)
        wait_phase(slow_sim, pod_id, "serving")


def test_volume_without_size_holds_nothing(slow_sim: SimProcess) -> None:
    with rest_client(slow_sim) as client:
        pod_id = create(client, volume=0, env={"HF_HOME": "/workspace/hf"})
        assert slow_sim.pod_phase(pod_id)["weights_on_volume"] is False


def test_a_download_cut_short_by_stop_starts_over() -> None:
    with SimProcess(download_seconds=600.0) as sim, rest_client(sim) as client:
        pod_id = create(client, volume=20, path="/workspace", env={"HF_HOME": "/workspace/hf"})
        wait_phase(sim, pod_id, "downloading")
        restart(client, pod_id)
        again = sim.pod_phase(pod_id)
        assert (again["download_seconds"], again["volume_has_weights"]) == (600.0, False)


def test_runtime_appears_after_the_pull_and_url_answers_502_until_loaded() -> None:
    """GraphQL runtime comes with the container; the URL answers 502 while downloading."""
    with SimProcess(download_seconds=600.0) as sim, rest_client(sim) as client:
        pod_id = create(client)
        wait_phase(sim, pod_id, "downloading")
        query = (
            f'query {{ pod(input: {{podId: "{pod_id}"}}) {{ id runtime {{ uptimeInSeconds }} }} }}'
        )
        pod = sim.graphql(query)["data"]["pod"]
        assert pod["runtime"] is not None
        assert httpx.get(sim.pod_url(pod_id) + "/health", timeout=30.0).status_code == 502


def test_restart_starts_a_fresh_container(slow_sim: SimProcess) -> None:
    """v2's `restart`: a dead vLLM is replaced, no image pull, and the weights (container
    disk) download again."""
    with rest_client(slow_sim) as client:
        pod_id = create(client)
        wait_phase(slow_sim, pod_id, "serving")
        slow_sim.kill_vllm(pod_id)
        assert slow_sim.pod_phase(pod_id)["phase"] == "dead"
        answer = client.post(f"/pods/{pod_id}/action", json={"action": "restart"})
        assert answer.status_code == 200, answer.text
        after = slow_sim.pod_phase(pod_id)
        assert after["phase"] != "dead" and after["download_seconds"] == DOWNLOAD_SECONDS
        wait_phase(slow_sim, pod_id, "serving")
