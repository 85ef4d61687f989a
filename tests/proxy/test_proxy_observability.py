"""/metrics, /health and /dashboard (text for curl, HTML checked in a real headless browser)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from simkit import SimUpstream

from podmgr.sim.process import wait_until
from podmgr.state import Session, State, StateStore

from .pngkit import colour_counts
from .proxykit import VLLM_KEY, ProxyProcess


def _chat(proxy: ProxyProcess, **extra: Any) -> httpx.Response:
    body = {
        "model": "sim-model",
        "messages": [{"role": "user", "content": f"obs {uuid.uuid4().hex}"}],
        "max_tokens": 5,
        **extra,
    }
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=10)


def _samples(text: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def test_metrics_parse_and_count(sim_proxy: ProxyProcess, sim_pod: SimUpstream) -> None:
    first = _chat(sim_proxy, stream=True)
    assert first.status_code == 200
    body = {
        "model": "sim-model",
        "messages": [{"role": "user", "content": "same"}],
        "max_tokens": 3,
    }
    httpx.post(sim_proxy.url + "/v1/chat/completions", json=body)
    httpx.post(sim_proxy.url + "/v1/chat/completions", json=body)
    httpx.get(sim_proxy.url + "/v1/models")
    wait_until(  # answers are sent before their entries are stored
        lambda: sim_proxy.health()["cache"]["in_flight"] == 0,
        "the proxy's pending cache writes (/health cache.in_flight 0)",
    )
    samples = _samples(httpx.get(sim_proxy.url + "/metrics").text)
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in samples["podmgr_proxy_requests_total"]
    }
    assert requests[("chat/completions", "200")] >= 3 and requests[("models", "200")] >= 1
    results = {s.labels["result"]: s.value for s in samples["podmgr_proxy_cache_results_total"]}
    assert results["hit"] >= 1 and results["miss"] >= 2
    assert samples["podmgr_proxy_cache_entries"][0].value >= 2
    assert samples["podmgr_proxy_cache_bytes"][0].value > 0
    tokens = {s.labels["kind"]: s.value for s in samples["podmgr_proxy_tokens_total"]}
    assert tokens["prompt"] > 0 and tokens["completion"] >= 8
    for name in (
        "podmgr_proxy_upstream_latency_seconds_count",
        "podmgr_proxy_time_to_first_token_seconds_count",
        "podmgr_proxy_overhead_seconds_count",
    ):
        assert sum(s.value for s in samples[name]) >= 1, name
    assert "podmgr_proxy_in_flight_requests" in samples
    phases = {s.labels["phase"]: s.value for s in samples["podmgr_pod_phase"]}
    assert phases["ready"] == 1.0 and phases["starting"] == 0.0
    assert samples["podmgr_session_cost_usd"][0].value >= 0.05
    assert samples["podmgr_proxy_upstream_ready"][0].value == 1.0


def test_money_metrics_show_budget_deadline_and_cold_starts(
    make_proxy: Any, sim_pod: SimUpstream
) -> None:
    from podmgr.history import PodSummary, SessionRecord, append_record, history_path

    proxy = make_proxy(start=False, max_cost_usd=2.5)
    sim_pod.write_state(proxy.state_path)
    store = StateStore(proxy.state_path)
    state = store.load()
    assert state.session is not None and state.pod is not None
    state.session.book_pod(state.pod, 0.01)
    store.save(state)
    for started in (1000.0, 2000.0):  # two ended sessions: one pod, then two pods
        pods = [PodSummary(id=f"p{started}-{n}", gpu_type_id="g", created_at=started)
                for n in range(int(started // 1000))]  # fmt: skip
        append_record(
            history_path(proxy.state_path),
            SessionRecord(started_at=started, ended_at=started + 10, pods=pods),
        )
    proxy.start()
    before = time.time()
    samples = _samples(httpx.get(proxy.url + "/metrics").text)
    after = time.time()
    assert samples["podmgr_session_budget_usd"][0].value == 2.5
    assert samples["podmgr_session_deadline_timestamp_seconds"][0].value == state.session.deadline
    left = samples["podmgr_session_seconds_left"][0].value  # read between before and after
    assert state.session.deadline - after - 0.01 <= left <= state.session.deadline - before + 0.01
    assert samples["podmgr_session_cost_usd"][0].value >= 0.05
    assert samples["podmgr_cold_starts_total"][0].value == 1 + 2 + 1
    assert samples["podmgr_fallback_requests_total"][0].value == 0


def test_metrics_count_upstream_errors_by_kind(
    sim_proxy: ProxyProcess, sim_pod: SimUpstream
) -> None:
    sim_pod.sim.set_fault("upstream_error", status=500, count=1)
    try:
        assert _chat(sim_proxy).status_code == 502
    finally:
        sim_pod.sim.clear_faults()
    samples = _samples(httpx.get(sim_proxy.url + "/metrics").text)
    kinds = {s.labels["kind"]: s.value for s in samples["podmgr_proxy_upstream_errors_total"]}
    assert kinds["upstream_500"] >= 1
    text = httpx.get(sim_proxy.url + "/metrics").text
    assert VLLM_KEY not in text and sim_pod.pod_id not in text


def test_health_contract_and_last_request_at(sim_proxy: ProxyProcess, sim_pod: SimUpstream) -> None:
    before = sim_proxy.health()
    assert before["status"] == "ok" and isinstance(before["pid"], int)
    assert before["upstream"]["ready"] is True and before["upstream"]["reason"] is None
    assert before["upstream"]["url_host"].startswith("127.0.0.1:")
    assert before["pod"]["id"] == sim_pod.pod_id and before["pod"]["phase"] == "ready"
    assert before["cache"]["writable"] is True
    assert {"entries", "bytes"} <= set(before["cache"])
    httpx.get(sim_proxy.url + "/metrics")
    httpx.get(sim_proxy.url + "/dashboard")
    assert sim_proxy.health()["last_request_at"] == before["last_request_at"]
    started = time.time()
    httpx.get(sim_proxy.url + "/v1/models")
    after = sim_proxy.health()["last_request_at"]
    assert after is not None and after >= started - 0.01
    assert VLLM_KEY not in str(after) and VLLM_KEY not in str(sim_proxy.health())


def test_session_ended_is_503(make_proxy: Any) -> None:
    proxy = make_proxy(start=False)
    now = time.time()
    state = State(
        session=Session(
            started_at=now - 100, deadline=now - 1, ended_at=now - 1, end_reason="deadline"
        )
    )
    StateStore(proxy.state_path).save(state)
    proxy.start()
    response = _chat(proxy)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "session_ended"
    assert "deadline" in response.json()["error"]["message"]


def test_dashboard_text(sim_proxy: ProxyProcess, sim_pod: SimUpstream) -> None:
    _chat(sim_proxy)
    text = httpx.get(sim_proxy.url + "/dashboard").text
    for label in ("Pod", "Time left", "Cost so far", "Cache hit rate", "Request rate", "Latency"):
        assert label in text
    assert sim_pod.pod_id in text and "ready" in text
    assert "<html" not in text and VLLM_KEY not in text
    state = StateStore(sim_proxy.state_path).peek()
    assert state is not None and state.session is not None
    assert state.session.id in text  # the session shows by its id


def test_dashboard_in_a_browser(
    sim_proxy: ProxyProcess, sim_pod: SimUpstream, tmp_path: Path
) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    sim_pod.sim.set_fault("upstream_error", status=500, count=1)
    try:
        _chat(sim_proxy)  # one recent error to show
    finally:
        sim_pod.sim.clear_faults()
    _chat(sim_proxy, stream=True)  # a time to first token
    for _ in range(3):  # a miss, then hits
        httpx.post(sim_proxy.url + "/v1/chat/completions", json={
            "model": "sim-model", "messages": [{"role": "user", "content": "chart"}],
            "max_tokens": 3}, timeout=10)  # fmt: skip
    page = httpx.get(sim_proxy.url + "/dashboard", headers={"accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    assert 'http-equiv="refresh"' in page.text and VLLM_KEY not in page.text
    shot = tmp_path / "dashboard.png"
    dom = subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
            sim_proxy.url + "/dashboard",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Cache hit rate" in dom.stdout and sim_pod.pod_id in dom.stdout
    assert "upstream ready" in dom.stdout and "HTTP 500" in dom.stdout
    found = re.findall(
        r'<svg class="chart[^"]*"[^>]*data-points="(\d+)"[^>]*aria-label="([^"]+)"', dom.stdout
    )
    points = {label: int(count) for count, label in found}
    for label in ("Requests per minute", "Latency", "Time to first token, streams",
                  "Cache hit rate", "Who answered", "Time used of the session"):  # fmt: skip
        assert points.get(label, 0) > 0, (label, points)
    assert "Spend in this session" in points  # 0 points: this proxy's config has no budget
    subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}", "--window-size=1180,1250", sim_proxy.url + "/dashboard",
        ],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 5000
    colours = colour_counts(shot)
    # Bars of requests per minute and of "who answered" are drawn in the palette's blue and
    # orange, solid; a page without drawn data has only the legends' 10x10 keys of them (at
    # most 3 blue and 2 orange: 300 and 200 pixels). Seen with data: 2510 and 1262.
    assert colours[(0x2F, 0x6F, 0xDF)] > 600, colours.most_common(8)
    assert colours[(0xE0, 0x7B, 0x00)] > 400, colours.most_common(8)
