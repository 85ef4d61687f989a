"""The real `openai` SDK against a real proxy process in front of the simulator."""

from __future__ import annotations

import asyncio
import uuid

import openai
import pytest
from simkit import SimUpstream

from .proxykit import ProxyProcess


def _client(proxy: ProxyProcess, **options: object) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=proxy.url + "/v1", api_key="anything", max_retries=0, timeout=30, **options
    )


def _prompt() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"write a function {uuid.uuid4().hex}"}]


def test_sync_chat_completion(sim_proxy: ProxyProcess) -> None:
    client = _client(sim_proxy)
    answer = client.chat.completions.create(model="sim-model", messages=_prompt(), max_tokens=8)
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0


def test_streaming_matches_non_streaming(sim_proxy: ProxyProcess) -> None:
    client = _client(sim_proxy)
    messages = _prompt()
    whole = client.chat.completions.create(
        model="sim-model", messages=messages, max_tokens=12, temperature=0
    )
    # Same answer from the cache, streamed: its text equals the assembled JSON's.
    stream = client.chat.completions.create(
        model="sim-model", messages=messages, max_tokens=12, temperature=0, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == whole.choices[0].message.content


def test_stream_with_usage_then_fresh_stream_without(sim_proxy: ProxyProcess) -> None:
    client = _client(sim_proxy)
    chunks = list(
        client.chat.completions.create(
            model="sim-model", messages=_prompt(), max_tokens=6, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(chunk.usage is None for chunk in chunks[:-1])
    plain = list(
        client.chat.completions.create(
            model="sim-model", messages=_prompt(), max_tokens=6, stream=True
        )
    )
    assert plain and all(chunk.choices for chunk in plain)


def test_text_completions_embeddings_and_models(sim_proxy: ProxyProcess) -> None:
    client = _client(sim_proxy)
    completion = client.completions.create(model="sim-model", prompt="def add(a, b):", max_tokens=5)
    assert completion.object == "text_completion" and completion.choices[0].text
    streamed = "".join(
        chunk.choices[0].text
        for chunk in client.completions.create(
            model="sim-model", prompt="def add(a, b):", max_tokens=5, stream=True
        )
        if chunk.choices
    )
    assert streamed == completion.choices[0].text
    models = client.models.list()
    assert models.data[0].id == "sim-model"
    assert models.data[0].model_extra and models.data[0].model_extra["max_model_len"] > 0


def test_embeddings(sim_proxy: ProxyProcess) -> None:
    client = _client(sim_proxy)
    try:
        result = client.embeddings.create(model="sim-model", input="hello")
    except openai.NotFoundError:
        pytest.skip("the simulator serves no embeddings for this model")
    assert result.data and len(result.data[0].embedding) > 0


def test_async_client_concurrent(sim_proxy: ProxyProcess) -> None:
    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=sim_proxy.url + "/v1", api_key="x", max_retries=0)
        async with client:
            answers = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="sim-model", messages=_prompt(), max_tokens=4
                    )
                    for _ in range(5)
                )
            )
        return [answer.choices[0].message.content or "" for answer in answers]

    texts = asyncio.run(main())
    assert len(texts) == 5 and all(texts)


def test_async_streaming(sim_proxy: ProxyProcess) -> None:
    async def main() -> int:
        client = openai.AsyncOpenAI(base_url=sim_proxy.url + "/v1", api_key="x", max_retries=0)
        async with client:
            stream = await client.chat.completions.create(
                model="sim-model", messages=_prompt(), max_tokens=5, stream=True
            )
            return len([chunk async for chunk in stream])

    assert asyncio.run(main()) >= 2


def test_sdk_error_for_unknown_model(sim_proxy: ProxyProcess) -> None:
    client = _client(sim_proxy)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="no-such-model", messages=_prompt())
    assert 400 <= caught.value.status_code < 500
    assert isinstance(caught.value.body, dict) and "message" in caught.value.body


def test_sdk_error_for_unknown_route(sim_proxy: ProxyProcess) -> None:
    client = _client(sim_proxy)
    with pytest.raises(openai.NotFoundError):
        client.get("/no-such-route", cast_to=object)


def test_client_key_is_not_forwarded(sim_pod: SimUpstream, sim_proxy: ProxyProcess) -> None:
    """The client's key is replaced by the pod's: a wrong client key still works upstream."""
    client = openai.OpenAI(base_url=sim_proxy.url + "/v1", api_key="wrong-key", max_retries=0)
    assert client.models.list().data
