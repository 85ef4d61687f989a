"""The guard as a real process in `podmgr sim --run-guards`, ending its own pod.

Timings are scaled: guard check interval 1 s, limits of seconds. The bounds asserted are the
issue's (ended within 30 s after the deadline) or the ledger's own cost, never test speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guard.guardkit import (
    PRICE,
    create_guarded,
    guard_log,
    guard_sim,
    port_refuses,
    process,
    record,
    wait_ended,
    wait_guard_running,
)
from podmgr.guard.guard import Api
from podmgr.guard.launch import guard_source
from podmgr.sim.process import SimProcess, wait_until


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with guard_sim() as running:
        yield running


def test_deadline_pod_ends_itself(sim: SimProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    pod = create_guarded(sim, monkeypatch, deadline_in=4)
    first = wait_guard_running(sim, pod["id"])
    rec = wait_ended(sim, pod["id"])
    assert rec["ended_by"] == "pod"
    assert pod["deadline"] <= rec["terminated_at"] <= pod["deadline"] + 30
    assert "deadline passed" in guard_log(sim, pod["id"])
    # The container went with the pod: guard and stand-in vLLM are gone.
    wait_until(lambda: not process(sim, pod["id"])["running"], "guard process gone")
    wait_until(lambda: port_refuses(first["vllm_port"]), "stand-in vllm gone")


def test_idle_pod_ends_itself(sim: SimProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    pod = create_guarded(sim, monkeypatch, idle_timeout_seconds=3)
    rec = wait_ended(sim, pod["id"])
    assert rec["ended_by"] == "pod"
    assert rec["billed_seconds"] >= 3
    assert "idle: no request" in guard_log(sim, pod["id"])


def _keep_busy(sim: SimProcess, pod_id: str, stop: threading.Event) -> None:
    url = sim.pod_url(pod_id) + "/v1/completions"
    while not stop.is_set():
        _post(url, {"model": "sim-model", "prompt": "hi", "max_tokens": 2})
        stop.wait(0.5)


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer vllm-key-fake", "Content-Type": "application/json"},
    )  # fmt: skip
    with contextlib.suppress(OSError):  # the pod may not serve yet: the next one tries again
        urllib.request.urlopen(request, timeout=10).close()


def test_requests_keep_an_idle_guard_waiting(
    sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = create_guarded(sim, monkeypatch, idle_timeout_seconds=3)
    stop = threading.Event()
    worker = threading.Thread(target=_keep_busy, args=(sim, pod["id"], stop), daemon=True)
    worker.start()
    try:
        wait_until(lambda: sim.pod_traffic(pod["id"])["model_calls"] >= 16, "16 requests served")
        assert record(sim, pod["id"])["status"] == "RUNNING", guard_log(sim, pod["id"])
    finally:
        stop.set()
        worker.join(timeout=30)
    assert wait_ended(sim, pod["id"])["ended_by"] == "pod"


def test_budget_pod_ends_before_passing_it(
    sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    spent = 0.001
    budget = spent + PRICE * 5 / 3600  # ~5 s of the pod's own time
    pod = create_guarded(sim, monkeypatch, spent=spent, max_cost_usd=budget)
    rec = wait_ended(sim, pod["id"])
    assert rec["ended_by"] == "pod"
    one_interval = PRICE * 1 / 3600
    assert spent + rec["cost_usd"] <= budget + one_interval, guard_log(sim, pod["id"])
    assert "budget:" in guard_log(sim, pod["id"])


def test_pod_key_is_refused_on_another_pod(
    sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = create_guarded(sim, monkeypatch)
    other = create_guarded(sim, monkeypatch)
    key = wait_guard_running(sim, mine["id"])["pod_key"]
    auth = {"Authorization": f"Bearer {key}"}
    assert _status(f"{sim.rest_url}/pods/{mine['id']}", "GET", auth) == 200
    for method, path in [
        ("GET", f"/pods/{other['id']}"),
        ("DELETE", f"/pods/{other['id']}"),
        ("POST", f"/pods/{other['id']}/action"),
        ("GET", f"/pods/{other['id']}/logs"),
        ("GET", "/pods"),
        ("POST", "/pods"),
        ("GET", "/catalog/gpus"),
        ("GET", "/billing/pods"),
    ]:
        assert _status(sim.rest_url + path, method, auth) == 403, (method, path)
    assert record(sim, other["id"])["status"] == "RUNNING"


def _status(url: str, method: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=b"{}" if method == "POST" else None,
                                     method=method, headers=headers)  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_failing_api_is_retried_and_logged(
    sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.set_fault("api_error", count=3, status=503, field="terminate")
    pod = create_guarded(sim, monkeypatch, deadline_in=2)
    rec = wait_ended(sim, pod["id"])
    assert rec["ended_by"] == "pod"
    log = guard_log(sim, pod["id"])
    assert log.count('"terminate_failed"') == 3, log
    assert "DELETE pod answered 503" in log


def test_sigkilled_guard_restarts_with_its_container(
    sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL of the guard (PID 1) ends the container: vLLM goes with it, RunPod restarts
    the container, and the new guard, reading the same env, still ends the pod in time."""
    pod = create_guarded(sim, monkeypatch, deadline_in=8)
    first = wait_guard_running(sim, pod["id"])
    wait_until(lambda: not port_refuses(first["vllm_port"]), "first stand-in vllm serving")
    os.kill(first["pid"], signal.SIGKILL)
    wait_until(lambda: port_refuses(first["vllm_port"]), "vllm killed with its guard")
    second = wait_until(
        lambda: (p := process(sim, pod["id"]))["starts"] >= 2 and p["running"] and p,
        "the container restarted",
    )
    assert second["pid"] != first["pid"]
    rec = wait_ended(sim, pod["id"])
    assert rec["ended_by"] == "pod"
    assert rec["terminated_at"] <= pod["deadline"] + 30


