"""`podmgr demo` (what `make run` runs): the whole tool against the RunPod simulator.

Starts `podmgr sim`, writes a demo config under `.podmgr/demo/`, runs watchdog passes as
separate processes every interval (as cron would; the first is `podmgr up`), and keeps the
proxy on 127.0.0.1:8000. Ctrl-C (SIGINT) or SIGTERM, or the end of `--duration`, runs a
shutdown pass (terminates the simulated pod, stops the proxy) and stops the simulator,
whatever happened to stdout. The exit code is 0 only if the simulator's ledger shows
every pod terminated.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from podmgr.cli.options import podmgr_command
from podmgr.errors import ConfigError
from podmgr.sim.process import DOCUMENT_RATE_LIMIT, SimProcess

__all__ = ["DemoOptions", "demo_config", "run_demo"]

PASS_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class DemoOptions:
    proxy_port: int = 8000
    interval: float = 10.0
    duration: float | None = None
    runtime: int = 900
    directory: str = ".podmgr/demo"
    pull_seconds: float = 2.0
    load_seconds: float = 3.0


def demo_config(options: DemoOptions, pod_url_template: str) -> dict[str, Any]:
    """The demo's pod_config.json: short session, fast polling, the simulator's pod URLs."""
    return {
        "gpu_type_id": ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000"],
        "runtime_seconds": options.runtime,
        "max_cost_usd": 5.0,
        "endpoint_url_template": pod_url_template,
        "watchdog_interval_seconds": max(1, int(options.interval)),
        "initial_wait_seconds": 1,
        "poll_interval_seconds": 1,
        "max_startup_attempts": 60,
        "proxy_port": options.proxy_port,
        "state_file": "state.json",
        "cache_dir": "cache",
        "api_retry_initial_seconds": 0.2,
        "api_retry_max_seconds": 10,
    }


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _another(port: int) -> int:
    """A free port to suggest instead of `port` (the next free one above it)."""
    for candidate in range(port + 1, min(port + 100, 65536)):
        if _port_free(candidate):
            return candidate
    return 8001 if port != 8001 else 8002


class _Stop(Exception):
    """SIGINT/SIGTERM arrived: leave the loop and shut down."""


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def run_demo(options: DemoOptions, emit: Callable[[str], None], python: str) -> int:
    """Run the demo until Ctrl-C or `duration`; returns the exit code."""
    if not _port_free(options.proxy_port):
        raise ConfigError(
            f"port {options.proxy_port} on 127.0.0.1 is taken; pick another: `make run "
            f"PROXY_PORT={_another(options.proxy_port)}` or `{podmgr_command()} demo "
            f"--proxy-port {_another(options.proxy_port)}`",
            field="--proxy-port",
        )
    directory = Path(options.directory).resolve()
    (directory / "home").mkdir(parents=True, exist_ok=True)
    # Each demo starts a fresh simulator: a state file from an earlier one names pods
    # that never existed here.
    (directory / "state.json").unlink(missing_ok=True)
    emit = _never_raising(emit)
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    sim = SimProcess(
        pull_seconds=options.pull_seconds,
        load_seconds=options.load_seconds,
        rate_limit=DOCUMENT_RATE_LIMIT,  # RunPod's own limits: the demo rehearses real use
        extra_args=["--run-guards"],  # the pod's guard runs for real: its armed line is read
    )
    try:
        try:
            _start_shielded(sim)
        except _Stop:
            return 130
        config_path = directory / "pod_config.json"
        config_path.write_text(json.dumps(demo_config(options, sim.pod_url_template), indent=2))
        runner = _PassRunner(python, config_path, sim.env(directory / "home"), emit)
        try:
            _loop(options, runner, emit, sim)
        except _Stop:
            emit("stopping: shutdown pass, then the simulator")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            runner.stop_current()
            runner.run("shutdown")
        return _report(sim, emit)
    finally:
        sim.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _never_raising(emit: Callable[[str], None]) -> Callable[[str], None]:
    """`emit` that cannot abort the cleanup: output may fail (stdout a closed pipe after
    `make run | tee log` and Ctrl-C), the shutdown pass and `sim.stop()` must not."""

    def say(line: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # ValueError: a closed file
            emit(line)

    return say


def _start_shielded(sim: SimProcess) -> None:
    """Start the simulator so that a terminal's Ctrl-C does not reach it.

    Ctrl-C signals the whole foreground process group; the simulator must outlive it to
    answer the shutdown pass. A blocked signal mask is inherited across fork and exec, so
    the child never sees SIGINT; it still stops on the SIGTERM that `sim.stop()` sends.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        sim.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _loop(options: DemoOptions, runner: _PassRunner, emit: Callable[[str], None], sim: Any) -> None:
    started = time.monotonic()
    emit(f"simulated RunPod API at {sim.base_url}")
    runner.run("up")
    port = options.proxy_port
    emit("")
    emit(f"proxy:     http://127.0.0.1:{port}/v1   (OpenAI base URL; any key)")
    emit(f"dashboard: http://127.0.0.1:{port}/dashboard")
    emit(
        f"try:       curl http://127.0.0.1:{port}/v1/chat/completions "
        "-H 'Content-Type: application/json' "
        '-d \'{"model": "Qwen/Qwen2.5-Coder-7B-Instruct", '
        '"messages": [{"role": "user", "content": "Say hi"}]}\''
    )
    emit(f"           curl http://127.0.0.1:{port}/dashboard")
    emit(f"status:    {podmgr_command()} status --config {runner.config_path}")
    emit(f"a watchdog pass runs every {options.interval:g}s; Ctrl-C stops everything")
    emit("")
    while True:
        next_at = time.monotonic() + options.interval
        if options.duration is not None and next_at - started >= options.duration:
            time.sleep(max(0.0, started + options.duration - time.monotonic()))
            return
        time.sleep(max(0.0, next_at - time.monotonic()))
        runner.run("watchdog")


class _PassRunner:
    """Runs `podmgr <command> --config ...` as its own process, as cron would."""

    def __init__(
        self, python: str, config_path: Path, env: dict[str, str], emit: Callable[[str], None]
    ) -> None:
        self.python, self.config_path, self.env, self.emit = python, config_path, env, emit
        self.current: subprocess.Popen[str] | None = None

    def run(self, command: str) -> int:
        args = [self.python, "-m", "podmgr", command, "--config", str(self.config_path)]
        self.current = subprocess.Popen(
            args,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the demo, which decides what to stop
        )
        assert self.current.stdout is not None
        for line in self.current.stdout:
            self.emit("  | " + line.rstrip())
        code = self.current.wait(timeout=PASS_TIMEOUT_SECONDS)
        self.current = None
        if code != 0:
            self.emit(f"  (pass exited with code {code})")
        return code

    def stop_current(self) -> None:
        process, self.current = self.current, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _report(sim: SimProcess, emit: Callable[[str], None]) -> int:
    ledger = sim.ledger()
    alive = [p["id"] for p in ledger if p["status"] != "TERMINATED"]
    emit(
        f"simulator ledger: {len(ledger)} pod(s), ${sim.total_cost():.4f} billed, "
        + (f"STILL ALIVE: {', '.join(alive)}" if alive else "all terminated")
    )
    return 1 if alive else 0
