"""A short idle limit on a slow-loading pod, in `podmgr sim --run-guards`: the guard never
ends its pod for idle before the model loaded, and the pass after its end reads it as
its guard's idle end, never as a crash.

What `podmgr sim --run-guards --pull-seconds 5 --load-seconds 40` with idle 20 s did: the
stand-in vLLM answered `/metrics` during the load (real vLLM's HTTP server starts only
after it), the guard's idle clock started then and ended the pod while it still loaded,
and the next pass counted a restart and made another pod. Here scaled: pull 1 s, load
LOAD_SECONDS, idle 2 s, guard checks every second. Bounds are on the simulator's ledger.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from wdkit import Harness

from guard.guardkit import create_guarded, guard_log, guard_sim, wait_ended, wait_guard_running
from podmgr.sim.process import SimProcess, wait_until

PULL_SECONDS = 1.0
LOAD_SECONDS = 8.0
IDLE_SECONDS = 2


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimProcess]:
    with guard_sim(pull_seconds=PULL_SECONDS, load_seconds=LOAD_SECONDS) as sim:
        yield sim


def _phase(sim: SimProcess, pod_id: str) -> str:
    with urllib.request.urlopen(f"{sim.base_url}/_sim/pods/{pod_id}", timeout=30) as answer:
        return str(json.loads(answer.read())["phase"])


def _metrics_status(port: int) -> int | None:
    """/metrics as the guard reads it: with the pod's vLLM key (the guard's middleware
    refuses every path but /health without it)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer vllm-key-fake"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None  # not listening yet


def test_the_guard_ends_its_pod_for_idle_only_after_the_model_loaded(
    slow_sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = create_guarded(slow_sim, monkeypatch, idle_timeout_seconds=IDLE_SECONDS)
    running = wait_guard_running(slow_sim, pod["id"])
    # While the model loads, the stand-in's /metrics does not answer (as vLLM's cannot).
    status = wait_until(
        lambda: _metrics_status(running["vllm_port"]), "the stand-in vllm to listen", timeout=60
    )
    if _phase(slow_sim, pod["id"]) != "serving":  # asked during the load
        assert status == 503, status
    rec = wait_ended(slow_sim, pod["id"], timeout=LOAD_SECONDS + 120)
    assert rec["ended_by"] == "pod"
    log = guard_log(slow_sim, pod["id"])
    assert "idle: no request" in log, log
    loaded_at = rec["created_at"] + PULL_SECONDS + LOAD_SECONDS
    assert rec["terminated_at"] >= loaded_at + IDLE_SECONDS - 0.5, log


@pytest.fixture
def wd_sim(slow_sim: SimProcess) -> SimProcess:
    """`wd` runs on this module's simulator."""
    return slow_sim


def test_the_pass_after_the_guards_idle_end_ends_the_session_without_a_restart(
    wd: Harness,
) -> None:
    """No pass sees the pod serve (as with cron every few minutes): its guard ends it for
    idle, and the next pass ends the session for idle: no restart, no other pod."""
    wd.configure(
        gpu_type_id="NVIDIA GeForce RTX 4090", model="sim-model", runtime_seconds=3600,
        idle_timeout_seconds=IDLE_SECONDS, guard_interval_seconds=1,
    )  # fmt: skip
    state = wd.run("start").state
    assert state.pod is not None and state.pod.guard is not None
    pod_id = state.pod.id

    def ended() -> bool:
        return all(p["status"] == "TERMINATED" for p in wd.ledger())

    wait_until(ended, "the guard to end its pod", timeout=LOAD_SECONDS + 120)
    [rec] = wd.ledger()
    assert rec["id"] == pod_id and rec["ended_by"] == "pod", guard_log(wd.sim, pod_id)
    state = wd.run().state
    assert state.session is not None and not state.session.active
    assert state.session.end_reason == "idle", state.history[-3:]
    assert state.session.restarts == 0 and state.pod is None
    assert len(wd.ledger()) == 1 and wd.alive() == []
