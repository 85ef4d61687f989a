"""The `pods` section (issue 23): a set of named pods, and one pod reading as before."""

from __future__ import annotations

from typing import Any

import pytest

from podmgr.config import Config, build_config
from podmgr.config.pods import DEFAULT_POD_NAME
from podmgr.errors import ConfigError

TWO: dict[str, Any] = {
    "pods": [
        {"name": "chat", "model": "Qwen/Qwen2.5-Coder-32B-Instruct", "gpu_type_id": "NVIDIA A40"},
        {"name": "fim", "model": "Qwen/Qwen2.5-Coder-1.5B", "idle_timeout_seconds": 60},
    ],
    "limits": {"idle_timeout_seconds": 900},
}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"model": "a/b"}, id="old-flat"),
        pytest.param({"pod": {"model": "a/b"}}, id="pod-section"),
    ],
)
def test_one_pod_reads_as_the_entry_named_pod(data: dict[str, Any]) -> None:
    config = build_config(data)
    assert config.pod_names == (DEFAULT_POD_NAME,)
    assert config.pod.model == config.pods[0].model == "a/b"
    assert type(config.pod).__name__ == "PodSection"  # one-pod paths see what they saw
    assert config.idle_timeout_for(DEFAULT_POD_NAME) is None


def test_one_pod_dump_has_no_pods_and_validates_again() -> None:
    config = build_config({"pod": {"model": "a/b"}})
    dumped = config.model_dump()
    assert "pods" not in dumped
    assert Config.model_validate(dumped) == config


def test_two_pods_in_order_with_their_own_idle_time() -> None:
    config = build_config(TWO)
    assert config.pod_names == ("chat", "fim")
    assert config.pod.model == "Qwen/Qwen2.5-Coder-32B-Instruct"
    assert config.pod.gpu_type_id == "NVIDIA A40"
    assert config.pods[1].gpu_type_id == "NVIDIA GeForce RTX 4090"  # the pod section's default
    assert config.idle_timeout_for("fim") == 60
    assert config.idle_timeout_for("chat") == 900


def test_two_pods_dump_has_no_pod_and_validates_again() -> None:
    config = build_config(TWO)
    dumped = config.model_dump()
    assert "pod" not in dumped
    assert Config.model_validate(dumped).pods == config.pods


def test_unknown_pod_name_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="chat, fim"):
        build_config(TWO).pod_entry("nope")


def _pods(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"pods": list(entries)}


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        pytest.param({**TWO, "pod": {"model": "x"}}, "pods", "exclude", id="pod-and-pods"),
        pytest.param({**TWO, "model": "x"}, "pods", "exclude", id="flat-pod-and-pods"),
        pytest.param(
            _pods({"name": "a", "model": "m"}, {"name": "b", "model": "m"}),
            "pods",
            "model 'm'",
            id="same-model",
        ),
        pytest.param(
            _pods({"name": "a", "model": "m"}, {"name": "a", "model": "n"}),
            "pods",
            "name 'a'",
            id="same-name",
        ),
        pytest.param(_pods(), "pods", "at least one", id="empty"),
        pytest.param(
            _pods(
                {"name": "a", "model": "m"}, {"name": "b", "model": "n", "pod_name_prefix": "x-"}
            ),
            "pods",
            "same pod_name_prefix",
            id="two-prefixes",
        ),
        pytest.param(_pods({"name": "Chat", "model": "m"}), "pods.0.name", "pattern", id="upper"),
        pytest.param(_pods({"name": "a" * 21, "model": "m"}), "pods.0.name", "pattern", id="long"),
        pytest.param(_pods({"model": "m"}), "pods.0.name", "required", id="no-name"),
        pytest.param(
            _pods({"name": "a", "model": "m", "idle_timeout_seconds": 0}),
            "pods.0.idle_timeout_seconds",
            "greater",
            id="idle-zero",
        ),
    ],
)
def test_refused_sets_exit_2_naming_the_field(data: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(data)
    assert caught.value.exit_code == 2
    assert caught.value.field == field
    assert words in str(caught.value)


def test_idle_time_is_not_a_pod_section_field() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"pod": {"model": "a", "idle_timeout_seconds": 5}})
    assert caught.value.field == "pod.idle_timeout_seconds"
