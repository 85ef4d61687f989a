"""Helpers for the proxy's tests: real processes on free loopback ports.

- `ProxyProcess`: `python -m podmgr proxy --config ...` in a temp dir, waited for on /health.
- The upstream is always the project's simulator (tests/simkit.py): `simulated_vllm`
  starts one serving pod, whose faults and traffic counters the tests drive and read, and
  `write_pod_state` writes the state file the watchdog would write for it.
- `self_signed`: the test kit's certificate for localhost and 127.0.0.1 (TLS tests).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from simkit import self_signed

from podmgr.config import build_config
from podmgr.proxy.wake import Waker
from podmgr.sim.process import free_port, wait_http
from podmgr.state import State

__all__ = ["VLLM_KEY", "ProxyProcess", "free_port", "get_json", "self_signed"]

VLLM_KEY = "test-vllm-key-not-real"


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class ProxyProcess:
    """A real proxy process with its own config, cache dir and state file."""

    def __init__(self, workdir: Path, **fields: Any) -> None:
        self.workdir = workdir
        self.port = fields.pop("proxy_port", None) or free_port()
        self.config_path = workdir / "pod_config.json"
        self.fields = {
            "proxy_port": self.port,
            "state_file": "state.json",
            "cache_dir": "cache",
            "log_level": "info",
            **fields,
        }
        self.config_path.write_text(json.dumps(self.fields))
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None
        scheme = "https" if fields.get("use_https") else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    @property
    def state_path(self) -> Path:
        return self.workdir / "state.json"

    @property
    def cache_path(self) -> Path:
        return self.workdir / "cache"

    def start(self, context: Any = None, env: dict[str, str] | None = None) -> ProxyProcess:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "podmgr", "proxy", "--config", str(self.config_path)],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, cwd=self.workdir,
            env=env,
        )  # fmt: skip
        try:
            wait_http(self.url + "/health", context=context, what="the proxy to answer /health")
        except TimeoutError as error:
            self.stop()
            raise TimeoutError(f"{error}\nproxy log:\n{self.log_text()[-4000:]}") from None
        return self

    def log_text(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        process, self.process = self.process, None
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(sig)
                try:
                    process.wait(timeout=60)  # a clean stop is checked; give it time
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            code = process.returncode
        return code

    def close(self) -> None:
        self.stop()
        if self.log is not None:
            self.log.close()
            self.log = None

    def health(self) -> Any:
        return get_json(self.url + "/health")


def make_waker(tmp_path: Path, state: State | None, **fields: Any) -> Waker:
    """A `Waker` with wake on request and `fields` on, reading `state`, whose wake runs
    `true` (no `podmgr up`)."""
    config = build_config({"wake_on_request": True, **fields}, base_dir=tmp_path, environ={})
    return Waker(config, tmp_path / "pod_config.json", lambda: state, command=["true"])


def wake_window_two_hours_on() -> str:
    """A one-minute `wake_hours` window two hours from now (local time): now is outside it."""
    now = time.localtime()
    start = (now.tm_hour * 60 + now.tm_min + 120) % 1440
    end = start + 1
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60 % 24:02d}:{end % 60:02d}"
