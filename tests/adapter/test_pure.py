"""The adapter's pure parts: placement, the rate-limit header, problems, the create body."""

from __future__ import annotations

import json

import pytest

from podmgr.errors import (
    ApiError,
    AuthError,
    BalanceError,
    ConflictError,
    ContractError,
    PlacementError,
    PodGoneError,
    TransientApiError,
)
from podmgr.guard.check import guard_finding
from podmgr.runpod import wire
from podmgr.runpod.client import create_request, pod_info
from podmgr.runpod.create import start_command
from podmgr.runpod.placement import place
from podmgr.runpod.problems import classify_status
from podmgr.runpod.ratelimit import parse_rate_limit, pause_before_next
from podmgr.runpod.values import GpuType, PodSpec


def gpu(gpu_id: str, stock: str = "HIGH", cuda: tuple[str, ...] = ("12.4", "12.8")) -> GpuType:
    return GpuType(
        id=gpu_id, display_name=gpu_id.split()[-1], secure_price=0.5, community_price=0.3,
        secure_cloud=True, community_cloud=True, secure_stock=stock, community_stock="LOW",
        secure_cuda=cuda, community_cuda=("12.8",),
    )  # fmt: skip


def test_placement_keeps_the_users_order_and_skips_what_cannot_place() -> None:
    catalog = [gpu("G A", stock="NONE"), gpu("G B"), gpu("G C", cuda=("12.2",))]
    placed = place(["G A", "G B", "G C", "G X"], "SECURE", catalog, min_cuda="12.4")
    assert [(c.gpu_type_id, c.cloud) for c in placed.candidates] == [("G B", "SECURE")]
    assert [s.split(":")[0] for s in placed.skipped] == [
        "G A (SECURE)", "G C (SECURE)", "G X (SECURE)"
    ]  # fmt: skip
    assert "stock NONE" in placed.skipped[0] and "12.4 or newer" in placed.skipped[1]
    assert "not a GPU type id" in placed.skipped[2]


def test_placement_all_tries_secure_then_community_and_an_exact_cuda_set() -> None:
    placed = place(["G B"], "ALL", [gpu("G B")], exact_cuda=("12.8",))
    assert [(c.cloud, c.price) for c in placed.candidates] == [("SECURE", 0.5), ("COMMUNITY", 0.3)]
    assert place(["G B"], "ALL", [gpu("G B")], exact_cuda=("13.0",)).candidates == ()


def test_placement_without_a_catalog_tries_every_configured_pair() -> None:
    placed = place(["G A", "G B"], "ALL", None, min_cuda="12.4")
    assert len(placed.candidates) == 4 and placed.skipped == ()


def test_rate_limit_header_and_the_pause_before_a_window_runs_dry() -> None:
    windows = parse_rate_limit('"minute";r=2;t=12, "hour";r=2800;t=1812, "day";r=49500;t=45012')
    assert (windows[0].name, windows[0].remaining, windows[0].reset) == ("minute", 2.0, 12.0)
    assert pause_before_next(windows, max_pause=60) == 12.0
    roomy = parse_rate_limit('"minute";r=40;t=12')
    assert pause_before_next(roomy, max_pause=60) == 0.0
    assert parse_rate_limit("garbage") == [] and parse_rate_limit(None) == []


@pytest.mark.parametrize(
    ("status", "create", "pod", "expected"),
    [
        pytest.param(400, True, False, PlacementError, id="400-create-next-candidate"),
        pytest.param(403, True, False, PlacementError, id="403-create-skip-pool"),
        pytest.param(403, False, False, AuthError, id="403-elsewhere-key"),
        pytest.param(401, True, False, AuthError, id="401"),
        pytest.param(402, True, False, BalanceError, id="402-stop"),
        pytest.param(422, True, False, ContractError, id="422-bug"),
        pytest.param(409, False, True, ConflictError, id="409-action"),
        pytest.param(404, False, True, PodGoneError, id="404-pod"),
        pytest.param(404, True, False, ApiError, id="404-template"),
        pytest.param(503, True, False, TransientApiError, id="5xx-retry"),
        pytest.param(429, True, False, TransientApiError, id="429-wait"),
    ],
)
def test_problems_map_by_status_and_request(
    status: int, create: bool, pod: bool, expected: type[Exception]
) -> None:
    body = {"title": "t", "status": status, "detail": "the detail", "errors": ["$.x: bad"]}
    error = classify_status(
        status, body, what="POST /pods", fallback="HTTP", pod_resource=pod, create=create,
        retry_after=7.0,
    )  # fmt: skip
    assert type(error) is expected
    assert "the detail" in error.message
    if status == 422:
        assert "$.x: bad" in error.message and "podmgr bug" in error.message
    if status == 429:
        assert isinstance(error, TransientApiError) and error.retry_after == 7.0
        assert not error.may_have_applied


