"""`podmgr demo` end to end, shortened: it must leave no simulated pod alive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from podmgr.sim.process import free_port


def test_demo_runs_and_terminates_the_simulated_pod(tmp_path: Path) -> None:
    port = free_port()
    run = subprocess.run(
        [
            sys.executable, "-m", "podmgr", "demo", "--duration", "3", "--interval", "1",
            "--proxy-port", str(port), "--dir", str(tmp_path / "demo"),
            "--pull-seconds", "0.2", "--load-seconds", "0.2",
        ],
        capture_output=True, text=True, timeout=300,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"curl http://127.0.0.1:{port}/v1/chat/completions" in run.stdout
    assert ": serving" in run.stdout and "serving: base URL" in run.stdout
    assert "simulator ledger: 1 pod(s)" in run.stdout and "all terminated" in run.stdout


def test_demo_refuses_a_taken_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "podmgr", "demo", "--proxy-port", str(port),
             "--dir", str(tmp_path / "demo")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert run.returncode == 2 and "--proxy-port" in run.stderr
