"""Helpers for guard tests: a guarded pod created in a `podmgr sim --run-guards`."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from podmgr.config import build_config
from podmgr.runpod.client import create_request
from podmgr.sim.process import SimProcess, wait_until
from podmgr.state import Session
from podmgr.watchdog.spec import pod_spec

GPU = "NVIDIA GeForce RTX 4090"
PRICE = 0.69  # the simulator's Secure Cloud price of one RTX 4090 per hour
WAIT = 60.0


def guard_sim(**kwargs: Any) -> SimProcess:
    return SimProcess(extra_args=["--run-guards"], **kwargs)


def create_guarded(
    sim: SimProcess,
    monkeypatch: Any,
    *,
    deadline_in: float = 3600.0,
    spent: float = 0.0,
    **config: Any,
) -> dict[str, Any]:
    """Create a pod as the watchdog would (pod_spec -> create_request -> POST /v2/pods)."""
    monkeypatch.setenv("RUNPOD_REST_URL", sim.rest_url)
    cfg = build_config(
        {"gpu_type_id": GPU, "model": "sim-model", "guard_interval_seconds": 1, **config}
    )
    now = time.time()
    session = Session(started_at=now, deadline=now + deadline_in, cost_usd=spent)
    spec = pod_spec(
        cfg, "cid", "podmgr-guard-test", GPU, "vllm-key-fake", "SECURE", session=session, now=now
    )
    assert spec.docker_entrypoint, "the guard should be in this config's pods"
    body = json.dumps(create_request(spec).body()).encode()
    request = urllib.request.Request(
        sim.rest_url + "/pods", data=body, method="POST",
        headers={"Authorization": f"Bearer {sim.api_key}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        pod: dict[str, Any] = json.loads(response.read())
    return {**pod, "deadline": session.deadline, "created_at": now}


def process(sim: SimProcess, pod_id: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sim.base_url}/_sim/pods/{pod_id}/process", timeout=30) as r:
        return dict(json.loads(r.read()))


def guard_log(sim: SimProcess, pod_id: str) -> str:
    with urllib.request.urlopen(f"{sim.base_url}/_sim/pods/{pod_id}/log", timeout=30) as r:
        return str(r.read().decode())


def record(sim: SimProcess, pod_id: str) -> dict[str, Any]:
    return next(r for r in sim.ledger() if r["id"] == pod_id)


def wait_ended(sim: SimProcess, pod_id: str, timeout: float = WAIT) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        rec = record(sim, pod_id)
        return rec if rec["status"] == "TERMINATED" else None

    try:
        return wait_until(ended, f"pod {pod_id} terminated", timeout=timeout)
    except TimeoutError as error:
        raise TimeoutError(f"{error}\nguard log:\n{guard_log(sim, pod_id)}") from None


def wait_guard_running(sim: SimProcess, pod_id: str) -> dict[str, Any]:
    return wait_until(lambda: (p := process(sim, pod_id))["running"] and p, "guard running")


def port_refuses(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
    except (urllib.error.URLError, OSError):
        return True
    return False
