"""One question through the path a user's tools take: the real local proxy, then the pod.

The proxy is started as the watchdog starts it (`python -m podmgr proxy --config ...`,
podmgr/watchdog/proxy_supervisor.py) on a free loopback port, with a config and a state
file of its own in a temporary directory: the state names the pod as the watchdog's ready
pod (podmgr/state.py PodRecord), so the proxy forwards to the pod's URL with the pod's vLLM
key. Its cache is off, so the answer comes from the pod. The proxy is stopped afterwards.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from podmgr.config import load_config
from podmgr.errors import ProxyError
from podmgr.state import ONE_POD, PodRecord, Session, State, StateStore
from podmgr.watchdog.clock import SystemClock
from podmgr.watchdog.proxy_supervisor import ProxySupervisor

__all__ = ["QUESTION", "Answer", "ask_through_proxy"]

QUESTION = "In one short sentence: what is a GPU?"
ANSWER_TIMEOUT_SECONDS = 120.0
PROXY_START_SECONDS = 60.0
FIRST_WORDS = 8


@dataclass(frozen=True)
class Answer:
    """The answer's first words, how long it took, and where the proxy listened."""

    first_words: str
    latency_seconds: float
    proxy_url: str


def ask_through_proxy(
    *, pod_id: str, pod_name: str, gpu_type_id: str, endpoint_url: str, vllm_key: str,
    model: str, session: Session,
) -> Answer:  # fmt: skip
    """Run the proxy for this pod, ask one chat completion through it, stop the proxy."""
    with tempfile.TemporaryDirectory(prefix="podmgr-doctor-") as workdir:
        config_path = _write_proxy_config(Path(workdir), model)
        config = load_config(config_path)
        record = PodRecord(
            id=pod_id, name=pod_name, gpu_type_id=gpu_type_id, created_at=session.started_at,
            ready_at=time.time(), phase="ready", endpoint_url=endpoint_url, vllm_api_key=vllm_key,
        )  # fmt: skip
        StateStore(config.state_path).save(State(session=session, pods={ONE_POD: record}))
        supervisor = ProxySupervisor(config, config_path, SystemClock())
        pid = supervisor.start()
        try:
            return _ask(config.proxy.url, model)
        finally:
            supervisor.stop(pid)


def _write_proxy_config(workdir: Path, model: str) -> Path:
    path = workdir / "pod_config.json"
    values: dict[str, Any] = {
        "model": model,
        "proxy_host": "127.0.0.1",
        "proxy_port": _free_port(),
        "state_file": "state.json",
        "cache_dir": "cache",
        "cache_mode": "off",
        "log_level": "warning",
        "proxy_start_timeout_seconds": PROXY_START_SECONDS,
    }
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ask(proxy_url: str, model: str) -> Answer:
    """`POST /v1/chat/completions` through the proxy; ProxyError for anything but an answer."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 32,
        "temperature": 0,
    }
    started = time.monotonic()
    try:
        response = httpx.post(
            proxy_url + "/v1/chat/completions", json=body, timeout=ANSWER_TIMEOUT_SECONDS
        )
    except httpx.HTTPError as error:
        raise ProxyError(f"the proxy did not answer: {type(error).__name__}") from error
    latency = time.monotonic() - started
    if response.status_code != 200:
        raise ProxyError(f"the proxy answered {response.status_code}: {response.text[:200]}")
    try:
        text = str(response.json()["choices"][0]["message"]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        shown = response.text[:200]
        raise ProxyError(f"the proxy's answer is not a chat completion: {shown}") from None
    words = " ".join(text.split()[:FIRST_WORDS])
    return Answer(words, latency, proxy_url)
