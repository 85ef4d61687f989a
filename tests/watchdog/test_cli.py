"""The commands as cron and people run them: real processes, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wdkit import Harness

from podmgr.sim.process import wait_http, wait_until
from podmgr.watchdog.proxy_probe import fetch_health, pid_alive

REPO = Path(__file__).resolve().parents[2]


def cli(
    wd: Harness, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podmgr", *args, "--config", str(wd.config_path)],
        env=env or wd.sim.env(wd.dir / "home"),
        cwd=wd.dir,
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture
def standin(wd: Harness) -> Iterator[subprocess.Popen[bytes]]:
    """A stand-in proxy already running on the config's port (as if an earlier pass began it)."""
    process = subprocess.Popen(wd.command(), start_new_session=True)
    wait_http(wd.config.proxy.url + "/health", what="the stand-in proxy to answer /health")
    yield process
    process.kill()
    process.wait()


def test_manage_pod_runs_from_any_directory(wd: Harness, standin: subprocess.Popen[bytes]) -> None:
    env = wd.sim.env(wd.dir / "home")
    run = subprocess.run(
        [sys.executable, str(REPO / "manage_pod.py"), "--config", str(wd.config_path)],
        env=env, cwd="/", capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "created on" in run.stdout and "session active" in run.stdout  # one pass: no wait
    [record] = wd.alive()

    status = cli(wd, "status", "--json")
    assert status.returncode == 0
    report = json.loads(status.stdout)
    assert report["pod"]["id"] == record["id"] and report["session"]["active"]
    assert report["proxy"]["healthy"] is True
    key = wd.state().pod.vllm_api_key  # type: ignore[union-attr]
    assert key not in status.stdout and key not in run.stdout + run.stderr
    human = cli(wd, "status")
    assert record["id"] in human.stdout and "left" in human.stdout
    live = json.loads(cli(wd, "status", "--live", "--json").stdout)["live"]
    assert live["exists"] and live["status"] == "RUNNING" and live["runtime_up"]

    verbose = cli(wd, "watchdog", "--verbose")
    assert verbose.returncode == 0 and '"action"' in verbose.stderr
    for secret in (key, wd.sim.api_key):
        assert secret not in verbose.stdout + verbose.stderr

    manage = [sys.executable, str(REPO / "manage_pod.py")]
    down = subprocess.run(
        [*manage, "--shutdown", "--config", str(wd.config_path)],
        env=env, cwd="/", capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert down.returncode == 0, down.stdout + down.stderr
    assert wd.alive() == []
    assert standin.wait(timeout=60) is not None  # the proxy (ours by its command line) stopped


def test_invalid_config_exits_2_before_any_api_call(wd: Harness) -> None:
    wd.configure(runtime_seconds=-5)
    nowhere = "http://127.0.0.1:9"
    env = {
        **wd.sim.env(wd.dir / "home"),
        "RUNPOD_API_BASE_URL": nowhere,
        "RUNPOD_REST_URL": nowhere,
    }
    run = cli(wd, "watchdog", env=env)
    assert run.returncode == 2
    assert "runtime_seconds" in run.stderr
    assert not (wd.dir / "state").exists()


def test_rejected_key_exits_3_without_retrying(wd: Harness) -> None:
    env = {**wd.sim.env(wd.dir / "home"), "RUNPOD_API_KEY": "test-wrong-key-not-real"}
    before = wd.sim.rest_requests(), wd.sim.graphql_requests()
    run = cli(wd, "up", env=env)
    assert run.returncode == 3, run.stderr
    assert "RUNPOD_API_KEY" in run.stderr and "test-wrong-key" not in run.stderr
    # Counted, not timed: the one rejected call is the last (a loaded machine made time useless).
    assert (wd.sim.rest_requests(), wd.sim.graphql_requests()) == (before[0] + 1, before[1])
    assert wd.ledger() == []


def test_second_watchdog_exits_0_at_once(wd: Harness) -> None:
    with wd.store.locked():
        run = cli(wd, "watchdog")
    assert run.returncode == 0
    # The message is only printed when the lock could not be taken at once (timeout 0): a
    # pass that waited would never print it. That proves "at once" without timing it.
    assert "another watchdog is running" in run.stderr
    assert wd.ledger() == []


def test_dry_run_prints_the_plan_and_changes_nothing(wd: Harness) -> None:
    run = cli(wd, "watchdog", "--dry-run")
    assert run.returncode == 0, run.stderr
    assert "would start a session" in run.stdout and "would create a pod" in run.stdout
    assert wd.ledger() == [] and not wd.store.path.exists()


def test_refresh_catalog_lists_prices_and_checks_choices(wd: Harness) -> None:
    run = cli(wd, "watchdog", "--refresh-catalog")
    assert run.returncode == 0, run.stderr
    assert "*NVIDIA GeForce RTX 4090" in run.stdout and "0.69" in run.stdout
    assert (wd.config.state_path.parent / "catalog.json").exists()
    wd.configure(gpu_type_id=["NVIDIA GeForce RTX 4090", "NO SUCH GPU"])
    bad = cli(wd, "watchdog", "--refresh-catalog")
    assert bad.returncode == 2 and "'NO SUCH GPU' is not a RunPod GPU type" in bad.stdout
    assert wd.ledger() == []


def test_status_never_imports_the_sdk(wd: Harness) -> None:
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "podmgr", "status",
         "--config", str(wd.config_path)],
        capture_output=True, text=True, timeout=60, cwd=wd.dir,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    assert "session: none" in run.stdout
    assert "runpod" not in imported and "tenacity" not in imported and "httpx" not in imported


def test_up_serves_through_the_real_proxy_and_idle_ends_it(wd: Harness) -> None:
    """The whole chain: `up` starts the real proxy, which reaches the pod with its key."""
    import httpx

    idle = 4
    wd.configure(idle_timeout_seconds=idle)
    up = cli(wd, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    proxy_pid = wd.state().proxy_pid
    try:
        body = {
            "model": "Qwen/Qwen2.5-Coder-7B-Instruct",
            "messages": [{"role": "user", "content": "hi"}],
        }
        url = f"{wd.config.proxy.url}/v1/chat/completions"

        def past_503() -> httpx.Response | None:
            answer = httpx.post(url, json=body, timeout=30)
            return answer if answer.status_code != 503 else None

        # The proxy re-reads the state file every 0.5 s: 503 until it has seen the pod.
        answer = wait_until(past_503, "the proxy to see the ready pod (no more 503)")
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]
        health = fetch_health(wd.config.proxy.url)
        assert health is not None and health["last_request_at"] is not None
        last_request = float(health["last_request_at"])  # the proxy's time.time(), as ours
        busy = cli(wd, "watchdog")
        assert busy.returncode == 0
        # A pass that ran before the idle time was up must keep the pod; one that a loaded
        # machine delayed past it rightly ends the session itself.
        if time.time() < last_request + idle:
            assert "end the session" not in busy.stdout and len(wd.alive()) == 1
        ended = busy
        if "end the session: idle" not in busy.stdout:
            time.sleep(max(0.0, last_request + idle - time.time()) + 0.05)
            ended = cli(wd, "watchdog")
        assert ended.returncode == 0 and "end the session: idle" in ended.stdout
        assert wd.alive() == []
    finally:
        down = cli(wd, "shutdown")
    assert down.returncode == 0 and "stop the proxy" in down.stdout
    assert proxy_pid is not None and not pid_alive(proxy_pid)


@pytest.mark.parametrize("args", [("status",), ("status", "--json"), ("config", "validate")])
def test_a_reader_that_left_gets_no_traceback(wd: Harness, args: tuple[str, ...]) -> None:
    """`podmgr status | head -1`: the reader may be gone before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before the first byte: every write is EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "podmgr", *args, "--config", str(wd.config_path)],
            env=wd.sim.env(wd.dir / "home"),
            cwd=wd.dir,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=90,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr


def test_refresh_catalog_shows_price_stock_and_cuda_from_v2_and_warns_for_spot(
    wd: Harness,
) -> None:
    before = wd.sim.api_requests()
    run = cli(wd, "watchdog", "--refresh-catalog")
    assert run.returncode == 0, run.stderr
    assert "podmgr pass" not in run.stdout  # an alias of `podmgr gpus --refresh`, not a pass
    assert "stock S/C" in run.stdout and "max CUDA" in run.stdout
    row = next(line for line in run.stdout.splitlines() if "RTX 4090" in line)
    assert " 24 " in row and "0.69" in row and "HIGH/HIGH" in row and "13.0" in row, row
    after = wd.sim.api_requests()
    assert after["graphql"] == before["graphql"] and after["v2"] - before["v2"] == 2
    wd.configure(interruptible=True, gpu_type_id=["RTX 4090"])  # the name, not the id
    spot = cli(wd, "watchdog", "--refresh-catalog")
    assert spot.returncode == 2, spot.stdout
    assert "did you mean 'NVIDIA GeForce RTX 4090'?" in spot.stdout
    assert "RunPod retires in early 2027" in spot.stdout
    assert wd.ledger() == []
