"""A call made alone (podmgr/proxy/forward/alone.py): the proxy's own client against the
simulated vLLM, then the same through a real proxy with the cache off and the `openai` SDK.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx
import openai
import orjson
from simkit import SimUpstream

from podmgr.proxy.forward.alone import AloneCall, call_alone
from podmgr.proxy.forward.flight import UpstreamCall
from podmgr.proxy.upstream.client import UpstreamClient
from podmgr.proxy.upstream.router import retryable

from .proxykit import VLLM_KEY, free_port


def _call(url: str, **body: Any) -> AloneCall:
    chat = {"model": "m", "messages": [{"role": "user", "content": uuid.uuid4().hex}], **body}
    call = UpstreamCall(
        "chat/completions",
        url + "/v1/chat/completions",
        orjson.dumps(chat),
        {"authorization": f"Bearer {VLLM_KEY}", "content-type": "application/json"},
        "local",
    )

    async def send() -> AloneCall:
        client = UpstreamClient()
        try:
            return await call_alone(client, call)
        finally:
            await client.close()

    return asyncio.run(send())


def test_an_answer_is_read_whole_with_its_usage(upstream: SimUpstream) -> None:
    done = _call(upstream.url, max_tokens=5)
    answer = orjson.loads(done.body)
    assert done.failure is None and done.content_type.startswith(b"application/json")
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"]
    usage = answer["usage"]
    assert done.tokens == (usage["prompt_tokens"], usage["completion_tokens"])
    assert done.tokens[1] == 5 and done.upstream_seconds > 0


def test_a_status_or_a_dead_port_is_a_failure_and_nothing_else(upstream: SimUpstream) -> None:
    upstream.set_fault("upstream_error", status=503, count=1)
    refused = _call(upstream.url)
    assert refused.failure is not None and retryable(refused.failure)
    assert refused.body == b"" and refused.tokens == (0, 0)
    dead = _call(f"http://127.0.0.1:{free_port()}")
    assert dead.failure is not None and dead.failure.code == "upstream_unreachable"
    assert retryable(dead.failure)


def test_through_the_proxy_with_the_cache_off(make_proxy: Any, upstream: SimUpstream) -> None:
    """Sent as it is to an upstream with no edge limit, answered whole, and its upstream
    side counted as a flight's would be: tokens, latency, one call per request."""
    proxy = make_proxy(upstream_url=upstream.url, upstream_api_key=VLLM_KEY, cache_mode="off")
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0)
    calls_before = int(upstream.traffic()["model_calls"])
    completions = 0
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": uuid.uuid4().hex}], max_tokens=4
        )
        answer = raw.parse()
        assert raw.headers["x-cache"] == "BYPASS" and raw.headers["x-upstream"]
        assert answer.choices[0].message.content and answer.usage is not None
        completions += answer.usage.completion_tokens
    assert int(upstream.traffic()["model_calls"]) == calls_before + 3
    metrics = httpx.get(proxy.url + "/metrics", timeout=10).text
    assert _value(metrics, 'podmgr_proxy_tokens_total{kind="completion"}') == completions
    assert _value(metrics, "podmgr_proxy_upstream_latency_seconds_count") == 3


def _value(metrics: str, series: str) -> float:
    """The sum of every sample of `series` (with any further labels)."""
    name, _, labels = series.partition("{")
    pattern = re.escape(name) + r"\{?([^}\s]*)\}?\s+([0-9.e+-]+)$"
    total = 0.0
    for line in metrics.splitlines():
        match = re.match(pattern, line)
        if match and all(part in match.group(1) for part in labels.rstrip("}").split(",") if part):
            total += float(match.group(2))
    return total
