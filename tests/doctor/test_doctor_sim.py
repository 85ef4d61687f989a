"""`podmgr doctor` as a real process against `podmgr sim --run-guards`: the pods run the real
guard, the question goes through the real proxy, and the ledger says what happened.

Timings are scaled (guard interval 1 s, idle 3 s, looks every 0.5 s); every wait is a bound,
never a speed asserted. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podmgr.sim.process import SimProcess, wait_until

RUN_TIMEOUT = 300.0
FAST = ["--idle-seconds", "3", "--poll-seconds", "0.5", "--startup-minutes", "2"]


def _config(directory: Path, sim: SimProcess) -> Path:
    path = directory / "pod_config.json"
    values = {
        "endpoint_url_template": sim.pod_url_template,
        "guard_interval_seconds": 1,
        "state_file": "state.json",
        "cache_dir": "cache",
    }
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def _doctor(
    sim: SimProcess, tmp_path: Path, *flags: str, **popen: Any
) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "podmgr", "doctor", "--config", str(_config(tmp_path, sim))]
    return subprocess.run(
        [*command, *flags], env=sim.env(home), cwd=tmp_path, capture_output=True, text=True,
        timeout=RUN_TIMEOUT, **popen,
    )  # fmt: skip


def _steps(result: subprocess.CompletedProcess[str]) -> dict[str, list[dict[str, Any]]]:
    report = json.loads(result.stdout)
    steps: dict[str, list[dict[str, Any]]] = {}
    for step in report["steps"]:
        steps.setdefault(step["step"], []).append(step)
    return steps


@pytest.fixture
def guard_sim() -> Iterator[SimProcess]:
    with SimProcess(extra_args=["--run-guards"]) as sim:
        yield sim


@pytest.fixture
def literal_sim() -> Iterator[SimProcess]:
    with SimProcess(extra_args=["--run-guards", "--start-command-json", "ignore"]) as sim:
        yield sim


def test_every_step_passes_and_the_guard_ends_the_pod(
    guard_sim: SimProcess, tmp_path: Path
) -> None:
    result = _doctor(guard_sim, tmp_path, "--yes", *FAST, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    names = [line.split()[1] for line in lines]
    assert names == ["key", "catalog", "bound", "create", "guard", "serving", "ask", "end", "cost"]
    assert all(line.startswith("ok ") for line in lines), result.stdout
    assert '"minute";q=' in lines[0]  # the RateLimit-Policy the simulator sent
    assert "guard" in lines[4] and "confirmed" in lines[4]
    assert "guard ended the pod after" in lines[7]
    assert "podmgr: $0.0" in lines[8] and "GET /billing/pods: $" in lines[8]
    ledger = guard_sim.ledger()
    assert len(ledger) == 1
    assert ledger[0]["status"] == "TERMINATED"
    assert ledger[0]["ended_by"] == "pod"
    assert ledger[0]["name"].startswith("podmgr-doctor-")


def test_a_literal_start_command_gets_a_second_pod_without_the_guard(
    literal_sim: SimProcess, tmp_path: Path
) -> None:
    """Documented choice: the guard not confirmed is a FAILED step, so exit 1; the answer
    still comes through a second pod, and doctor terminates both."""
    result = _doctor(literal_sim, tmp_path, "--yes", "--json", *FAST, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stdout + result.stderr
    steps = _steps(result)
    assert not steps["guard"][0]["ok"]
    assert "NOT confirmed" in steps["guard"][0]["found"]
    assert "start-command JSON literally" in steps["guard"][0]["found"]
    assert [s["ok"] for s in steps["create"]] == [True, True]
    assert "without the guard" in steps["create"][1]["found"]
    assert steps["ask"][0]["ok"] and steps["serving"][0]["ok"]
    assert "watchdog passes" in steps["end"][0]["found"]
    failed = [name for name, runs in steps.items() for s in runs if not s["ok"]]
    assert failed == ["guard"]
    ledger = literal_sim.ledger()
    assert len(ledger) == 2
    assert all(pod["status"] == "TERMINATED" for pod in ledger), ledger


def test_without_yes_and_without_a_terminal_nothing_is_created(
    guard_sim: SimProcess, tmp_path: Path
) -> None:
    result = _doctor(guard_sim, tmp_path, *FAST, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "--yes" in result.stderr
    assert guard_sim.ledger() == []


def test_declined_at_the_prompt_creates_nothing(guard_sim: SimProcess, tmp_path: Path) -> None:
    main, terminal = pty.openpty()
    try:
        os.write(main, b"n\n")
        result = _doctor(guard_sim, tmp_path, *FAST, stdin=terminal)
    finally:
        os.close(main)
        os.close(terminal)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "proceed? [y/N]" in result.stdout
    assert "declined" in result.stdout
    assert guard_sim.ledger() == []


def test_a_bound_above_max_usd_is_refused(guard_sim: SimProcess, tmp_path: Path) -> None:
    result = _doctor(guard_sim, tmp_path, "--yes", "--max-usd", "0.01", *FAST)
    assert result.returncode == 2
    assert "--max-usd" in result.stderr
    assert guard_sim.ledger() == []


def test_a_rejected_key_exits_3(guard_sim: SimProcess, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**guard_sim.env(home), "RUNPOD_API_KEY": "not-a-key-the-sim-knows"}
    command = [sys.executable, "-m", "podmgr", "doctor", "--yes", "--config"]
    result = subprocess.run(
        [*command, str(_config(tmp_path, guard_sim))], env=env, capture_output=True, text=True,
        timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stdout.startswith("FAILED key")
    assert guard_sim.ledger() == []


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("signum", "inherited"),
    [
        (signal.SIGINT, None),
        (signal.SIGTERM, None),
        # Started with SIGINT ignored (a shell's background job, or a parent that ignores it
        # for a moment): before, doctor carried on and the test timed out after 300 s.
        (signal.SIGINT, _ignore_sigint),
    ],
)
def test_an_interrupted_doctor_leaves_no_pod(
    guard_sim: SimProcess, tmp_path: Path, signum: int, inherited: Any
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    command = [sys.executable, "-m", "podmgr", "doctor", "--yes", "--config"]
    command += [str(_config(tmp_path, guard_sim)), "--idle-seconds", "600", "--poll-seconds", "0.5"]
    process = subprocess.Popen(
        command, env=guard_sim.env(home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=inherited,
    )  # fmt: skip
    try:
        wait_until(lambda: guard_sim.ledger(), "doctor's pod on the simulator")
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stdout + stderr
    ledger = guard_sim.ledger()
    assert len(ledger) == 1
    assert ledger[0]["status"] == "TERMINATED" and ledger[0]["ended_by"] == "user", ledger
