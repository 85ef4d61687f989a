"""The simulated vLLM OpenAI server of one pod: routes, request checks and error bodies.

It answers what vLLM v0.8.5 answers for a serving engine of a generative model
(vllm/entrypoints/openai/api_server.py): `/health`, `/ping`, `/version`, `/metrics`,
`/v1/models`, `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/invocations`
(SageMaker's route: a body with `messages` is a chat completion, any other a completion),
`/tokenize`, `/detokenize`, and `/pooling`, `/score`, `/v1/score`, `/rerank`, `/v1/rerank`,
`/v2/rerank`, which a generative model answers with a 400 ("The model does not support ...
API"). Errors are vLLM's flat ErrorResponse (podmgr/sim/reply.py `vllm_error`). When the
pod's env has `VLLM_API_KEY` (or its args `--api-key`), paths starting with `/v1` require
`Authorization: Bearer <key>` and answer 401 `{"error": "Unauthorized"}` otherwise; every
other route answers anyone, as in vLLM v0.8.5 (RUNPOD_FACTS.md, "vLLM v0.8.5 as it is";
a guard-run pod puts its guard's middleware in front: podmgr/sim/edge.py). A `model` other
than the served one is 404, as in vLLM. Whether the pod is up at all is the edge's business
(podmgr/sim/edge.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from podmgr.sim.completions import CompletionJob, answer
from podmgr.sim.pods import SimPod
from podmgr.sim.reply import Reply, json_reply, vllm_error
from podmgr.sim.textgen import (
    count_tokens,
    detokenize,
    embed,
    generate,
    request_created,
    request_digest,
    token_ids,
)

__all__ = ["ENGINE_PATHS", "VLLM_VERSION", "serve_vllm"]

VLLM_VERSION = "0.8.5"
_GET, _POST = frozenset({"GET"}), frozenset({"POST"})
_ROUTES: Mapping[str, frozenset[str]] = {
    "/health": _GET,
    "/ping": frozenset({"GET", "POST"}),
    "/version": _GET,
    "/metrics": _GET,
    "/v1/models": _GET,
    "/v1/chat/completions": _POST,
    "/v1/completions": _POST,
    "/v1/embeddings": _POST,
    "/invocations": _POST,
    "/tokenize": _POST,
    "/detokenize": _POST,
    "/pooling": _POST,
    "/score": _POST,
    "/v1/score": _POST,
    "/rerank": _POST,
    "/v1/rerank": _POST,
    "/v2/rerank": _POST,
}
# What a generative model's server answers on the routes of other tasks (api_server.py).
_UNSUPPORTED: Mapping[str, str] = {
    "/pooling": "The model does not support Pooling API",
    "/score": "The model does not support Score API",
    "/v1/score": "The model does not support Score API",
    "/rerank": "The model does not support Rerank (Score) API",
    "/v1/rerank": "The model does not support Rerank (Score) API",
    "/v2/rerank": "The model does not support Rerank (Score) API",
}
# Routes whose handler calls the engine (a dead V1 engine fails them: podmgr/sim/edge.py).
ENGINE_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/invocations", *_UNSUPPORTED}
)
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
    pod: SimPod,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    delay: float,
    metrics: Callable[[], str] = lambda: "",
) -> Reply:
    """vLLM's answer to one request on a serving pod; `metrics` renders `/metrics`."""
    methods = _ROUTES.get(path)
    if methods is None:
        return json_reply({"detail": "Not Found"}, 404)
    if path.startswith("/v1") and _unauthorized(pod, headers):
        return json_reply({"error": "Unauthorized"}, 401)
    if method not in methods:
        return json_reply({"detail": "Method Not Allowed"}, 405)
    if path in ("/health", "/ping"):
        return Reply(200, content_type="text/plain")
    if path == "/version":
        return json_reply({"version": VLLM_VERSION})
    if path == "/metrics":
        return Reply(200, metrics().encode(), content_type="text/plain; version=0.0.4")
    if path == "/v1/models":
        return json_reply(models_body(pod))
    try:
        data = _json_object(body)
        _check_model(pod, data)
        if path in _UNSUPPORTED:
            return vllm_error(_UNSUPPORTED[path])
        if path == "/tokenize":
            return _tokenize(pod, data)
        if path == "/detokenize":
            return _detokenize(data)
        if path == "/v1/embeddings":
            return embeddings_reply(pod, data)
        chat = path.endswith("/chat/completions") or (path == "/invocations" and "messages" in data)
        return await answer(completion_job(pod, data, chat=chat), delay)
    except BadRequest as error:
        return error.reply


