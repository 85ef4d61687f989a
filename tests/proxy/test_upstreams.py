"""Several upstreams (issue 13): config, routing, failover, cool-down, /v1/models union.

Real processes on loopback: one simulator with two serving pods. `pod` is the managed pod
(through the state file); `local` is the second pod named as an OpenAI-compatible
upstream by its URL, with its own key read from an environment variable. A dead upstream
is a closed loopback port. The client is always the official `openai` SDK.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from simkit import SimUpstream, start_pod

from podmgr.config import build_config
from podmgr.errors import ConfigError
from podmgr.sim.process import SimProcess, wait_until
from podmgr.state import PodRecord, Session, State, StateStore

from .proxykit import ProxyProcess, free_port

POD_KEY = "test-pod-key-not-real"
LOCAL_KEY = "test-local-key-not-real"
MODEL = "m"


@pytest.fixture(scope="module")
def two_pods() -> Iterator[tuple[SimUpstream, SimUpstream]]:
    """(pod, local): two serving simulated pods serving MODEL, with different keys."""
    with SimProcess(pull_seconds=0.05, load_seconds=0.05) as sim:
        yield (
            start_pod(sim, api_key=POD_KEY, model=MODEL),
            start_pod(sim, api_key=LOCAL_KEY, model=MODEL),
        )


@pytest.fixture
def pods(two_pods: tuple[SimUpstream, SimUpstream]) -> Iterator[tuple[SimUpstream, SimUpstream]]:
    two_pods[0].clear_faults()
    yield two_pods
    two_pods[0].clear_faults()


def _env() -> dict[str, str]:
    return {**os.environ, "LOCAL_KEY": LOCAL_KEY, "POD_KEY": POD_KEY}


def _local(url: str, **fields: Any) -> dict[str, Any]:
    return {"name": "local", "kind": "openai", "base_url": url, "api_key": "${LOCAL_KEY}", **fields}


def _proxy(make_proxy: Any, upstreams: list[dict[str, Any]], **fields: Any) -> ProxyProcess:
    proxy: ProxyProcess = make_proxy(start=False, upstreams=upstreams, **fields)
    return proxy.start(env=_env())


def _client(proxy: ProxyProcess) -> openai.OpenAI:
    # The client's own key is not any upstream's: it must never be forwarded.
    return openai.OpenAI(
        base_url=proxy.url + "/v1", api_key="client-key", max_retries=0, timeout=30
    )


def _ask(client: openai.OpenAI, prompt: str, **options: Any) -> tuple[str, str, str]:
    """(text, X-Upstream, X-Cache) of one chat completion."""
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=8,
        temperature=0,
        **options,
    )
    answer = raw.parse()
    return (
        answer.choices[0].message.content or "",
        raw.headers["x-upstream"],
        raw.headers["x-cache"],
    )


def _direct(upstream: SimUpstream, key: str, prompt: str) -> str:
    client = openai.OpenAI(base_url=upstream.url + "/v1", api_key=key, max_retries=0, timeout=30)
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=8, temperature=0
    )
    return answer.choices[0].message.content or ""


# --- config --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"name": "a", "kind": "openai"}, "upstreams.0"),
        ({"name": "a", "kind": "openai", "base_url": "http://x", "api_key": "sk-1"}, "api_key"),
        ({"name": "a", "kind": "openai", "base_url": "ftp://x"}, "base_url"),
        ({"name": "a b", "kind": "pod"}, "name"),
        ({"name": "a", "kind": "pod", "headers": {"Authorization": "x"}}, "headers"),
        ({"name": "a", "kind": "lambda"}, "kind"),
    ],
)
def test_invalid_upstream_names_the_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"upstreams": [entry]})
    assert field in caught.value.field


def test_two_pods_or_a_name_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="at most one"):
        build_config({"upstreams": [{"name": "a", "kind": "pod"}, {"name": "b", "kind": "pod"}]})
    twice = [{"name": "a", "kind": "pod"}, {"name": "a", "kind": "openai", "base_url": "http://x"}]
    with pytest.raises(ConfigError, match="used twice"):
        build_config({"upstreams": twice})


def test_invalid_upstreams_exit_2_from_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "pod_config.json"
    path.write_text(json.dumps({"upstreams": [{"name": "x", "kind": "openai"}]}))
    done = subprocess.run(
        [sys.executable, "-m", "podmgr", "proxy", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "upstreams.0" in done.stderr and "base_url" in done.stderr


def test_no_upstreams_is_todays_single_pod() -> None:
    config = build_config({}, environ={})
    assert [(spec.name, spec.kind) for spec in config.upstreams] == [("pod", "pod")]


# --- routing -------------------------------------------------------------------------------
def test_fallback_answers_while_the_pod_is_not_ready_then_the_pod(
    make_proxy: Any, pods: tuple[SimUpstream, SimUpstream]
) -> None:
    pod, local = pods
    proxy = _proxy(make_proxy, [{"name": "pod", "kind": "pod"}, _local(local.url)])
    client = _client(proxy)
    prompt = f"hello {uuid.uuid4().hex}"
    text, served_by, cache = _ask(client, prompt)
    assert (served_by, cache) == ("local", "MISS")
    assert text == _direct(local, LOCAL_KEY, prompt)
    assert _ask(client, prompt)[1:] == ("local", "HIT")

    pod.write_state(proxy.state_path)
    wait_until(lambda: proxy.health()["upstream"]["ready"], "the proxy to see the pod ready")
    # The fallback's cached answer is not replayed as the pod's: the key names who answered.
    assert _ask(client, prompt)[1:] == ("pod", "MISS")
    assert _ask(client, prompt)[1:] == ("pod", "HIT")
    views = {view["name"]: view for view in proxy.health()["upstreams"]}
    assert views["pod"]["requests"] >= 1 and views["local"]["requests"] >= 1
    assert LOCAL_KEY not in json.dumps(proxy.health()) and LOCAL_KEY not in proxy.log_text()


def test_dead_upstream_is_skipped_before_the_first_byte_then_cools_down(
    make_proxy: Any, pods: tuple[SimUpstream, SimUpstream]
) -> None:
    _, local = pods
    dead = {"name": "dead", "kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}"}
    proxy = _proxy(
        make_proxy,
        [dead, _local(local.url)],
        upstream_allowed_fails=2,
        upstream_cooldown_seconds=600,
        cache_mode="off",
    )
    client = _client(proxy)
    for _ in range(3):
        assert _ask(client, f"q {uuid.uuid4().hex}")[1] == "local"
    views = {view["name"]: view for view in proxy.health()["upstreams"]}
    assert views["dead"]["errors"] == 2, views  # the third request did not try it
    assert views["dead"]["cooling_down_seconds"] > 0 and not views["dead"]["available"]
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "s"}], max_tokens=4, stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def test_5xx_fails_over_and_mid_stream_failure_is_not_retried(
    make_proxy: Any, pods: tuple[SimUpstream, SimUpstream]
) -> None:
    first, local = pods
    proxy = _proxy(
        make_proxy,
        [
            {"name": "first", "kind": "openai", "base_url": first.url, "api_key": "${POD_KEY}"},
            _local(local.url),
        ],
        cache_mode="off",
    )
    client = _client(proxy)
    first.set_fault("upstream_error", status=503, count=1)
    assert _ask(client, f"q {uuid.uuid4().hex}")[1] == "local"
    assert _ask(client, f"q {uuid.uuid4().hex}")[1] == "first"

    before = local.traffic()["received"]
    first.set_fault("upstream_drop", count=1)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"long {uuid.uuid4().hex}"}],
        max_tokens=40,
        stream=True,
    )
    assert raw.headers["x-upstream"] == "first"
    with pytest.raises(openai.APIError):
        for _chunk in raw.parse():
            pass
    assert local.traffic()["received"] == before, "a stream that began was retried elsewhere"

    def first_errors() -> int:
        return int({v["name"]: v for v in proxy.health()["upstreams"]}["first"]["errors"])

    # The 503 before the first byte, then the stream that broke off: both count.
    wait_until(lambda: first_errors() == 2, "the broken stream to count as first's error")


def test_models_union_and_model_routing(
    make_proxy: Any, pods: tuple[SimUpstream, SimUpstream]
) -> None:
    pod, local = pods
    proxy = _proxy(
        make_proxy,
        [
            {"name": "pod", "kind": "pod", "models": [MODEL]},
            _local(local.url, models=["small"], model_map={"small": MODEL}),
        ],
    )
    pod.write_state(proxy.state_path)
    wait_until(lambda: proxy.health()["upstream"]["ready"], "the proxy to see the pod ready")
    client = _client(proxy)
    ids = {model.id for model in client.models.list()}
    assert {MODEL, "small"} <= ids
    raw = client.chat.completions.with_raw_response.create(
        model="small", messages=[{"role": "user", "content": "x"}], max_tokens=4
    )
    assert raw.headers["x-upstream"] == "local"
    assert _ask(client, f"q {uuid.uuid4().hex}")[1] == "pod"

    async def both() -> list[str]:
        aclient = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
        answers = await asyncio.gather(
            *(
                aclient.chat.completions.create(
                    model=name, messages=[{"role": "user", "content": "y"}], max_tokens=4
                )
                for name in (MODEL, "small")
            )
        )
        await aclient.close()
        return [answer.model for answer in answers]

    assert len(asyncio.run(both())) == 2


# --- podmgr upstreams test -----------------------------------------------------------------
def _upstreams_test(
    tmp_path: Path, upstreams: list[dict[str, Any]], *args: str, **fields: Any
) -> Any:
    path = tmp_path / "pod_config.json"
    path.write_text(json.dumps({"upstreams": upstreams, "state_file": "state.json", **fields}))
    return subprocess.run(
        [sys.executable, "-m", "podmgr", "upstreams", "test", "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env() | {"WRONG_KEY": "wrong-key-not-real"},
    )


def test_upstreams_test_exit_codes(tmp_path: Path, pods: tuple[SimUpstream, SimUpstream]) -> None:
    pod, local = pods
    live = _local(local.url)
    wrong = {**_local(local.url), "name": "wrong", "api_key": "${WRONG_KEY}"}
    closed = {"name": "closed", "kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}"}
    done = _upstreams_test(tmp_path, [live])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok    local") and MODEL in done.stdout
    done = _upstreams_test(tmp_path, [live, wrong])
    assert done.returncode == 3, done.stdout + done.stderr
    assert "rejected" in done.stdout
    done = _upstreams_test(tmp_path, [live, closed])
    assert done.returncode == 6, done.stdout + done.stderr
    assert "unreachable" in done.stdout
    done = _upstreams_test(tmp_path, [live, closed], "local", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)[0]["models"] == [MODEL]
    # The pod: its URL and key from the state file; none running is said, and not a failure.
    done = _upstreams_test(tmp_path, [{"name": "pod", "kind": "pod"}])
    assert done.returncode == 0 and done.stdout.startswith("down  pod"), done.stdout
    assert "no GPU session" in done.stdout and "podmgr up" in done.stdout
    pod.write_state(tmp_path / "state.json")
    assert _upstreams_test(tmp_path, [{"name": "pod", "kind": "pod"}]).returncode == 0
    for done in (_upstreams_test(tmp_path, [wrong]),):
        assert LOCAL_KEY not in done.stdout + done.stderr
        assert "wrong-key-not-real" not in done.stdout + done.stderr


def _write_state(path: Path, state: State) -> None:
    StateStore(path).save(state)


def _ended(reason: str) -> State:
    now = time.time()
    return State(
        session=Session(
            started_at=now - 900, deadline=now + 2700, ended_at=now - 60, end_reason=reason
        )
    )


POD = {"name": "pod", "kind": "pod"}


@pytest.mark.parametrize(
    ("reason", "wake", "said"),
    [
        pytest.param("idle", True, "a request to the proxy would wake it", id="idle-wakes"),
        pytest.param("shutdown", True, "would wake it", id="shutdown-wakes"),
        pytest.param(
            "budget",
            True,
            "would not wake it: the last session ended for budget",
            id="budget-does-not-wake",
        ),
        pytest.param("idle", False, "`podmgr up` starts one", id="no-wake"),
    ],
)
def test_upstreams_test_reports_a_pod_down_by_design_and_checks_the_fallbacks(
    tmp_path: Path, pods: tuple[SimUpstream, SimUpstream], reason: str, wake: bool, said: str
) -> None:
    """With wake_on_request the pod is down between sessions: that is no failed connection
    (it exited 6 with "FAIL pod: the GPU session has ended (idle)"). The exit code is the
    fallbacks': 0 when they answer, 6 when one does not."""
    _pod, local = pods
    _write_state(tmp_path / "state.json", _ended(reason))
    closed = {"name": "closed", "kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}"}
    done = _upstreams_test(tmp_path, [POD, _local(local.url)], wake_on_request=wake)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("down  pod") and f"ended ({reason})" in lines[0], lines
    assert said in lines[0], lines
    assert lines[1].startswith("ok    local"), lines
    done = _upstreams_test(tmp_path, [POD, closed], wake_on_request=wake)
    assert done.returncode == 6 and "FAIL  closed" in done.stdout, done.stdout
    done = _upstreams_test(tmp_path, [POD], "--json", wake_on_request=wake)
    assert done.returncode == 0
    [result] = json.loads(done.stdout)
    assert result["down"] is True and result["ok"] is False and said in result["reason"]


