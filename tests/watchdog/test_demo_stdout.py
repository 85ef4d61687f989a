"""`make run | tee log`, then Ctrl-C: tee dies first, so the demo's stdout is a closed
pipe while it cleans up. The cleanup must still stop the proxy and the simulator
(issue 9: a print raising BrokenPipeError aborted it and left the proxy running)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podmgr.sim.process import free_port
from podmgr.state import StateStore
from podmgr.watchdog.proxy_probe import pid_alive

REPO = Path(__file__).resolve().parents[2]
READY_LINE = b"Ctrl-C stops everything"


def _read_until(process: subprocess.Popen[bytes], marker: bytes, timeout: float) -> bytes:
    """The demo's output up to `marker`; fails naming what was seen if it never comes."""
    assert process.stdout is not None
    fd, seen, deadline = process.stdout.fileno(), b"", time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} from the demo within {timeout:.0f}s: {seen.decode()}"
        if select.select([fd], [], [], min(left, 1.0))[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"the demo closed stdout before {marker!r}: {seen.decode()}"
            seen += chunk
    return seen


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if pid_alive(pid)]
        if not alive:
            return []
        time.sleep(0.2)
    return [pid for pid in pids if pid_alive(pid)]


@pytest.mark.timeout(480)  # above the waits below: they say what they waited for
def test_ctrl_c_with_stdout_closed_still_stops_proxy_and_simulator(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    demo = subprocess.Popen(
        [
            sys.executable, "-m", "podmgr", "demo", "--interval", "600",
            "--proxy-port", str(free_port()), "--dir", str(directory),
            "--pull-seconds", "0.2", "--load-seconds", "0.2",
        ],
        stdout=subprocess.PIPE, stderr=(tmp_path / "stderr").open("wb"), env=env,
    )  # fmt: skip
    leftovers: list[int] = []
    try:
        _read_until(demo, READY_LINE, timeout=180)
        state = StateStore(directory / "state.json").peek()
        assert state is not None and state.proxy_pid is not None
        leftovers = [state.proxy_pid, *_children(demo.pid)]  # the proxy, the simulator
        assert len(leftovers) == 2 and all(pid_alive(pid) for pid in leftovers), leftovers

        assert demo.stdout is not None
        demo.stdout.close()  # the reader (tee) is gone
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=180)
        still = _wait_gone(leftovers, timeout=60)
        stderr = (tmp_path / "stderr").read_text()
        assert still == [], f"left running after the demo exited {code}: {still}; {stderr}"
        assert code == 0, stderr
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
