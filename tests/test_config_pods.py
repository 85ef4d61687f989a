"""The `pods` section (issue 23) as the proxy reads it: entries, checks, default upstreams,
and a config without it reading as one pod named `pod`."""

from __future__ import annotations

from typing import Any

import pytest

from podmgr.config import build_config
from podmgr.errors import ConfigError

BIG, SMALL = "Qwen/Qwen2.5-Coder-32B-Instruct", "Qwen/Qwen2.5-Coder-1.5B"
TWO = {
    "pods": [
        {"name": "chat", "model": BIG, "gpu_type_id": "NVIDIA A100 80GB PCIe"},
        {"name": "fast", "model": SMALL, "idle_timeout_seconds": 300},
    ]
}
TWO_FOR_CHAT = [{"name": "chat", "kind": "pod"}, {"name": "c2", "kind": "pod", "pod": "chat"}]


def test_two_pods_read_as_entries_and_one_pod_upstream_each() -> None:
    config = build_config(TWO, environ={})
    pods = config.pods
    assert [pod.name for pod in pods] == ["chat", "fast"]
    assert pods[1].idle_timeout_seconds == 300 and pods[0].idle_timeout_seconds is None
    assert config.pod.model == "Qwen/Qwen2.5-Coder-32B-Instruct"  # `pod` is the first entry
    assert [(s.name, s.kind, s.pod, s.models) for s in config.upstreams] == [
        ("chat", "pod", "chat", ["Qwen/Qwen2.5-Coder-32B-Instruct"]),
        ("fast", "pod", "fast", ["Qwen/Qwen2.5-Coder-1.5B"]),
    ]


def test_a_config_without_pods_is_one_pod_named_pod_as_before() -> None:
    config = build_config({"model": "m"}, environ={})
    (pod,) = config.pods
    assert pod.name == "pod" and pod.model == "m"
    assert "pods" not in config.model_dump()  # derived, not written
    assert [(s.name, s.pod, s.models) for s in config.upstreams] == [("pod", None, "*")]


def test_listed_upstreams_name_their_pods_and_fallbacks_stay() -> None:
    config = build_config(
        {
            **TWO,
            "upstreams": [
                {"name": "chat", "kind": "pod"},
                {"name": "small", "kind": "pod", "pod": "fast"},
                {"name": "router", "kind": "openai", "base_url": "http://127.0.0.1:9"},
            ],
        },
        environ={},
    )
    assert [(s.name, s.pod, s.models) for s in config.upstreams] == [
        ("chat", "chat", ["Qwen/Qwen2.5-Coder-32B-Instruct"]),
        ("small", "fast", ["Qwen/Qwen2.5-Coder-1.5B"]),
        ("router", None, "*"),
    ]


def test_entries_named_like_their_pods_need_no_pod_field() -> None:
    listed = [{"name": "fast", "kind": "pod"}, {"name": "chat", "kind": "pod"}]
    config = build_config({**TWO, "upstreams": listed}, environ={})
    assert [(s.name, s.pod, s.models) for s in config.upstreams] == [
        ("fast", "fast", [SMALL]),
        ("chat", "chat", [BIG]),
    ]


def _pod(name: str, model: str) -> dict[str, str]:
    return {"name": name, "model": model}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param({**TWO, "pod": {"model": "x"}}, "pods", id="pod-and-pods"),
        pytest.param({**TWO, "model": "x"}, "pods", id="flat-pod-and-pods"),
        pytest.param({"pods": [_pod("a", "x"), _pod("a", "y")]}, "pods", id="name-twice"),
        pytest.param({"pods": [_pod("a", "x"), _pod("b", "x")]}, "pods", id="model-twice"),
        pytest.param({"pods": [_pod("Chat", "x")]}, "pods", id="name-not-lower-case"),
        pytest.param({"pods": [_pod("a" * 21, "x")]}, "pods", id="name-too-long"),
        pytest.param({"pods": []}, "pods", id="empty"),
        pytest.param(
            {**TWO, "upstreams": [{"name": "gpu", "kind": "pod"}]}, "upstreams", id="pod-unnamed"
        ),
        pytest.param({**TWO, "upstreams": TWO_FOR_CHAT}, "upstreams", id="two-upstreams-one-pod"),
    ],
)
def test_bad_pods_are_config_errors_naming_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(data, environ={})
    assert caught.value.exit_code == 2
    assert field in str(caught.value)
