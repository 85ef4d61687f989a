"""The simulated vLLM OpenAI server of one pod: routes, request checks and error bodies.

It answers what vLLM answers for a serving engine: `/health`, `/version`, `/v1/models`,
`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`. When the pod's env has
`VLLM_API_KEY` (or its args `--api-key`), `/v1/*` require `Authorization: Bearer <key>`
and answer 401 `{"error": "Unauthorized"}` otherwise; other routes stay open, as in vLLM.
A `model` other than the served one is 404, as in vLLM. Whether the pod is up at all is
the edge's business (podmgr/sim/edge.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from podmgr.sim.completions import CompletionJob, answer
from podmgr.sim.pods import SimPod
from podmgr.sim.reply import Reply, json_reply, openai_error
from podmgr.sim.textgen import count_tokens, embed, generate, request_created, request_digest

__all__ = ["VLLM_VERSION", "serve_vllm"]

VLLM_VERSION = "0.11.0+sim"
_ROUTES: Mapping[str, str] = {
    "/health": "GET",
    "/version": "GET",
    "/v1/models": "GET",
    "/v1/chat/completions": "POST",
    "/v1/completions": "POST",
    "/v1/embeddings": "POST",
}
_MAX_N = 16


class BadRequest(Exception):
    """A request vLLM rejects; carries the reply to send."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _unauthorized(pod: SimPod, headers: Mapping[str, str]) -> bool:
    key = pod.vllm_api_key
    return bool(key) and headers.get("Authorization", "") != f"Bearer {key}"


async def serve_vllm(
    pod: SimPod, method: str, path: str, headers: Mapping[str, str], body: bytes, delay: float
) -> Reply:
    """vLLM's answer to one request on a serving pod."""
    expected = _ROUTES.get(path)
    if expected is None:
        return json_reply({"detail": "Not Found"}, 404)
    if path.startswith("/v1/") and _unauthorized(pod, headers):
        return json_reply({"error": "Unauthorized"}, 401)
    if method != expected:
        return json_reply({"detail": "Method Not Allowed"}, 405)
    if path == "/health":
        return Reply(200, content_type="text/plain")
    if path == "/version":
        return json_reply({"version": VLLM_VERSION})
    if path == "/v1/models":
        return json_reply(models_body(pod))
    try:
        data = _json_object(body)
        _check_model(pod, data)
        if path == "/v1/embeddings":
            return embeddings_reply(pod, data)
        return await answer(
            completion_job(pod, data, chat=path.endswith("/chat/completions")), delay
        )
    except BadRequest as error:
        return error.reply


def models_body(pod: SimPod) -> dict[str, Any]:
    model = {
        "id": pod.model,
        "object": "model",
        "created": int(pod.created_at),
        "owned_by": "vllm",
        "root": pod.model,
        "parent": None,
        "max_model_len": pod.max_model_len,
        "permission": [],
    }
    return {"object": "list", "data": [model]}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(openai_error(f"JSON decode error: {error}")) from None
    if not isinstance(data, dict):
        raise BadRequest(openai_error("The request body must be a JSON object"))
    return data


def _check_model(pod: SimPod, data: dict[str, Any]) -> None:
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        # vLLM's request models type `model` as a string; its RequestValidationError
        # handler (vllm/entrypoints/openai/api_server.py) answers such a body with a 400.
        raise BadRequest(openai_error("model must be a string", param="model"))
    if model is not None and model != pod.model:
        raise BadRequest(
            openai_error(f"The model `{model}` does not exist.", 404, "model", "NotFoundError")
        )


def _int_field(data: dict[str, Any], name: str, low: int, high: int | None = None) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequest(openai_error(f"{name} must be an integer {bound}", param=name))
    return value


def _prompt_texts(data: dict[str, Any], chat: bool) -> list[str]:
    if chat:
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest(openai_error("messages must be a non-empty list", param="messages"))
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise BadRequest(openai_error("each message needs a string role", param="messages"))
        return [orjson.dumps(messages).decode()]
    prompt = data.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        return [" ".join(map(str, prompt))]
    raise BadRequest(openai_error("prompt must be a string or a list of strings", param="prompt"))


def _stops(data: dict[str, Any]) -> list[str]:
    stop = data.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise BadRequest(openai_error("stop must be a string or a list of strings", param="stop"))


def completion_job(pod: SimPod, data: dict[str, Any], chat: bool) -> CompletionJob:
    """Validate a (chat) completion request and generate its choices."""
    prompts = _prompt_texts(data, chat)
    n = _int_field(data, "n", 1, _MAX_N) or 1
    max_tokens = _int_field(data, "max_tokens", 1)
    if chat:
        max_tokens = _int_field(data, "max_completion_tokens", 1) or max_tokens
    prompt_tokens = sum(count_tokens(text) for text in prompts)
    if prompt_tokens + (max_tokens or 0) > pod.max_model_len:
        message = (
            f"This model's maximum context length is {pod.max_model_len} tokens. However, you "
            f"requested {prompt_tokens + (max_tokens or 0)} tokens ({prompt_tokens} in the "
            f"messages, {max_tokens or 0} in the completion). Please reduce the length."
        )
        raise BadRequest(openai_error(message))
    if "stream" in data and not isinstance(data["stream"], bool):
        raise BadRequest(openai_error("stream must be a boolean", param="stream"))
    digest = request_digest(data)
    stops = _stops(data)
    count = n * len(prompts)
    generations = tuple(generate(digest, index, max_tokens, stops) for index in range(count))
    return CompletionJob(chat, pod.model, data, generations, prompt_tokens)


def embeddings_reply(pod: SimPod, data: dict[str, Any]) -> Reply:
    raw = data.get("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        inputs = list(raw)
    elif isinstance(raw, list) and raw and all(isinstance(item, int) for item in raw):
        inputs = [" ".join(map(str, raw))]
    else:
        raise BadRequest(openai_error("input must be a string or a list of strings", param="input"))
    items = [
        {"object": "embedding", "index": index, "embedding": embed(text)}
        for index, text in enumerate(inputs)
    ]
    tokens = sum(count_tokens(text) for text in inputs)
    digest = request_digest(data)
    return json_reply(
        {
            "id": "embd-" + digest[:32],
            "object": "list",
            "created": request_created(digest),
            "model": pod.model,
            "data": items,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
        }
    )
