"""Several models behind one proxy (issue 23): two pods, a big and a small model, in front
of one simulator. Each model reaches its own pod (the simulator's per-pod request log),
the openai SDK lists both, a third model is OpenAI's 404 `model_not_found`, and a cold
pod's model is still listed while a request for it is refused without reaching the other."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest
from simkit import SimUpstream, write_pods_state

from podmgr.sim.process import wait_until

from .conftest import BIG, SMALL
from .proxykit import ProxyProcess, get_json

PODS = [
    {"name": "chat", "model": BIG, "gpu_type_id": "NVIDIA A100 80GB PCIe"},
    {"name": "fast", "model": SMALL},
]


@pytest.fixture
def proxy(two_pods: dict[str, SimUpstream], make_proxy: Any) -> ProxyProcess:
    made: ProxyProcess = make_proxy(start=False, pods=PODS, cache_mode="off")
    write_pods_state(made.state_path, two_pods)
    return made.start()


def _client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0, timeout=30)


def _chat_bodies(upstream: SimUpstream) -> list[str]:
    recent = upstream.traffic()["recent"]
    return [r["body"] for r in recent if r["path"] == "/v1/chat/completions"]


def test_each_model_reaches_its_own_pod(
    proxy: ProxyProcess, two_pods: dict[str, SimUpstream]
) -> None:
    client = _client(proxy)
    for name, model in (("chat", BIG), ("fast", SMALL)):
        tag = f"for {name} {uuid.uuid4().hex}"
        answer = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": tag}], max_tokens=3
        )
        assert answer.headers["x-upstream"] == name
        assert answer.parse().model == model
        other = two_pods["fast" if name == "chat" else "chat"]
        assert any(tag in body for body in _chat_bodies(two_pods[name]))
        assert not any(tag in body for body in _chat_bodies(other))


def test_the_sdk_lists_both_models_and_a_third_is_not_found(proxy: ProxyProcess) -> None:
    client = _client(proxy)
    assert sorted(model.id for model in client.models.list()) == sorted([BIG, SMALL])
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="sim/third", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    assert caught.value.code == "model_not_found"


def test_health_shows_each_pod_and_the_last_request_by_model(
    proxy: ProxyProcess, two_pods: dict[str, SimUpstream]
) -> None:
    _client(proxy).chat.completions.create(
        model=SMALL, messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    health = get_json(proxy.url + "/health")
    assert set(health["last_request_by_model"]) == {SMALL}
    assert {name: pod["id"] for name, pod in health["pods"].items()} == {
        name: upstream.pod_id for name, upstream in two_pods.items()
    }
    assert [(u["name"], u["available"]) for u in health["upstreams"]] == [
        ("chat", True),
        ("fast", True),
    ]


def test_a_cold_pod_is_listed_and_its_requests_never_reach_the_other(
    two_pods: dict[str, SimUpstream], make_proxy: Any, tmp_path: Path
) -> None:
    proxy: ProxyProcess = make_proxy(start=False, pods=PODS, cache_mode="off")
    write_pods_state(proxy.state_path, {"chat": two_pods["chat"]})  # fast is cold
    proxy.start()
    client = _client(proxy)
    assert sorted(model.id for model in client.models.list()) == sorted([BIG, SMALL])
    before = len(_chat_bodies(two_pods["chat"]))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model=SMALL, messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    assert caught.value.status_code == 503
    assert len(_chat_bodies(two_pods["chat"])) == before
    assert proxy.health()["pods"]["fast"] is None


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_dashboard_and_metrics_show_each_pod_by_name(
    two_pods: dict[str, SimUpstream], make_proxy: Any
) -> None:
    proxy: ProxyProcess = make_proxy(start=False, pods=PODS, cache_mode="off")
    write_pods_state(proxy.state_path, {"chat": two_pods["chat"]})  # fast is cold
    proxy.start()
    rows = dict(
        line.split(maxsplit=2)[1:] if line.startswith("Pod ") else ("", "")
        for line in _text(proxy.url + "/dashboard").splitlines()
    )
    assert rows["chat"].startswith(f"{two_pods['chat'].pod_id} (ready")
    assert rows["fast"] == "none"
    metrics = _text(proxy.url + "/metrics")
    assert 'podmgr_pods_phase{phase="ready",pod="chat"} 1.0' in metrics
    assert 'podmgr_pods_phase{phase="none",pod="fast"} 1.0' in metrics


def test_each_pod_prewarms_the_lines_of_its_own_model(
    two_pods: dict[str, SimUpstream], make_proxy: Any, tmp_path: Path
) -> None:
    tags = {name: f"prewarm {name} {uuid.uuid4().hex}" for name in two_pods}
    lines = [
        {"path": "/v1/chat/completions", "body": {"model": model, "max_tokens": 2,
         "messages": [{"role": "user", "content": tags[name]}], "temperature": 0}}
        for name, model in (("chat", BIG), ("fast", SMALL))
    ]  # fmt: skip
    prewarm = tmp_path / "prewarm.jsonl"
    prewarm.write_text("".join(json.dumps(line) + "\n" for line in lines))
    proxy: ProxyProcess = make_proxy(start=False, pods=PODS, prewarm_cache=str(prewarm))
    write_pods_state(proxy.state_path, two_pods)
    proxy.start()
    wait_until(lambda: proxy.health()["cache"]["entries"] >= 2, "both pods' prewarm", interval=0.1)
    for name, upstream in two_pods.items():
        bodies = " ".join(_chat_bodies(upstream))
        other = "fast" if name == "chat" else "chat"
        assert tags[name] in bodies and tags[other] not in bodies
