"""Issue 22: `podmgr up` never gave up on an unreachable RunPod, and mixed JSON log lines
into its output. Now passes failing to reach RunPod end it with exit 6 after
`startup.unreachable_seconds`, and the logs go to `.podmgr/watchdog.log` unless --verbose."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podmgr.errors import LockHeldError, TransientApiError
from podmgr.sim.process import free_port
from podmgr.state import State
from podmgr.watchdog.observed import Request
from podmgr.watchdog.runner import PassResult, run_until_serving

from .helpers import config, record, session, state

READY = state(session(), record())


class PassClock:
    """A fake clock on which each pass takes `pass_seconds`."""

    def __init__(self, pass_seconds: float) -> None:
        self.t, self.pass_seconds = 1000.0, pass_seconds

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def run_up(limit: float, *outcomes: State | Exception) -> tuple[list[str], object, int]:
    """`up`'s loop over scripted passes of 60 s each, polling every 10 s; the lines it
    printed, its result or error, and how many passes ran."""
    clock, lines, queue = PassClock(60), list[str](), list(outcomes)
    ran = [0]

    def one_pass(_request: Request) -> PassResult:
        ran[0] += 1
        clock.t += clock.pass_seconds
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return PassResult(actions=[], state=outcome)

    cfg = config(initial_wait_seconds=0, poll_interval_seconds=10, unreachable_seconds=limit)
    try:
        result: object = run_until_serving(
            cfg, Path("pod_config.json"), emit=lines.append, clock=clock,  # type: ignore[arg-type]
            pass_once=one_pass,
        )  # fmt: skip
    except TransientApiError as error:
        result = error
    return lines, result, ran[0]


def refused() -> TransientApiError:
    message = "RunPod unreachable for GET /pods: ConnectError"
    return TransientApiError(message, may_have_applied=False)


def test_passes_that_cannot_reach_runpod_end_with_exit_6_naming_what_was_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNPOD_REST_URL", "http://127.0.0.1:9/v2")
    # 60 s a pass, 10 s between: the 2nd pass starts at 70 s < 80 s, a 3rd would at 140 s.
    lines, error, ran = run_up(80, refused(), refused(), refused(), READY)
    assert ran == 2 and isinstance(error, TransientApiError) and error.exit_code == 6
    assert "http://127.0.0.1:9/v2" in error.message and "2 pass(es)" in error.message
    assert "130s" in error.message and "ConnectError" in error.message
    assert sum("this pass failed" in line for line in lines) == 1


def test_a_zero_limit_gives_up_after_the_first_failed_pass() -> None:
    _lines, error, ran = run_up(0, refused(), READY)
    assert ran == 1 and isinstance(error, TransientApiError)


def test_a_pass_that_works_starts_the_count_again() -> None:
    starting = state(session(), record(phase="starting"))
    held = LockHeldError("lock held")
    # Without the reset, the second failure (at 270 s from the first) would give up.
    _lines, result, ran = run_up(80, refused(), held, starting, refused(), READY)
    assert ran == 5 and not isinstance(result, Exception)
    assert result.serving  # type: ignore[attr-defined]


def _closed_port_env(tmp_path: Path) -> dict[str, str]:
    import os

    port = free_port()  # nothing listens there: every call is refused at once
    return {
        **os.environ,
        "HOME": str(tmp_path),
        "RUNPOD_API_KEY": "not-a-key",
        "RUNPOD_REST_URL": f"http://127.0.0.1:{port}/v2",
        "RUNPOD_API_BASE_URL": f"http://127.0.0.1:{port}",
    }


def _write_config(tmp_path: Path) -> Path:
    path = tmp_path / "pod_config.json"
    path.write_text(
        json.dumps(
            {
                "startup": {"unreachable_seconds": 0, "poll_interval_seconds": 0.1},
                "watchdog": {"api_retry_initial_seconds": 0.05, "api_retry_max_seconds": 0.5},
                "proxy": {"port": free_port()},
            }
        )
    )
    return path


def _podmgr(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = _write_config(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "podmgr", *args, "--config", str(path)],
        env=_closed_port_env(tmp_path), cwd=tmp_path, capture_output=True, text=True,
        timeout=170,
    )  # fmt: skip


def _json_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("{")]


def test_up_with_runpod_unreachable_exits_6_and_prints_no_json(tmp_path: Path) -> None:
    started = time.monotonic()
    up = _podmgr(tmp_path, "up")
    assert up.returncode == 6, up.stdout + up.stderr
    assert time.monotonic() - started < 170
    assert _json_lines(up.stdout) == [] and _json_lines(up.stderr) == [], up.stderr
    assert "RunPod unreachable at http://127.0.0.1:" in up.stderr and "1 pass(es)" in up.stderr
    log = tmp_path / ".podmgr" / "watchdog.log"
    assert f"log {log}" in up.stdout  # said once, in the header
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(entry["event"] == "api_retry" for entry in logged)


@pytest.mark.parametrize("command", [("watchdog",), ("shutdown",), ("watchdog", "--start")])
def test_passes_log_to_the_file_not_the_terminal(tmp_path: Path, command: tuple[str, ...]) -> None:
    done = _podmgr(tmp_path, *command)
    assert done.returncode == 6, done.stdout + done.stderr
    assert _json_lines(done.stdout) == [] and _json_lines(done.stderr) == [], done.stderr
    assert (tmp_path / ".podmgr" / "watchdog.log").read_text().count("api_retry") >= 1


def test_verbose_logs_to_the_terminal(tmp_path: Path) -> None:
    done = _podmgr(tmp_path, "watchdog", "--verbose")
    assert done.returncode == 6
    assert "api_retry" in done.stderr and not (tmp_path / ".podmgr" / "watchdog.log").exists()
