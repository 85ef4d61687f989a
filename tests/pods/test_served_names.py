"""The model ids of a pod of a set are the ids its vLLM answers to (issue 23): with
`--served-model-name` in its vllm_args, clients send that name, so the proxy routes it to
the pod and the watchdog's idle rule counts the proxy's requests under it; without, the
config's `model`, as before."""

from __future__ import annotations

from typing import Any

import pytest

from podmgr.cli.serving import served_model, serving_lines
from podmgr.config import Config, build_config
from podmgr.config.served import served_models
from podmgr.errors import ConfigError
from podmgr.watchdog.observed import ProxyView
from podmgr.watchdog.plan_set import EndPod, ObservedSet, plan_set
from tests.pods.test_plan_set import CHAT, FIM, HEALTHY, LISTED, both, for_pod
from tests.watchdog.helpers import NOW, PROXY_UP

NAMED = ["--max-model-len", "8192", "--served-model-name", "fim-coder", "autocomplete"]


@pytest.mark.parametrize(
    ("args", "ids"),
    [
        pytest.param([], (FIM,), id="no-name-the-model"),
        pytest.param(["--max-model-len", "8192"], (FIM,), id="other-args"),
        pytest.param(["--served-model-name", "coder"], ("coder",), id="one-name"),
        pytest.param(["--served-model-name=coder"], ("coder",), id="equals-form"),
        pytest.param(NAMED, ("fim-coder", "autocomplete"), id="several-names-then-end"),
        pytest.param(
            ["--served-model-name", "a", "b", "--enforce-eager"], ("a", "b"), id="names-then-flag"
        ),
        pytest.param(["--served-model-name"], (FIM,), id="no-value-the-model"),
    ],
)
def test_served_models(args: list[str], ids: tuple[str, ...]) -> None:
    assert served_models(FIM, args) == ids
    assert served_model(FIM, args) == ids[0]  # what `podmgr up` tells editors to send


def named_config(**fields: Any) -> Config:
    """The two pods of test_plan_set, fim's vLLM answering to two served names."""
    return build_config(
        {
            "runtime_seconds": 3600,
            "watchdog_interval_seconds": 300,
            "pods": [
                {"name": "chat", "model": CHAT, "gpu_type_id": ["A40"]},
                {
                    "name": "fim",
                    "model": FIM,
                    "gpu_type_id": ["L4"],
                    "vllm_args": NAMED,
                    "idle_timeout_seconds": 300,
                },
            ],
            **fields,
        },
        environ={},
    )


def test_the_default_upstream_of_a_pod_serves_its_served_names() -> None:
    routes = {spec.name: spec.models for spec in named_config().upstreams}
    assert routes == {"chat": [CHAT], "fim": ["fim-coder", "autocomplete"]}


def test_an_upstream_listed_for_the_pod_serves_its_served_names() -> None:
    listed = [{"name": "chat", "kind": "pod"}, {"name": "fim", "kind": "pod", "models": "*"}]
    routes = {spec.name: spec.models for spec in named_config(upstreams=listed).upstreams}
    assert routes == {"chat": [CHAT], "fim": ["fim-coder", "autocomplete"]}


def test_a_request_under_a_served_name_keeps_the_pod() -> None:
    st = both(last_request_by_model={CHAT: NOW - 10, FIM: NOW - 400})
    proxy = ProxyView(pid=1, healthy=True, last_request_by_model={"autocomplete": NOW - 20})
    actions = plan_set(named_config(), st, ObservedSet(LISTED, proxy, None, HEALTHY), NOW)
    assert not any(isinstance(a, EndPod) for a in for_pod(actions, "fim"))


def test_a_request_under_the_model_path_does_not_keep_a_pod_that_has_served_names() -> None:
    # vLLM answers 404 to the path when it serves other names: that is no use of the pod
    st = both(last_request_by_model={CHAT: NOW - 10, FIM: NOW - 1})
    actions = plan_set(named_config(), st, ObservedSet(LISTED, PROXY_UP, None, HEALTHY), NOW)
    assert any(isinstance(a, EndPod) for a in for_pod(actions, "fim"))


@pytest.mark.parametrize(
    "pods",
    [
        pytest.param(
            [{"name": "chat", "model": CHAT, "vllm_args": ["--served-model-name", "coder"]},
             {"name": "fim", "model": FIM, "vllm_args": ["--served-model-name", "coder"]}],
            id="one-served-name-twice",
        ),
        pytest.param(
            [{"name": "chat", "model": "coder"},
             {"name": "fim", "model": FIM, "vllm_args": ["--served-model-name=coder"]}],
            id="a-served-name-is-another-pods-model",
        ),
    ],
)  # fmt: skip
def test_two_pods_answering_to_one_model_id_exit_2(pods: list[dict[str, Any]]) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"pods": pods}, environ={})
    assert caught.value.exit_code == 2 and caught.value.field == "pods"
    assert "both answer to the model id 'coder'" in str(caught.value)


def test_up_names_each_pods_model_id_behind_the_one_base_url() -> None:
    lines = serving_lines("http://127.0.0.1:8000/v1", named_config())
    assert lines[0] == (
        f"serving: base URL http://127.0.0.1:8000/v1, models {CHAT} (pod chat), fim-coder (pod fim)"
    )
    assert f'"model": "{CHAT}"' in lines[2]
