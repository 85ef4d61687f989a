"""Proxy supervision: detached start, restart when dead, and never signalling a stranger."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from wdkit import Harness

from podmgr.errors import ProxyError
from podmgr.sim.process import wait_until
from podmgr.watchdog.clock import SystemClock
from podmgr.watchdog.proxy_probe import fetch_health, is_our_proxy, pid_alive
from podmgr.watchdog.proxy_supervisor import ProxySupervisor


def supervisor(
    wd: Harness, command: list[str] | None = None, grace: float = 10.0
) -> ProxySupervisor:
    return ProxySupervisor(
        wd.config, wd.config_path, SystemClock(), command=command or wd.command(),
        stop_grace_seconds=grace,
    )  # fmt: skip


def test_dead_proxy_is_restarted_by_the_next_pass(wd: Harness) -> None:
    wd.up()
    first = wd.state().proxy_pid
    assert first is not None and is_our_proxy(first, wd.config_path)
    log = wd.config.state_path.parent / "proxy.log"
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not pid_alive(first), f"the killed proxy {first} to be gone")
    result = wd.run()
    assert [type(a).__name__ for a in result.actions] == ["StartProxy", "Noop"]
    second = wd.state().proxy_pid
    assert second not in (None, first) and fetch_health(wd.config.proxy.url) is not None
    assert os.getpgid(second) == second  # detached: its own session and group  # type: ignore[arg-type]
    wd.run("shutdown")
    assert not pid_alive(second)  # type: ignore[arg-type]


def test_stop_never_signals_a_process_that_is_not_our_proxy(wd: Harness) -> None:
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        assert supervisor(wd).stop(stranger.pid) is False
        time.sleep(0.1)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_escalates_to_sigkill_after_the_grace_period(wd: Harness) -> None:
    stubborn = [
        sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ignoring',"
        " flush=True); time.sleep(3600)",
        "proxy", "--config", str(wd.config_path.resolve()),
    ]  # fmt: skip
    process = subprocess.Popen(stubborn, start_new_session=True, stdout=subprocess.PIPE)
    assert process.stdout is not None
    # The handler is in place once it says so (a fixed sleep was not enough on a loaded machine).
    assert process.stdout.readline() == b"ignoring\n"
    started = time.monotonic()
    assert supervisor(wd, grace=0.5).stop(process.pid) is True
    # stop() reaps its own children, so Popen cannot see the signal. It lasted the whole
    # grace period (a lower bound: load only lengthens it), so SIGTERM was ignored; the
    # process, which would have slept an hour, is gone, so SIGKILL ended it.
    assert time.monotonic() - started >= 0.5
    assert not pid_alive(process.pid)
    process.wait(timeout=60)
    process.stdout.close()


def test_port_taken_by_another_program_is_a_clear_error(wd: Harness) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", wd.config.proxy.port))
        squatter.listen()
        with pytest.raises(ProxyError, match="taken by another program"):
            supervisor(wd).start()


def test_a_proxy_that_exits_at_start_is_reported_with_its_log(wd: Harness) -> None:
    failing = [sys.executable, "-c", "import sys; sys.exit('boom: bad settings')", "proxy"]
    with pytest.raises(ProxyError, match="boom: bad settings"):
        supervisor(wd, command=failing).start()
