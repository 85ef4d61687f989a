"""Part 6 of the reliability proofs: the RunPod key and the per-pod vLLM key never leak.

A full cycle with a canary RunPod key (the simulator accepts only it): `podmgr up` (real
proxy), requests through the proxy (plain, streamed, cached), faults (upstream 401 and
500, a dropped connection, a crashed pod), `podmgr status --json`, `/metrics`,
`/dashboard` (text and HTML), `/health`, then `podmgr shutdown`. Neither canary may appear
in anything captured; every file that holds one is mode 0600.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from podmgr.sim.process import SimProcess, free_port, wait_http, wait_until
from podmgr.state import StateStore

RUNPOD_CANARY = "canary-runpod-key-not-real-7f3a9c"


@pytest.fixture(scope="module")
def canary_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=0.1, load_seconds=0.1, api_keys=[RUNPOD_CANARY]) as process:
        yield process


class Capture:
    """Everything the cycle showed the outside world, to be searched for the canaries."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def add(self, name: str, text: str | bytes) -> str:
        value = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        self.texts[f"{name}#{len(self.texts)}"] = value
        return value

    def leaks(self, *canaries: str) -> list[str]:
        return [name for name, text in self.texts.items() if any(c in text for c in canaries)]


def fetch(url: str, body: dict[str, Any] | None = None, accept: str = "") -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if accept:
        headers["Accept"] = accept
    method = "POST" if data is not None else "GET"
    response = httpx.request(method, url, content=data, headers=headers, timeout=30)
    return response.status_code, response.content


def wait_upstream_ready(base: str) -> None:
    """The proxy re-reads the state file on its own schedule: wait until it sees the pod."""
    wait_http(
        base + "/health",
        ready=lambda answer: answer.status == 200 and answer.json()["upstream"]["ready"],
        what="the proxy to see the pod (/health upstream.ready)",
    )


def scan_files(root: Path, keys: tuple[str, ...], seen: Capture) -> list[str]:
    """Names of files holding a key (each must be mode 0600); the rest go into `seen`."""
    holders = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        if any(key.encode() in raw for key in keys):
            holders.append(path.name)
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == 0o600, f"{path} holds a key with mode {oct(mode)}"
        else:
            seen.add(str(path.relative_to(root)), raw)
    return holders


def test_no_key_leaks_in_a_full_cycle(canary_sim: SimProcess, tmp_path: Path) -> None:
    sim, seen = canary_sim, Capture()
    (tmp_path / "home").mkdir()
    prefix = f"s{uuid.uuid4().hex[:8]}-"
    port = free_port()
    values = {
        "gpu_type_id": ["NVIDIA GeForce RTX 4090"],
        "endpoint_url_template": sim.pod_url_template,
        "runtime_seconds": 120,
        "initial_wait_seconds": 0,
        "poll_interval_seconds": 0.05,
        "watchdog_interval_seconds": 1,
        "restart_backoff_seconds": 0,
        "api_retry_initial_seconds": 0.01,
        "api_retry_max_seconds": 1,
        "proxy_port": port,
        "proxy_start_timeout_seconds": 60,  # a loaded machine took >10 s to start one
        "state_file": "state/state.json",
        "cache_dir": "cache",
        "pod_name_prefix": prefix,
    }
    config = tmp_path / "pod_config.json"
    config.write_text(json.dumps(values))
    env = sim.env(tmp_path / "home")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "podmgr", *args, "--config", str(config)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
        seen.add(f"{args[0]} stdout", done.stdout)
        seen.add(f"{args[0]} stderr", done.stderr)
        return done

    base = f"http://127.0.0.1:{port}"
    chat = {"model": "Qwen/Qwen2.5-Coder-7B-Instruct", "max_tokens": 8}
    try:
        assert cli("up", "--verbose").returncode == 0
        state = StateStore(tmp_path / "state" / "state.json").peek()
        assert state is not None and state.pod is not None
        vllm_key = state.pod.vllm_api_key
        assert vllm_key and len(vllm_key) >= 16, "the per-pod key is missing or weak"
        pod_id = state.pod.id
        wait_upstream_ready(base)
        for index in range(3):  # a miss, then hits; and a stream
            body = chat | {"messages": [{"role": "user", "content": f"hi {index % 2}"}]}
            status, answer = fetch(f"{base}/v1/chat/completions", body)
            assert status == 200, answer
            seen.add("completion", answer)
            status, answer = fetch(f"{base}/v1/chat/completions", body | {"stream": True})
            seen.add("stream", answer)
        provoked = []
        for fault in (
            {"fault": "upstream_error", "status": 401},
            {"fault": "upstream_error", "status": 500},
            {"fault": "upstream_drop"},
        ):
            sim.set_fault(fault.pop("fault"), count=1, **fault)
            body = chat | {"messages": [{"role": "user", "content": uuid.uuid4().hex}]}
            status, answer = fetch(f"{base}/v1/chat/completions", body)
            provoked.append(status)
            seen.add(f"error {status}", answer)
        sim.clear_faults()
        assert all(code >= 400 for code in provoked), provoked
        for path, accept in (("/health", ""), ("/metrics", ""), ("/dashboard", "")):
            status, answer = fetch(base + path, accept=accept)
            assert status == 200, (path, answer)
            seen.add(path, answer)
        status, answer = fetch(base + "/dashboard", accept="text/html")
        assert status == 200 and b"<" in answer
        seen.add("/dashboard html", answer)
        assert cli("status", "--json").returncode == 0
        assert cli("status", "--json", "--live").returncode == 0
        sim.crash_pod(pod_id)  # the pod is gone: the proxy answers without it
        body = chat | {"messages": [{"role": "user", "content": "after the crash"}]}
        status, answer = fetch(f"{base}/v1/chat/completions", body)
        assert status >= 400
        seen.add(f"no pod {status}", answer)
        cli("watchdog", "--verbose")
        holders = scan_files(tmp_path, (RUNPOD_CANARY, vllm_key), seen)
        assert "state.json" in holders, "the state file should hold the pod key"
    finally:
        sim.clear_faults()
        done = cli("shutdown", "--verbose")
    assert done.returncode == 0, done.stderr
    assert [p for p in sim.ledger() if p["name"].startswith(prefix)]
    assert all(p["status"] == "TERMINATED" for p in sim.ledger() if p["name"].startswith(prefix))
    scan_files(tmp_path, (RUNPOD_CANARY, vllm_key), seen)
    assert seen.leaks(RUNPOD_CANARY, vllm_key) == []
    assert len(seen.texts) > 20, "too little was captured to prove anything"


