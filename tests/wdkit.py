"""A watchdog harness on the simulator: a config in a temp dir, passes run in-process.

Tests get one through the `wd` fixture or the `make_wd(sim, **config)` factory
(tests/conftest.py). `wd.run()` is one pass with podmgr's REST v2 client against
`podmgr sim`, a stand-in proxy (tests/watchdog/standin_proxy.py) on a free port, and the
real clock; timings are fractions of a second. A pass never waits for the pod: `wd.up()`
is `podmgr up`'s loop (runner.run_until_serving) over `wd.run()` passes, for tests that
need a serving pod. One simulator serves the whole run (starting one costs ~0.7 s); each
test gets its own pod name prefix, sees only its own pods in the ledger, and at teardown
its faults are cleared, its pods terminated and its proxies stopped.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podmgr.config import Config, load_config
from podmgr.sim.process import SimProcess, free_port
from podmgr.state import State, StateStore
from podmgr.watchdog.observed import Request
from podmgr.watchdog.proxy_probe import is_our_proxy, pid_alive
from podmgr.watchdog.runner import PassResult, UpResult, run_pass, run_until_serving

STANDIN = Path(__file__).parent / "watchdog" / "standin_proxy.py"


class Harness:
    def __init__(self, sim: SimProcess, directory: Path) -> None:
        self.sim = sim
        self.prefix = f"t{uuid.uuid4().hex[:8]}-"
        self.dir = directory
        self.config_path = directory / "pod_config.json"
        self.lines: list[str] = []
        self.proxy_pids: set[int] = set()
        self.values: dict[str, Any] = {
            "gpu_type_id": ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000"],
            "endpoint_url_template": sim.pod_url_template,
            "runtime_seconds": 600,
            "initial_wait_seconds": 0,
            "poll_interval_seconds": 0.05,
            "max_startup_attempts": 100,
            "watchdog_interval_seconds": 1,
            "restart_backoff_seconds": 0,
            "health_probe_attempts": 2,
            "api_retry_initial_seconds": 0.01,
            "api_retry_max_seconds": 2,
            "proxy_port": free_port(),
            "proxy_start_timeout_seconds": 60,  # a loaded machine took >10 s to start a proxy
            "state_file": "state/state.json",
            "pod_name_prefix": self.prefix,
        }
        self.configure()

    def configure(self, **values: Any) -> None:
        self.values.update(values)
        self.config_path.write_text(json.dumps(self.values))

    @property
    def config(self) -> Config:
        return load_config(self.config_path, environ={})

    @property
    def store(self) -> StateStore:
        return StateStore(self.config.state_path)

    def state(self) -> State:
        state = self.store.peek()
        assert state is not None
        return state

    def command(self) -> list[str]:
        return [sys.executable, str(STANDIN), "proxy", "--config", str(self.config_path)]

    def run(self, request: Request = "pass", dry_run: bool = False) -> PassResult:
        result = run_pass(
            self.config,
            self.config_path,
            request=request,
            dry_run=dry_run,
            emit=self.lines.append,
            proxy_command=self.command(),
        )
        if result.state.proxy_pid:
            self.proxy_pids.add(result.state.proxy_pid)
        return result

    def up(self) -> UpResult:
        """`podmgr up`'s loop with this harness's timings; raises what the CLI would exit with."""
        result = run_until_serving(
            self.config, self.config_path, emit=self.lines.append, pass_once=self.run
        )
        if result.error is not None:
            raise result.error
        return result

    def ledger(self) -> list[dict[str, Any]]:
        """This test's pods only (the simulator may be shared)."""
        return [p for p in self.sim.ledger() if p["name"].startswith(self.prefix)]

    def alive(self) -> list[dict[str, Any]]:
        return [p for p in self.ledger() if p["status"] != "TERMINATED"]

    def set_last_request(self, at: float) -> None:
        (self.dir / "last_request_at").write_text(str(at))

    def cleanup(self) -> None:
        import os
        import signal

        from podmgr.runpod.client import RunPodClient

        self.sim.clear_faults()
        rest = RunPodClient(api_key=self.sim.api_key, retry_max_seconds=5)
        for pod in self.alive():
            rest.terminate_pod(pod["id"])
        state = StateStore(self.dir / "state" / "state.json").peek()
        if state is not None and state.proxy_pid:  # also from passes that raised
            self.proxy_pids.add(state.proxy_pid)
        for pid in self.proxy_pids:
            if is_our_proxy(pid, self.config_path.resolve()):
                os.kill(pid, signal.SIGKILL)
                pid_alive(pid)


# `make_wd(sim, harness_class=Harness, **config)`, the fixture of tests/conftest.py.
MakeWd = Callable[..., Harness]