def test_a_pod_already_gone_is_harmless_to_the_guard(
    sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog ended the pod first: the guard's terminate reads 404 as already gone."""
    pod = create_guarded(sim, monkeypatch)
    key = wait_guard_running(sim, pod["id"])["pod_key"]
    request = urllib.request.Request(
        f"{sim.rest_url}/pods/{pod['id']}", method="DELETE",
        headers={"Authorization": f"Bearer {sim.api_key}"},
    )  # fmt: skip
    urllib.request.urlopen(request, timeout=30).close()
    assert record(sim, pod["id"])["ended_by"] == "user"
    assert Api(sim.rest_url, pod["id"], key).terminate() == "already gone"


def test_a_guard_whose_vllm_cannot_start_still_ends_the_pod(
    sim: SimProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No vLLM (a broken image), yet the pod bills: the guard stays and enforces limits."""
    pod = create_guarded(sim, monkeypatch)
    key = wait_guard_running(sim, pod["id"])["pod_key"]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "RUNPOD_POD_ID": pod["id"],
        "RUNPOD_API_KEY": key,
        "PODMGR_GUARD_API_URL": sim.rest_url,
        "PODMGR_GUARD_DEADLINE": str(time.time() + 1),
        "PODMGR_GUARD_INTERVAL_SECONDS": "0.5",
        "PODMGR_GUARD_VLLM_URL": "http://127.0.0.1:9",
    }
    command = [sys.executable, "-c", guard_source(), str(tmp_path / "no-such-vllm"), "serve"]
    lines: list[str] = []
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as guard:
        assert guard.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(guard.stdout or ()), daemon=True)
        reader.start()
        try:
            rec = wait_ended(sim, pod["id"])
            # The pod can show as ended before the guard has written that it ended it.
            wait_until(lambda: any('"pod_ended"' in line for line in lines), "pod_ended logged")
        finally:
            guard.kill()
            guard.wait(timeout=30)
            reader.join(timeout=30)
    out = "".join(lines)
    assert rec["ended_by"] == "pod"
    assert '"child_failed_to_start"' in out and '"pod_ended"' in out, out
