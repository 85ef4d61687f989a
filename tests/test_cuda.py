"""The CUDA floor: RunPod's versions, known vLLM image floors, the config's checks, the
create body, and the simulator's host placement (issue 11)."""

from __future__ import annotations

import pytest

from podmgr.config import build_config
from podmgr.cuda import image_cuda_floor, versions_from
from podmgr.errors import ConfigError
from podmgr.runpod.client import create_input
from podmgr.sim.hosts import image_starts_on, parse_cuda_list, place_on_host
from podmgr.watchdog.apply import pod_spec


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


def test_default_sends_12_8_and_newer() -> None:
    config = build_config({}, environ={})
    assert config.allowed_cuda_versions == ["12.8", "12.9", "13.0"] == versions_from("12.8")
    body = create_input(pod_spec(config, "cid", "podmgr-x", "NVIDIA GeForce RTX 4090", "k")).body()
    assert body["allowedCudaVersions"] == ["12.8", "12.9", "13.0"]


@pytest.mark.parametrize(
    ("values", "wording"),
    [
        pytest.param({"allowed_cuda_versions": []}, "at least one", id="empty"),
        pytest.param({"allowed_cuda_versions": ["12.10"]}, "not a CUDA version", id="unknown"),
        pytest.param(
            {"image_name": "vllm/vllm-openai:v0.14.0", "allowed_cuda_versions": ["12.8", "12.9"]},
            "below CUDA 12.9",
            id="below-the-image",
        ),
        pytest.param(
            {"image_name": "vllm/vllm-openai:v0.14.0"}, "below CUDA 12.9", id="default-below"
        ),
    ],
)
def test_bad_cuda_config_exits_2_naming_the_field(values: dict[str, object], wording: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config(values, environ={})
    assert raised.value.exit_code == 2
    assert raised.value.field == "allowed_cuda_versions" and wording in raised.value.message


def test_sim_placement_and_start() -> None:
    hosts = parse_cuda_list("12.4, 12.8")
    assert place_on_host(hosts, []) == "12.4"  # no floor: the oldest host
    assert place_on_host(hosts, ["12.8", "12.9"]) == "12.8"
    assert place_on_host(hosts, ["12.9"]) is None  # no such host: capacity
    assert image_starts_on("12.4", "12.8") is False
    assert image_starts_on("12.8", "12.8") and image_starts_on("12.4", None)
    with pytest.raises(ValueError, match=r"12\.10"):
        parse_cuda_list("12.10")
