"""`podmgr up`'s last lines: where to point an editor, with the model id it must ask for.

An editor's default model ("gpt-4o") gets "The model `gpt-4o` does not exist" from vLLM
(issue 22), so the base URL is never shown without the model id the pod serves: the
config's model, or vLLM's `--served-model-name` when the config's vllm_args give one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from podmgr.config.served import served_models

if TYPE_CHECKING:
    from podmgr.config import Config

__all__ = ["served_model", "serving_lines"]

EDITORS = "Continue, Cline, Kilo Code, CodeGPT"


def served_model(model: str, vllm_args: list[str]) -> str:
    """The id clients must send: vLLM's `--served-model-name` (its first name), else the model."""
    return served_models(model, vllm_args)[0]


def serving_lines(url: str, config: Config) -> list[str]:
    """Three lines: base URL and model id, the editors' setting, and a curl to try. With
    several pods (config `pods`) the first line names each pod's model id (one base URL
    serves them all, routed by model) and the curl asks the first."""
    ids = [(pod.name, served_model(pod.model, pod.vllm_args)) for pod in config.pods]
    model = ids[0][1]
    named = ", ".join(f"{m} (pod {name})" for name, m in ids)
    shown = f"model {model}" if len(ids) == 1 else f"models {named}"
    key = "any API key" if not config.proxy.api_keys else "an API key from proxy.api_keys"
    auth = "" if not config.proxy.api_keys else " -H 'Authorization: Bearer <key>'"
    return [
        f"serving: base URL {url}, {shown}",
        f'  editors ({EDITORS}): provider "OpenAI compatible", that base URL and model, {key}',
        f"  try: curl {url}/chat/completions -H 'Content-Type: application/json'{auth} "
        f'-d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Say hi"}}]}}\'',
    ]