def _tokenize(pod: SimPod, data: dict[str, Any]) -> Reply:
    """POST /tokenize: `prompt` or chat `messages` -> {count, max_model_len, tokens}."""
    text = _prompt_texts(data, chat="messages" in data)[0]
    tokens = token_ids(text)
    body = {"count": len(tokens), "max_model_len": pod.max_model_len, "tokens": tokens}
    return json_reply({**body, "token_strs": None})


def _detokenize(data: dict[str, Any]) -> Reply:
    tokens = data.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        raise BadRequest(vllm_error("tokens must be a list of integers", param="tokens"))
    return json_reply({"prompt": detokenize(tokens)})


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
        raise BadRequest(vllm_error(f"JSON decode error: {error}")) from None
    if not isinstance(data, dict):
        raise BadRequest(vllm_error("The request body must be a JSON object"))
    return data


def _check_model(pod: SimPod, data: dict[str, Any]) -> None:
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        # vLLM's request models type `model` as a string; its RequestValidationError
        # handler (vllm/entrypoints/openai/api_server.py) answers such a body with a 400.
        raise BadRequest(vllm_error("model must be a string", param="model"))
    if model is not None and model != pod.model:
        # Each pod serves its one model; any other is vLLM's 404 (serving_engine.py
        # `_check_model`: "The model `x` does not exist.", NotFoundError, HTTPStatus.NOT_FOUND),
        # so a proxy that routes a model to the wrong pod of several is seen at once.
        raise BadRequest(
            vllm_error(f"The model `{model}` does not exist.", 404, "model", "NotFoundError")
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
        raise BadRequest(vllm_error(f"{name} must be an integer {bound}", param=name))
    return value


def _prompt_texts(data: dict[str, Any], chat: bool) -> list[str]:
    if chat:
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest(vllm_error("messages must be a non-empty list", param="messages"))
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise BadRequest(vllm_error("each message needs a string role", param="messages"))
        return [orjson.dumps(messages).decode()]
    prompt = data.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        return [" ".join(map(str, prompt))]
    raise BadRequest(vllm_error("prompt must be a string or a list of strings", param="prompt"))


def _stops(data: dict[str, Any]) -> list[str]:
    stop = data.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise BadRequest(vllm_error("stop must be a string or a list of strings", param="stop"))


def completion_job(pod: SimPod, data: dict[str, Any], chat: bool) -> CompletionJob:
    """Validate a (chat) completion request and generate its choices."""
    prompts = _prompt_texts(data, chat)
    n = _int_field(data, "n", 1, _MAX_N) or 1
    max_tokens = _int_field(data, "max_tokens", 1)
    if chat:
        max_tokens = _int_field(data, "max_completion_tokens", 1) or max_tokens
    prompt_tokens = sum(count_tokens(text) for text in prompts)
    if prompt_tokens + (max_tokens or 0) > pod.max_model_len:
        # vLLM's wording (vllm/entrypoints/openai/serving_engine.py `_validate_input`).
        message = (
            f"This model's maximum context length is {pod.max_model_len} tokens. However, you "
            f"requested {prompt_tokens + (max_tokens or 0)} tokens ({prompt_tokens} in the "
            f"messages, {max_tokens or 0} in the completion). Please reduce the length of the "
            "messages or completion."
        )
        raise BadRequest(vllm_error(message))
    if "stream" in data and not isinstance(data["stream"], bool):
        raise BadRequest(vllm_error("stream must be a boolean", param="stream"))
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
        raise BadRequest(vllm_error("input must be a string or a list of strings", param="input"))
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
