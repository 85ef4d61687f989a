"""Keeping the local proxy alive: start it detached, check it, stop it safely.

The proxy is `python -m podmgr proxy --config <abs path>`, started in its own session
(so cron's exit does not take it down) with output appended to `proxy.log` beside the
state file (mode 0600). Its pid is kept in the state file. Before signalling a pid we
check, from /proc, that it is alive and that its command line is our proxy for this
config: a recycled pid of some other program is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from podmgr.config import Config
from podmgr.errors import ProxyError
from podmgr.watchdog.clock import Clock
from podmgr.watchdog.observed import ProxyView
from podmgr.watchdog.proxy_probe import (
    fetch_proxy_health,
    is_our_proxy,
    pid_alive,
    proxy_log_path,
)

__all__ = ["ProxySupervisor"]

STOP_GRACE_SECONDS = 10.0


class ProxySupervisor:
    """Start, observe and stop the proxy for one config."""

    def __init__(
        self,
        config: Config,
        config_path: Path,
        clock: Clock,
        command: Sequence[str] | None = None,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
    ) -> None:
        self.config = config
        self.config_path = config_path.resolve()
        self.clock = clock
        self.command = list(command) if command else self.default_command(self.config_path)
        self.stop_grace = stop_grace_seconds
        self.log_path = proxy_log_path(config)

    @staticmethod
    def default_command(config_path: Path) -> list[str]:
        return [sys.executable, "-m", "podmgr", "proxy", "--config", str(config_path)]

    def view(self, known_pid: int | None) -> ProxyView:
        health = fetch_proxy_health(self.config)
        pid = known_pid if is_our_proxy(known_pid, self.config_path) else None
        if health is not None and pid is None:
            reported = health.get("pid")
            if isinstance(reported, int) and is_our_proxy(reported, self.config_path):
                pid = reported
        last = health.get("last_request_at") if health else None
        return ProxyView(
            pid=pid,
            healthy=health is not None,
            last_request_at=float(last) if isinstance(last, (int, float)) else None,
            last_request_by_model=_by_model(
                health.get("last_request_by_model") if health else None
            ),
        )

    def _port_taken(self) -> bool:
        host = "127.0.0.1" if self.config.proxy.host in ("0.0.0.0", "::", "") else None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            return sock.connect_ex((host or self.config.proxy.host, self.config.proxy.port)) == 0

    def start(self, hung_pid: int | None = None) -> int:
        """Start the proxy detached and wait for its /health; returns its pid."""
        if hung_pid is not None:
            self.stop(hung_pid)
        if self._port_taken():
            raise ProxyError(
                f"port {self.config.proxy.port} is taken by another program and it does not "
                f"answer as a podmgr proxy on {self.config.proxy.url}; free it or set proxy_port"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # The proxy needs no RunPod key, unless it wakes the pod itself (`podmgr up`).
        keep_key = self.config.limits.wake_on_request
        env = {k: v for k, v in os.environ.items() if keep_key or k != "RUNPOD_API_KEY"}
        try:
            process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                start_new_session=True,
                close_fds=True,
                env=env,
            )
        except OSError as error:
            raise ProxyError(f"cannot start the proxy: {error}") from None
        finally:
            os.close(log_fd)
        self._wait_healthy(process)
        return process.pid

    def _wait_healthy(self, process: subprocess.Popen[bytes]) -> None:
        deadline = self.clock.now() + self.config.watchdog.proxy_start_timeout_seconds
        while self.clock.now() < deadline:
            if process.poll() is not None:
                raise ProxyError(
                    f"the proxy exited with code {process.returncode} at start; "
                    f"see {self.log_path}: {self._log_tail()}"
                )
            if fetch_proxy_health(self.config, timeout=1.0) is not None:
                return
            self.clock.sleep(0.1)
        self.stop(process.pid)
        raise ProxyError(f"the proxy did not answer /health in time; see {self.log_path}")

    def _log_tail(self, limit: int = 300) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:].strip()
        except OSError:
            return ""

    def stop(self, pid: int) -> bool:
        """SIGTERM, up to the grace period, then SIGKILL. False if pid is not our proxy."""
        if not is_our_proxy(pid, self.config_path):
            return False
        self._signal(pid, signal.SIGTERM)
        deadline = self.clock.now() + self.stop_grace
        while self.clock.now() < deadline:
            if not pid_alive(pid):
                return True
            self.clock.sleep(0.05)
        if is_our_proxy(pid, self.config_path):
            self._signal(pid, signal.SIGKILL)
            for _ in range(100):
                if not pid_alive(pid):
                    break
                self.clock.sleep(0.02)
        return True

    @staticmethod
    def _signal(pid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:  # our proxy leads its own group: include its workers
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)


def _by_model(reported: object) -> dict[str, float]:
    """The proxy's `last_request_by_model` (issue 23): model -> time; anything else dropped."""
    if not isinstance(reported, dict):
        return {}
    return {
        str(model): float(at)
        for model, at in reported.items()
        if isinstance(at, (int, float)) and not isinstance(at, bool)
    }
