"""The model ids a pod's vLLM answers to: what clients send, what the proxy routes to the
pod and what the watchdog's per-pod idle rule looks up in the proxy's requests by model.

Its own module (it imports only the errors) because the config's sections, its upstreams,
its pods and the CLI all read it, and `sections` already imports `upstreams`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from podmgr.errors import ConfigError

__all__ = ["check_served_ids", "served_models"]


class _Pod(Protocol):
    name: str
    model: str
    vllm_args: list[str]


def served_models(model: str, vllm_args: Sequence[str]) -> tuple[str, ...]:
    """The model ids a pod's vLLM answers to, the first one what its answers name: the
    names after `--served-model-name` (vLLM: "If multiple names are provided, the server
    will respond to any of the provided names. The model name in the model field of a
    response will be the first name in this list. If not specified, the model name will be
    the same as the `--model` argument", vllm/engine/arg_utils.py), else the model. The
    proxy routes these ids to the pod and the watchdog's idle rule reads their requests."""
    for index, arg in enumerate(vllm_args):
        if arg.startswith("--served-model-name="):
            return tuple(arg.split("=", 1)[1].split()) or (model,)
        if arg == "--served-model-name":
            names = []
            for value in vllm_args[index + 1 :]:
                if value.startswith("-"):
                    break
                names.append(value)
            return tuple(names) or (model,)
    return (model,)


def check_served_ids(pods: Sequence[_Pod]) -> None:
    """ConfigError (field `pods`) when two pods answer to one model id and one of them has
    it from `--served-model-name`: the proxy routes a request by the id it names (the same
    `model` twice is check_pod_set's own error)."""
    owner: dict[str, tuple[str, bool]] = {}
    for pod in pods:
        for model_id in served_models(pod.model, pod.vllm_args):
            named = model_id != pod.model
            other, other_named = owner.get(model_id, (pod.name, False))
            if other != pod.name and (named or other_named):
                raise ConfigError(
                    f"pods {other!r} and {pod.name!r} both answer to the model id "
                    f"{model_id!r} (--served-model-name); requests are routed by model",
                    field="pods",
                )
            owner[model_id] = (pod.name, named)
