"""The adapter against the real simulator's REST API v2; the ledger is the judge.

Every answer is parsed in strict mode (tests/conftest.py sets PODMGR_RUNPOD_STRICT=1): a
field the document lacks, or one it requires missing, fails the test. The rows of
createPod's documented status table each have a test here (issue 19).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from podmgr.errors import (
    ApiError,
    AuthError,
    BalanceError,
    CapacityError,
    ContractError,
    PlacementError,
    PodGoneError,
)
from podmgr.runpod import wire
from podmgr.runpod.client import RunPodClient
from podmgr.runpod.values import PodSpec
from podmgr.sim.process import SimProcess, free_port

READ_ONLY_KEY = "test-read-only-key-not-real"
GPU = "NVIDIA GeForce RTX 4090"


@pytest.fixture(scope="module")
def rest_sim() -> Iterator[SimProcess]:
    with SimProcess(read_only_keys=[READ_ONLY_KEY]) as process:
        yield process


@pytest.fixture
def sim_env(
    rest_sim: SimProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimProcess]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RUNPOD_API_BASE_URL", rest_sim.base_url)
    monkeypatch.setenv("RUNPOD_REST_URL", rest_sim.rest_url)
    try:
        yield rest_sim
    finally:
        rest_sim.clear_faults()
        cleaner = RunPodClient(api_key=rest_sim.api_key, retry_max_seconds=5)
        for pod in cleaner.list_pods():
            if pod.status != "TERMINATED":
                cleaner.terminate_pod(pod.id)


def client(
    sim: SimProcess, key: str | None = None, sleeps: list[float] | None = None
) -> RunPodClient:
    return RunPodClient(
        api_key=key or sim.api_key,
        retry_initial_seconds=0.01,
        retry_max_seconds=5,
        sleep=(sleeps.append if sleeps is not None else None),
    )


def spec(gpu: str = GPU, **changes: object) -> PodSpec:
    values: dict[str, object] = {
        "name": f"podmgr-t{uuid.uuid4().hex[:8]}",
        "image_name": "vllm/vllm-openai:v0.8.5",
        "gpu_type_id": gpu,
        "cloud_type": "SECURE",
        "gpu_count": 1,
        "container_disk_in_gb": 50,
        "volume_in_gb": 0,
        "volume_mount_path": "/workspace",
        "docker_args": "--model sim-model --host 0.0.0.0 --port 8000",
        "ports": "8000/http",
        "env": {"PODMGR_MANAGED": "1"},
        "template_id": None,
        "min_cuda_version": "12.4",
    }
    values.update(changes)
    return PodSpec(**values)  # type: ignore[arg-type]


def alive(sim: SimProcess, name: str) -> list[dict[str, object]]:
    return [p for p in sim.ledger() if p["name"] == name and p["status"] != "TERMINATED"]


def test_a_pod_through_its_lifecycle(sim_env: SimProcess) -> None:
    rp = client(sim_env)
    wanted = spec()
    pod_id = rp.create_pod(wanted)
    [record] = alive(sim_env, wanted.name)
    assert record["id"] == pod_id
    listed = [p for p in rp.list_pods() if p.id == pod_id]
    assert listed and listed[0].env.get("PODMGR_MANAGED") == "1"
    sim_env.wait_serving(pod_id)
    pod = rp.get_pod(pod_id)
    assert pod is not None and pod.running and pod.has_runtime and pod.cost_per_hr > 0
    assert "stop" in pod.actions
    rp.stop_pod(pod_id)
    stopped = rp.get_pod(pod_id)
    assert stopped is not None and stopped.stopped and stopped.cost_per_hr == 0.0
    rp.stop_pod(pod_id)  # 409 from RunPod, read against the pod: already EXITED, fine
    rp.resume_pod(pod_id, 1)
    assert rp.terminate_pod(pod_id) is True
    assert rp.get_pod(pod_id) is None
    assert rp.terminate_pod(pod_id) is False  # already gone: not an error


def test_a_rejected_key_is_an_auth_error_at_once(sim_env: SimProcess) -> None:
    sleeps: list[float] = []
    with pytest.raises(AuthError) as caught:
        client(sim_env, key="test-wrong-key-not-real", sleeps=sleeps).list_pods()
    assert caught.value.exit_code == 3 and sleeps == []


def test_a_403_on_create_skips_the_candidate_without_retries(sim_env: SimProcess) -> None:
    """createPod: 403 "no access to that pool": skip it; never retried."""
    sleeps: list[float] = []
    read_only = client(sim_env, key=READ_ONLY_KEY, sleeps=sleeps)
    assert isinstance(read_only.list_pods(), list)  # reading is allowed
    wanted = spec()
    with pytest.raises(PlacementError) as caught:
        read_only.create_pod(wanted)
    assert caught.value.status == 403 and sleeps == []
    assert alive(sim_env, wanted.name) == []
    with pytest.raises(AuthError, match="403"):  # elsewhere a 403 is the key's
        read_only.stop_pod("abc123")


def test_up_with_a_read_only_key_exits_3_without_retrying(
    sim_env: SimProcess, tmp_path: Path
) -> None:
    """Finding 5, as a person meets it: `podmgr up` with a key that may only read."""
    config = tmp_path / "pod_config.json"
    values = {"endpoint_url_template": sim_env.pod_url_template, "state_file": "state.json"}
    config.write_text(json.dumps({**values, "proxy_port": free_port()}))
    env = {**sim_env.env(tmp_path / "home"), "RUNPOD_API_KEY": READ_ONLY_KEY}
    podmgr = [sys.executable, "-m", "podmgr"]
    before = sim_env.rest_requests()
    run = subprocess.run([*podmgr, "up", "--config", str(config)],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    requests = sim_env.rest_requests() - before
    # `up` started the proxy before the create was refused; a full key stops it again.
    full_key = sim_env.env(tmp_path / "home")
    subprocess.run([*podmgr, "shutdown", "--config", str(config)], env=full_key,
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    assert run.returncode == 3, run.stdout + run.stderr
    assert "403" in run.stderr and READ_ONLY_KEY not in run.stdout + run.stderr
    # Counted, not timed: the catalog for the prices `up` shows first (both clouds; none was
    # cached), the listing, the catalog (Secure), the one refused create.
    assert requests == 5, run.stdout
    assert [p for p in sim_env.ledger() if p["status"] != "TERMINATED"] == []


def test_an_unknown_template_is_not_a_gone_pod(sim_env: SimProcess) -> None:
    """Finding 5: any "not found" became "pod gone" (exit 5); v2 answers 404 for it."""
    with pytest.raises(ApiError, match=r"[Tt]emplate") as caught:
        client(sim_env).create_pod(spec(template_id="no-such-template"))
    assert not isinstance(caught.value, PodGoneError | CapacityError)


def test_no_capacity_is_a_400_placement_error_naming_the_detail(sim_env: SimProcess) -> None:
    sim_env.set_fault("capacity", gpu_type_ids=[GPU])
    sleeps: list[float] = []
    with pytest.raises(PlacementError) as caught:
        client(sim_env, sleeps=sleeps).create_pod(spec())
    assert caught.value.status == 400 and "no longer any instances" in caught.value.message
    assert sleeps == []
    pod_id = client(sim_env).create_pod(other := spec("NVIDIA RTX A6000"))
    assert [p["id"] for p in alive(sim_env, other.name)] == [pod_id]


def test_402_stops_at_once(sim_env: SimProcess) -> None:
    sim_env.set_fault("balance_zero")
    before = sim_env.rest_requests()
    with pytest.raises(BalanceError) as caught:
        client(sim_env).create_pod(spec())
    assert caught.value.exit_code == 11 and sim_env.rest_requests() - before == 1


def test_429_waits_retry_after_then_succeeds(sim_env: SimProcess) -> None:
    sim_env.set_fault("rate_limited", count=1, seconds=3, field="create")
    sleeps: list[float] = []
    wanted = spec()
    pod_id = client(sim_env, sleeps=sleeps).create_pod(wanted)
    assert sleeps == [3.0]  # RunPod's Retry-After, not the backoff's 0.01 s
    assert [p["id"] for p in alive(sim_env, wanted.name)] == [pod_id]


def test_a_body_outside_the_contract_is_a_422_named_as_a_podmgr_bug(
    sim_env: SimProcess,
) -> None:
    rest = client(sim_env).rest()
    body = wire.CreatePodRequest(name="podmgr-bad", image="i", gpu=wire.CreateGpuConfig(id=GPU))
    bad = {**body.body(), "disk": "fifty", "bogus": 1}  # what CreatePodRequest would refuse
    with pytest.raises(ContractError, match="podmgr bug") as caught:
        rest._request("POST", "/pods", json=bad, create=True)
    assert "disk" in caught.value.message and "bogus" in caught.value.message


def test_the_rate_limit_headers_are_read_on_every_answer(sim_env: SimProcess) -> None:
    rest = client(sim_env).rest()
    rest.list_pods()
    assert {w.name for w in rest.rate_windows} == {"minute", "hour", "day"}


def test_a_create_that_failed_after_applying_leaves_one_pod(sim_env: SimProcess) -> None:
    """Finding 4: RunPod can answer 500 after the pod was made; a retry must not make two."""
    sim_env.set_fault("api_error_after_apply", count=1)
    wanted = spec()
    pod_id = client(sim_env).create_pod(wanted)
    assert [p["id"] for p in alive(sim_env, wanted.name)] == [pod_id]


def test_a_failing_listing_leaves_get_pod_working(sim_env: SimProcess) -> None:
    rp = client(sim_env)
    pod_id = rp.create_pod(spec())
    sim_env.set_fault("list_error")
    with pytest.raises(ApiError):
        rp.list_pods()
    pod = rp.get_pod(pod_id)
    assert pod is not None and pod.id == pod_id


def test_a_v1_base_exits_2_saying_v1_was_retired(tmp_path: Path) -> None:
    config = tmp_path / "pod_config.json"
    config.write_text(json.dumps({"state_file": "state.json", "proxy_port": free_port()}))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RUNPOD_API_KEY": "test-key-not-real",
        "RUNPOD_REST_URL": "https://rest.runpod.io/v1",  # never called: refused before
    }
    run = subprocess.run([sys.executable, "-m", "podmgr", "watchdog", "--config", str(config)],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "RUNPOD_REST_URL" in run.stderr and "retired" in run.stderr
    assert "https://api.runpod.io/v2" in run.stderr and "Traceback" not in run.stderr
