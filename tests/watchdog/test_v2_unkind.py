"""RunPod API v2 being unkind, as issue 19 lists it: each case through real passes.

Capacity on the first GPU type, an account at $0 (402), a start that gives the pod zero
GPUs, and RunPod passing the guard's start-command JSON to vLLM literally.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from wdkit import Harness, MakeWd

from podmgr.errors import BalanceError
from podmgr.sim.process import SimProcess


def test_capacity_on_the_first_type_the_second_serves_one_pod_alive(wd: Harness) -> None:
    wd.sim.set_fault("capacity", gpu_type_ids=["NVIDIA GeForce RTX 4090"])
    assert wd.up().serving
    [pod] = wd.alive()
    assert pod["gpu_type_id"] == "NVIDIA RTX A6000" and len(wd.ledger()) == 1
    assert any("NVIDIA GeForce RTX 4090 (SECURE) refused" in line for line in wd.lines)
    wd.run("shutdown")


def test_402_stops_at_once_with_exit_11_after_one_create(wd: Harness) -> None:
    wd.sim.set_fault("balance_zero")
    before = wd.sim.rest_requests()
    with pytest.raises(BalanceError) as raised:
        wd.run("start")
    calls = wd.sim.rest_requests() - before
    assert raised.value.exit_code == 11
    assert wd.ledger() == []
    # the listing, the catalog (Secure), ONE create: no second GPU type tried
    assert calls == 3, calls
    state = wd.state()
    assert state.session is not None and state.session.end_reason == "balance_zero"


def test_zero_gpus_after_a_start_is_replaced_at_once(wd: Harness) -> None:
    wd.up()
    old = wd.state().pod.id  # type: ignore[union-attr]
    wd.sim.crash_pod(old)  # RunPod stopped it: the next pass starts it again
    wd.sim.set_fault("zero_gpus", pod_id=old)
    first = [type(a).__name__ for a in wd.run().actions]
    assert "RestartPod" in first, first
    second = [type(a).__name__ for a in wd.run().actions if type(a).__name__ != "NoteLog"]
    assert second[:2] == ["TerminatePod", "CreatePod"], second  # not the start-up budget
    assert wd.up().serving
    new = wd.state().pod
    assert new is not None and new.id != old
    status = {p["id"]: p["status"] for p in wd.ledger()}
    assert status == {old: "TERMINATED", new.id: "RUNNING"}
    wd.run("shutdown")


@pytest.fixture(scope="module")
def literal_sim() -> Iterator[SimProcess]:
    """RunPod passing `args` to the image's entrypoint literally (undocumented either way)."""
    with SimProcess(extra_args=["--start-command-json", "ignore"]) as process:
        yield process


@pytest.fixture
def literal_wd(literal_sim: SimProcess, make_wd: MakeWd) -> Harness:
    return make_wd(literal_sim)


def test_a_literal_start_command_is_replaced_once_without_the_guard(literal_wd: Harness) -> None:
    literal_wd.configure(max_startup_attempts=4000, max_cost_usd=5)
    assert literal_wd.up().serving
    pods = literal_wd.ledger()
    assert len(pods) == 2, pods  # the guarded pod, and its one replacement
    first, second = sorted(pods, key=lambda p: p["created_at"])
    assert first["status"] == "TERMINATED" and second["status"] == "RUNNING"
    state = literal_wd.state()
    assert state.start_command_json is False
    assert state.pod is not None and state.pod.guard is None
    assert any("guard NOT running" in line for line in literal_wd.lines), literal_wd.lines
    status = subprocess.run(
        [sys.executable, "-m", "podmgr", "status", "--json", "--config",
         str(literal_wd.config_path)],
        env=literal_wd.sim.env(literal_wd.dir / "home"), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    guard = json.loads(status.stdout)["guard"]
    assert guard["confirmed"] is False and "literally" in guard["why"], guard
    # Later sessions remember it: no third pod tries the guard again.
    literal_wd.run("shutdown")
    assert literal_wd.up().serving
    assert len(literal_wd.ledger()) == 3 and literal_wd.state().pod.guard is None  # type: ignore[union-attr]
    literal_wd.run("shutdown")
