"""The CUDA floor: RunPod's versions, known vLLM image floors, the config's checks, the
create body, and the simulator's host placement (issue 11)."""

from __future__ import annotations

import pytest

from podmgr.config import build_config
from podmgr.cuda import image_cuda_floor, versions_from
from podmgr.errors import ConfigError
from podmgr.runpod.client import create_request
from podmgr.sim.hosts import image_starts_on, parse_cuda_list, place_on_host
from podmgr.watchdog.spec import pod_spec


@pytest.mark.parametrize(
    ("image", "floor"),
    [
        pytest.param("vllm/vllm-openai:v0.8.5", "12.4", id="v0.8-line-cuda-12.4"),
        pytest.param("vllm/vllm-openai:v0.9.0", "12.8", id="v0.9.0-needs-12.8"),
        pytest.param("vllm/vllm-openai:v0.13.1", "12.8", id="v0.13"),
        pytest.param("vllm/vllm-openai:v0.14.0", "12.9", id="v0.14-needs-12.9"),
        pytest.param("docker.io/vllm/vllm-openai:v0.20.1", "13.0", id="v0.20-wants-13.0"),
        pytest.param("vllm/vllm-openai:latest", None, id="latest-unknown"),
        pytest.param("ghcr.io/me/vllm:1.0", None, id="other-image-unknown"),
    ],
)
def test_image_cuda_floor(image: str, floor: str | None) -> None:
    assert image_cuda_floor(image) == floor


def gpu_sent(values: dict[str, object]) -> dict[str, object]:
    config = build_config(values, environ={})
    spec = pod_spec(config, "cid", "podmgr-x", "NVIDIA GeForce RTX 4090", "k")
    sent: dict[str, object] = create_request(spec).body()["gpu"]
    return sent


def test_default_floor_is_the_images_own_need_sent_as_min_cuda_version() -> None:
    assert gpu_sent({}) == {"id": "NVIDIA GeForce RTX 4090", "count": 1, "minCudaVersion": "12.4"}
    assert gpu_sent({"image_name": "ghcr.io/me/vllm:1.0"})["minCudaVersion"] == "12.8"
    assert gpu_sent({"min_cuda_version": "12.6"})["minCudaVersion"] == "12.6"
    exact = gpu_sent({"allowed_cuda_versions": ["12.8", "12.9"]})
    assert exact["allowedCudaVersions"] == ["12.8", "12.9"] and "minCudaVersion" not in exact
    assert versions_from("12.8") == ["12.8", "12.9", "13.0"]


@pytest.mark.parametrize(
    ("values", "field", "wording"),
    [
        pytest.param({"allowed_cuda_versions": []}, "allowed_cuda_versions", "at least one",
                     id="empty"),
        pytest.param({"allowed_cuda_versions": ["12.10"]}, "allowed_cuda_versions",
                     "not a CUDA version", id="unknown"),
        pytest.param({"image_name": "vllm/vllm-openai:v0.14.0",
                      "allowed_cuda_versions": ["12.8", "12.9"]},
                     "allowed_cuda_versions", "below CUDA 12.9", id="below-the-image"),
        pytest.param({"image_name": "vllm/vllm-openai:v0.14.0", "min_cuda_version": "12.8"},
                     "min_cuda_version", "below CUDA 12.9", id="floor-below-the-image"),
        pytest.param({"min_cuda_version": "12.8", "allowed_cuda_versions": ["12.8"]},
                     "allowed_cuda_versions", "exclude each other", id="both"),
    ],
)  # fmt: skip
def test_bad_cuda_config_exits_2_naming_the_field(
    values: dict[str, object], field: str, wording: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config(values, environ={})
    assert raised.value.exit_code == 2
    assert raised.value.field == field and wording in raised.value.message


def test_sim_placement_and_start() -> None:
    hosts = parse_cuda_list("12.4, 12.8")
    assert place_on_host(hosts, []) == "12.4"  # no floor: the oldest host
    assert place_on_host(hosts, ["12.8", "12.9"]) == "12.8"
    assert place_on_host(hosts, ["12.9"]) is None  # no such host: capacity
    assert image_starts_on("12.4", "12.8") is False
    assert image_starts_on("12.8", "12.8") and image_starts_on("12.4", None)
    with pytest.raises(ValueError, match=r"12\.10"):
        parse_cuda_list("12.10")