def test_upstreams_test_a_ready_pod_that_does_not_answer_fails(tmp_path: Path) -> None:
    """A pod the state says serves should answer: unreachable is exit 6, as before."""
    now = time.time()
    pod = PodRecord(
        id="p1", name="podmgr-p1", gpu_type_id="g", created_at=now - 100, ready_at=now - 50,
        phase="ready", endpoint_url=f"http://127.0.0.1:{free_port()}", vllm_api_key="k-fake",
    )  # fmt: skip
    _write_state(
        tmp_path / "state.json",
        State(session=Session(started_at=now - 100, deadline=now + 3000), pod=pod),
    )
    done = _upstreams_test(tmp_path, [POD], wake_on_request=True)
    assert done.returncode == 6 and "FAIL  pod" in done.stdout, done.stdout
    # Starting: not serving yet, said so, not counted.
    _write_state(
        tmp_path / "state.json",
        State(
            session=Session(started_at=now - 100, deadline=now + 3000),
            pod=pod.model_copy(update={"phase": "starting", "ready_at": None}),
        ),
    )
    done = _upstreams_test(tmp_path, [POD], wake_on_request=True)
    assert done.returncode == 0 and "not serving yet" in done.stdout, done.stdout


# --- usage, money and what is shown ---------------------------------------------------------
def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