def test_demo_shows_no_pod_key(tmp_path: Path) -> None:
    """`podmgr demo` (what `make run` runs): its output, logs and files never show the
    per-pod vLLM key or the simulator's RunPod key, only the 0600 state file holds one."""
    from podmgr.config import Config
    from podmgr.sim.world import DEFAULT_API_KEY

    port, directory = free_port(), tmp_path / "demo"
    out, err = tmp_path / "demo.out", tmp_path / "demo.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        demo = subprocess.Popen(
            [
                # A long duration, ended by SIGTERM (the demo's Ctrl-C path) once the requests
                # are done: a 6 s one ran out before them on a loaded machine.
                sys.executable, "-m", "podmgr", "demo", "--duration", "600", "--interval", "1",
                "--proxy-port", str(port), "--dir", str(directory),
                "--pull-seconds", "0.2", "--load-seconds", "0.2",
            ],
            stdout=stdout, stderr=stderr, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        try:
            store = StateStore(directory / "state.json")

            def recorded_key() -> str | None:
                state = store.peek() if store.path.exists() else None
                return state.pod.vllm_api_key if state is not None and state.pod else None

            vllm_key = wait_until(recorded_key, "the demo to record a pod in its state file")
            seen = Capture()
            base = f"http://127.0.0.1:{port}"
            wait_upstream_ready(base)
            body = {"model": Config().pod.model, "messages": [{"role": "user", "content": "hi"}]}
            for extra in ({}, {"stream": True}):
                status, answer = fetch(f"{base}/v1/chat/completions", body | extra)
                assert status == 200, answer
                seen.add("completion", answer)
            for path in ("/health", "/metrics", "/dashboard"):
                seen.add(path, fetch(base + path)[1])
            # Stop it once it is in its pass loop (its banner printed, `up` done), as a person
            # pressing Ctrl-C after reading the banner would.
            wait_until(
                lambda: b"a watchdog pass runs every" in out.read_bytes(),
                "the demo to print its banner and enter its pass loop",
            )
            demo.send_signal(signal.SIGTERM)
            assert demo.wait(timeout=300) == 0
        finally:
            if demo.poll() is None:
                demo.kill()
    assert "all terminated" in seen.add("stdout", out.read_bytes())
    seen.add("stderr", err.read_bytes())
    keys = (DEFAULT_API_KEY, vllm_key)
    holders = scan_files(directory, keys, seen)
    assert set(holders) <= {"state.json"}, holders
    assert seen.leaks(*keys) == []
    # the search works: it finds what the captures must hold
    assert seen.leaks("podmgr_proxy_requests_total") and seen.leaks("curl http://127.0.0.1")
