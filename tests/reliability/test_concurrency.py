"""Part 2 and part 3 (second half) of the reliability proofs, on the simulator.

20 cron passes (`podmgr watchdog`) released at the same instant: exactly one acts (one pod in the
ledger, one "started" state), the other 19 exit 0 without waiting for the lock. And a corrupted
state file is moved aside byte for byte while the next pass adopts the live pod (no second pod).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podmgr.sim.process import SimProcess, free_port, wait_until
from podmgr.state import StateStore

WATCHDOGS = 20
# Each child imports first, says so with a file of its own, then waits for the go file: the
# race is on the lock, not on imports. A loaded 2-core machine took over 10 s to start 20
# interpreters, so the waits are generous and end on a condition, not after a fixed time.
LAUNCH = (
    "import os, sys, time\n"
    "from podmgr.cli import main\n"
    "import podmgr.config, podmgr.watchdog.runner\n"
    "ready, go = sys.argv[1], sys.argv[2]\n"
    "open(ready, 'w').close()\n"
    "deadline = time.monotonic() + 300\n"
    "while not os.path.exists(go) and time.monotonic() < deadline:\n"
    "    time.sleep(0.002)\n"
    "sys.exit(main(sys.argv[3:]))\n"
)


@pytest.fixture(scope="module")
def race_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=0.1, load_seconds=0.1, token_delay=0.0) as process:
        yield process


def write_config(sim: SimProcess, directory: Path, prefix: str) -> Path:
    values: dict[str, Any] = {
        "gpu_type_id": ["NVIDIA GeForce RTX 4090"],
        "endpoint_url_template": sim.pod_url_template,
        "runtime_seconds": 60,
        "initial_wait_seconds": 0,
        "poll_interval_seconds": 0.05,
        "max_startup_attempts": 200,
        "watchdog_interval_seconds": 1,
        "restart_backoff_seconds": 0,
        "api_retry_initial_seconds": 0.01,
        "api_retry_max_seconds": 1,
        "proxy_port": free_port(),
        "proxy_start_timeout_seconds": 60,  # a loaded machine took >10 s to start a proxy
        "state_file": "state/state.json",
        "pod_name_prefix": prefix,
    }
    config = directory / "pod_config.json"
    config.write_text(json.dumps(values))
    return config


def ours(sim: SimProcess, prefix: str, alive: bool = True) -> list[dict[str, Any]]:
    pods = [p for p in sim.ledger() if p["name"].startswith(prefix)]
    return [p for p in pods if p["status"] != "TERMINATED"] if alive else pods


def cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "podmgr", *args, "--config", str(config)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_twenty_watchdogs_at_once_one_acts(race_sim: SimProcess, tmp_path: Path) -> None:
    prefix = f"r{uuid.uuid4().hex[:8]}-"
    (tmp_path / "home").mkdir()
    config = write_config(race_sim, tmp_path, prefix)
    env = race_sim.env(tmp_path / "home")
    go = tmp_path / "go"
    logs = [tmp_path / f"out{index}.txt" for index in range(WATCHDOGS)]
    readies = [tmp_path / f"ready{index}" for index in range(WATCHDOGS)]
    command = [sys.executable, "-c", LAUNCH]
    args = [str(go), "watchdog", "--config", str(config)]
    procs = [
        subprocess.Popen(
            [*command, str(ready), *args], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        for log, ready in zip(logs, readies, strict=True)
    ]
    try:
        wait_until(
            lambda: all(ready.exists() for ready in readies),
            f"all {WATCHDOGS} interpreters to import podmgr and poll for the go file",
            timeout=120,
        )
        released = time.monotonic()
        go.touch()
        for proc in procs:
            proc.wait(timeout=120)
        ended = time.monotonic() - released
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        cli(config, env, "shutdown")
    outputs = [log.read_bytes() for log in logs]
    codes = [proc.returncode for proc in procs]
    assert codes == [0] * WATCHDOGS, [out[-400:] for out in outputs]
    # The losers do not wait for the lock: a pass that waited would take it after the winner
    # and report its own actions instead of "another watchdog" (no timing needed to tell).
    losers = [i for i in range(WATCHDOGS) if b"another watchdog" in outputs[i]]
    assert len(losers) == WATCHDOGS - 1, "exactly one watchdog acts"
    print(f"concurrency: {WATCHDOGS} watchdogs, 1 acted, all ended {ended:.2f}s after go")
    assert len(ours(race_sim, prefix, alive=False)) == 1, "exactly one pod was ever created"
    assert ours(race_sim, prefix) == [], "the shutdown left a pod alive"


def test_corrupt_state_is_moved_aside_and_pod_recovered(
    race_sim: SimProcess, tmp_path: Path
) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}-"
    (tmp_path / "home").mkdir()
    config = write_config(race_sim, tmp_path, prefix)
    env = race_sim.env(tmp_path / "home")
    try:
        assert cli(config, env, "up").returncode == 0
        [pod] = ours(race_sim, prefix)
        path = tmp_path / "state" / "state.json"
        garbage = b'{"session": {"started_at": 1.0, "dead\x00\xff broken'
        path.write_bytes(garbage)
        result = cli(config, env, "watchdog")
        assert result.returncode == 0, result.stderr[-600:]
        [aside] = list(path.parent.glob("state.json.corrupt-*"))
        assert aside.read_bytes() == garbage, "the corrupt file's bytes were not preserved"
        state = StateStore(path).peek()
        assert state is not None and state.pod is not None
        assert state.pod.id == pod["id"], "the live pod was not recovered from the simulator"
        assert [p["id"] for p in ours(race_sim, prefix, alive=False)] == [pod["id"]]
    finally:
        cli(config, env, "shutdown")
    assert ours(race_sim, prefix) == []