def test_usage_and_money_per_upstream_shown_without_keys(
    make_proxy: Any, pods: tuple[SimUpstream, SimUpstream], tmp_path: Path
) -> None:
    _, local = pods
    priced = _local(local.url, price_input_per_million=1000.0, price_output_per_million=2000.0)
    proxy = _proxy(make_proxy, [{"name": "pod", "kind": "pod"}, priced], cache_mode="off")
    client = _client(proxy)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "u"}], max_tokens=5, stream=True
        )
    )
    # The proxy asked for usage; the client did not, so it never sees the extra chunk.
    assert chunks and all(chunk.usage is None and chunk.choices for chunk in chunks)
    _ask(client, f"q {uuid.uuid4().hex}")
    view = {v["name"]: v for v in proxy.health()["upstreams"]}["local"]
    assert view["prompt_tokens"] > 0 and view["completion_tokens"] > 0 and view["cost_usd"] > 0
    assert view["requests"] == 2 and view["errors"] == 0

    metrics = _text(proxy.url + "/metrics")
    assert 'podmgr_upstream_cost_usd{upstream="local"}' in metrics
    assert 'podmgr_upstream_requests_total{upstream="local"} 2.0' in metrics
    assert "podmgr_fallback_requests_total 2.0" in metrics  # the pod is not ready: local
    dashboard = _text(proxy.url + "/dashboard")
    assert "Upstream local" in dashboard and "Upstream pod" in dashboard
    status = subprocess.run(
        [sys.executable, "-m", "podmgr", "status", "--config", str(proxy.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "upstream local: available, 2 calls" in status.stdout, status.stdout + status.stderr
    for shown in (metrics, dashboard, status.stdout, json.dumps(proxy.health()), proxy.log_text()):
        assert LOCAL_KEY not in shown


def test_prewarm_fills_the_pods_keys(
    make_proxy: Any, pods: tuple[SimUpstream, SimUpstream], tmp_path: Path
) -> None:
    pod, local = pods
    prompt = f"warm {uuid.uuid4().hex}"
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 8,
        "temperature": 0,
    }
    prewarm = tmp_path / "prewarm.jsonl"
    prewarm.write_text(json.dumps({"path": "/v1/chat/completions", "body": body}) + "\n")
    proxy = _proxy(
        make_proxy, [{"name": "pod", "kind": "pod"}, _local(local.url)], prewarm_cache=str(prewarm)
    )
    pod.write_state(proxy.state_path)
    wait_until(lambda: proxy.health()["cache"]["entries"] >= 1, "prewarm to store the answer")
    assert _ask(_client(proxy), prompt)[1:] == ("pod", "HIT")


def test_client_authorization_never_reaches_an_upstream_without_a_key(
    make_proxy: Any, pods: tuple[SimUpstream, SimUpstream]
) -> None:
    _, local = pods
    keyless = {"name": "keyless", "kind": "openai", "base_url": local.url}
    proxy = _proxy(make_proxy, [keyless], cache_mode="off")
    # The client even sends local's real key: forwarded, local would accept it.
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=LOCAL_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "k"}], max_tokens=2
        )
    assert caught.value.response.headers["x-upstream"] == "keyless"
    seen = [r for r in local.traffic()["recent"] if r["path"].endswith("/chat/completions")]
    assert seen and seen[-1]["authorized"] is False
