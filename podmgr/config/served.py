"""The model ids a pod's vLLM answers to: what clients send, what the proxy routes to the
pod and what the watchdog's per-pod idle rule looks up in the proxy's requests by model.

Its own module (no imports) because the config's sections, its upstreams and the CLI all
read it, and `sections` already imports `upstreams`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["served_models"]


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
