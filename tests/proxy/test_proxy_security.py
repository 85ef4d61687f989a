"""Keys, TLS, the body limit, secrets kept out of every output, and clean signal exits."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from simkit import SimUpstream

from podmgr.config import build_config
from podmgr.errors import ConfigError
from podmgr.sim.process import wait_until

from .proxykit import VLLM_KEY, self_signed

PROXY_KEY = "test-proxy-key-not-real"


def _chat_body() -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": uuid.uuid4().hex}]}


def test_keys_required_when_configured(make_proxy: Any, upstream: SimUpstream) -> None:
    proxy = make_proxy(
        upstream_url=upstream.url, upstream_api_key=VLLM_KEY, proxy_api_keys=[PROXY_KEY]
    )
    url = proxy.url + "/v1/chat/completions"
    missing = httpx.post(url, json=_chat_body())
    wrong = httpx.post(url, json=_chat_body(), headers={"authorization": "Bearer nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(proxy.url + "/metrics").status_code == 401
    assert httpx.get(proxy.url + "/health").status_code == 200  # liveness stays open
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=PROXY_KEY, max_retries=0)
    answer = client.chat.completions.create(**_chat_body())
    assert answer.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=proxy.url + "/v1", api_key="bad", max_retries=0).models.list()


def test_non_loopback_requires_keys() -> None:
    with pytest.raises(ConfigError):
        build_config({"proxy_host": "0.0.0.0"})
    assert build_config({"proxy_host": "0.0.0.0", "proxy_api_keys": [PROXY_KEY]})


@pytest.mark.parametrize("keys", [[""], ["   "], ["k"], ["x" * 15], [PROXY_KEY, ""]])
def test_blank_and_short_proxy_keys_are_refused(keys: list[str]) -> None:
    """A blank key let a request without any Authorization header in; a short one is
    guessed. Refused on any host, named, with the minimum and the reason."""
    for host in ("0.0.0.0", "127.0.0.1"):
        with pytest.raises(ConfigError) as caught:
            build_config({"proxy_host": host, "proxy_api_keys": keys})
        message = str(caught.value.message)
        assert "proxy_api_keys" in message + str(caught.value.field), message
        assert "16" in message and "open GPU" in message, message


def test_config_validate_refuses_a_blank_key_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "pod_config.json"
    path.write_text(json.dumps({"proxy_host": "0.0.0.0", "proxy_api_keys": [""]}))
    done = subprocess.run(
        [sys.executable, "-m", "podmgr", "config", "validate", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "proxy_api_keys" in done.stderr and "16" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_tls(make_proxy: Any, upstream: SimUpstream, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    proxy = make_proxy(
        start=False, upstream_url=upstream.url, upstream_api_key=VLLM_KEY,
        use_https=True, ssl_cert=str(cert), ssl_key=str(key),
    )  # fmt: skip
    proxy.start(context=context)
    assert proxy.url.startswith("https://")
    with httpx.Client(verify=context) as http:
        client = openai.OpenAI(
            base_url=proxy.url + "/v1", api_key="x", max_retries=0, http_client=http
        )
        assert client.chat.completions.create(**_chat_body()).choices
    with pytest.raises(httpx.HTTPError):
        httpx.get(proxy.url.replace("https", "http") + "/health")


def test_body_limit(make_proxy: Any, upstream: SimUpstream) -> None:
    proxy = make_proxy(upstream_url=upstream.url, upstream_api_key=VLLM_KEY, max_body_bytes=2048)
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 4096}]}
    response = httpx.post(proxy.url + "/v1/chat/completions", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    small = httpx.post(proxy.url + "/v1/chat/completions", json=_chat_body())
    assert small.status_code == 200


def test_no_secret_in_logs_metrics_dashboard_or_errors(
    make_proxy: Any, upstream: SimUpstream
) -> None:
    proxy = make_proxy(
        upstream_url=upstream.url, upstream_api_key=VLLM_KEY, proxy_api_keys=[PROXY_KEY]
    )
    auth = {"authorization": f"Bearer {PROXY_KEY}"}
    upstream.set_fault("upstream_error", status=500, count=1)
    failed = httpx.post(proxy.url + "/v1/chat/completions", json=_chat_body(), headers=auth)
    assert failed.status_code == 502
    httpx.post(proxy.url + "/v1/chat/completions", json=_chat_body(), headers=auth)
    outputs = [
        failed.text,
        httpx.get(proxy.url + "/metrics", headers=auth).text,
        httpx.get(proxy.url + "/dashboard", headers=auth).text,
        httpx.get(proxy.url + "/dashboard", headers={**auth, "accept": "text/html"}).text,
        httpx.get(proxy.url + "/health").text,
    ]
    proxy.stop()
    outputs.append(proxy.log_text())
    for text in outputs:
        assert VLLM_KEY not in text and PROXY_KEY not in text


def test_debug_cache_only_with_profiling(make_proxy: Any, upstream: SimUpstream) -> None:
    plain = make_proxy(upstream_url=upstream.url)
    assert httpx.get(plain.url + "/debug/cache").status_code == 404
    profiled = make_proxy(
        upstream_url=upstream.url, upstream_api_key=VLLM_KEY, enable_profiling=True
    )
    httpx.post(profiled.url + "/v1/chat/completions", json=_chat_body())
    # The answer is sent before its entry is stored: wait for the store, then read.
    view = wait_until(
        lambda: (v := httpx.get(profiled.url + "/debug/cache").json())["in_flight"] == 0 and v,
        "the proxy's pending cache write (/debug/cache in_flight 0)",
    )
    assert view["entries"] == 1 and view["hot_entries"] == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_exit_zero(make_proxy: Any, upstream: SimUpstream, sig: int) -> None:
    proxy = make_proxy(upstream_url=upstream.url)
    assert httpx.get(proxy.url + "/health").status_code == 200
    assert proxy.stop(sig) == 0


def test_unusable_cache_dir_still_forwards(
    make_proxy: Any, upstream: SimUpstream, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proxy = make_proxy(
        upstream_url=upstream.url, upstream_api_key=VLLM_KEY, cache_dir=str(blocker / "c")
    )
    assert proxy.health()["cache"]["writable"] is False
    body = _chat_body()
    for _ in range(2):
        response = httpx.post(proxy.url + "/v1/chat/completions", json=body)
        assert response.status_code == 200 and response.headers["x-cache"] == "MISS"