def spec(**values: object) -> PodSpec:
    base: dict[str, object] = dict(
        name="podmgr-x", image_name="vllm/vllm-openai:v0.8.5", gpu_type_id="NVIDIA A40",
        cloud_type="SECURE", gpu_count=1, container_disk_in_gb=50, volume_in_gb=0,
        volume_mount_path="/workspace", docker_args="--model m --port 8000", ports="8000/http",
        env={"A": "1"}, template_id=None, min_cuda_version="12.4",
    )  # fmt: skip
    return PodSpec(**{**base, **values})  # type: ignore[arg-type]


def test_create_body_is_the_documents_nested_shape() -> None:
    body = create_request(spec()).body()
    assert body == {
        "name": "podmgr-x", "image": "vllm/vllm-openai:v0.8.5", "args": "--model m --port 8000",
        "env": {"A": "1"}, "ports": ["8000/http"], "disk": 50,
        "gpu": {"id": "NVIDIA A40", "count": 1, "minCudaVersion": "12.4"}, "cloud": "SECURE",
    }  # fmt: skip
    exact = create_request(spec(allowed_cuda_versions=("12.8",))).body()["gpu"]
    assert exact == {"id": "NVIDIA A40", "count": 1, "allowedCudaVersions": ["12.8"]}
    network = create_request(spec(network_volume_id="vol1", volume_in_gb=20)).body()["mounts"]
    assert network == {"network": [{"volumeId": "vol1", "path": "/workspace"}]}
    persistent = create_request(spec(volume_in_gb=20)).body()["mounts"]
    assert persistent == {"persistent": {"size": 20, "path": "/workspace"}}


def test_the_guard_travels_as_start_command_json_in_args() -> None:
    guarded = spec(
        docker_entrypoint=("python3", "-c", "print(1)"), docker_args="vllm serve --model m"
    )
    args = json.loads(start_command(guarded) or "")
    assert args == {
        "entrypoint": ["python3", "-c", "print(1)"],
        "cmd": ["vllm", "serve", "--model", "m"],
    }


def test_strict_mode_names_extra_and_missing_fields() -> None:
    pod = wire.Pod.model_validate({"id": "p", "name": "n", "status": "RUNNING", "bogus": 1})
    problems = wire.check_strict(pod)
    assert "$.bogus: not in the document" in problems
    assert "$.cudaVersion: required by the document, missing" in problems
    info = pod_info(pod)
    assert info.running and not info.has_runtime and info.gpu_count == 1


def test_zero_gpus_and_runtime_are_read_from_the_pod() -> None:
    pod = wire.Pod.model_validate(
        {"id": "p", "name": "n", "status": "RUNNING", "gpu": {"id": "g", "count": 0},
         "cost": 0.44, "runtime": {"uptime": 12, "ports": [{"private": 8000, "type": "http"}]}}
    )  # fmt: skip
    info = pod_info(pod)
    assert info.gpu_count == 0 and info.has_runtime and info.uptime_seconds == 12
    assert info.cost_per_hr == 0.44


def test_guard_finding_reads_only_its_two_signatures() -> None:
    armed = '{"at": 1.0, "guard": "armed", "pod_id": "p"}'
    literal = 'api_server.py: error: unrecognized arguments: {"entrypoint": ["python3", "-c"'
    assert guard_finding(["INFO loading", armed]).confirmed is True  # type: ignore[union-attr]
    assert guard_finding([literal]).confirmed is False  # type: ignore[union-attr]
    assert guard_finding(["error: unrecognized arguments: --foo", "armed"]) is None
