"""Pods that run for real: a guard start command as a process per simulated pod.

With `podmgr sim --run-guards`, a pod whose entrypoint is podmgr's guard
(podmgr/guard/launch.py; over REST v2 it comes as start-command JSON in `args`,
podmgr/sim/v2/create.py) gets a real container process: `python -c <guard> vllm serve ...`
(the entrypoint's `python3` is this interpreter), in its own process group, with the env
RunPod gives a pod: the create's env, `RUNPOD_POD_ID`, a pod-scoped `RUNPOD_API_KEY`
(podmgr/sim/podkeys.py) and `PODMGR_GUARD_API_URL` set to this simulator's REST API v2
(`<base>/v2`), so a pod never reaches real RunPod. Its PATH starts with a directory
holding the stand-in `vllm` (podmgr/sim/standin_vllm.py), which gets its own localhost
port (`SIM_VLLM_PORT`, also `PODMGR_GUARD_VLLM_URL`: pods share this machine's localhost).

One reconcile loop (every `TICK_SECONDS`) keeps processes and pods in step:
  - the container starts (the pull is over) -> start the process;
  - the pod is stopped, terminated or its container crashed -> kill the process group;
  - the pod's container started afresh (resume, reset) -> a fresh process;
  - the process exited (vLLM exited, or the guard was killed: PID 1 gone) -> the whole
    group is killed, as the kernel does to a container whose PID 1 dies, and the container
    restarts after `RESTART_SECONDS`, as RunPod restarts an exited container.
While no process runs, the pod's URL answers 502 (SimWorld.container_down).
Each process's stdout and stderr go to a log file (GET /_sim/pods/{id}/log); every line
written there becomes a `container` line of the pod's log (GET /v2/pods/{id}/logs), read
on each tick, and an exit writes the `system` lines "Container exited with code N" and
"Restarting container" (podmgr/sim/narrator.py lists the wording).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aiohttp import web

from podmgr.guard.launch import is_guard_entrypoint
from podmgr.logs import get_logger
from podmgr.sim.podkeys import pod_key_for
from podmgr.sim.pods import SimPod
from podmgr.sim.world import SimWorld

__all__ = ["PROCESSES", "PodProcesses"]

TICK_SECONDS = 0.1
RESTART_SECONDS = 1.0
_log = get_logger("sim.podproc")
_STANDIN = """#!{python}
import sys
sys.path.insert(0, {root!r})
from podmgr.sim.standin_vllm import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass
class _Run:
    """The process of one pod's current container."""

    process: subprocess.Popen[bytes] | None
    container_started_at: float
    starts: int = 0
    restart_at: float = 0.0
    vllm_port: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PodProcesses:
    """Real processes for guard-run pods, kept in step with the world."""

    def __init__(self, world: SimWorld, base_url: str) -> None:
        self._world = world
        self._base = base_url
        self._dir = Path(tempfile.mkdtemp(prefix="podmgr-sim-pods-"))
        self._bin = self._dir / "bin"
        self._bin.mkdir()
        root = str(Path(__file__).resolve().parents[2])
        standin = self._bin / "vllm"
        standin.write_text(_STANDIN.format(python=sys.executable, root=root), encoding="utf-8")
        standin.chmod(0o755)
        self._runs: dict[str, _Run] = {}
        self._logs: dict[str, IO[bytes]] = {}
        # Per pod: how far its log file was read, and an unfinished last line.
        self._read: dict[str, tuple[int, bytes]] = {}
        world.container_down = self.container_down
        world.local_vllm_url = self.local_vllm_url

    # --- queries ------------------------------------------------------------------------
    def container_down(self, pod_id: str) -> bool:
        run = self._runs.get(pod_id)
        pod = self._world.fleet.get(pod_id)
        if pod is None or not is_guard_entrypoint(pod.spec.docker_entrypoint):
            return False
        return run is None or run.process is None or run.process.poll() is not None

    def local_vllm_url(self, pod_id: str) -> str | None:
        """Where the pod's stand-in vllm listens, while its process runs."""
        if self.container_down(pod_id) or pod_id not in self._runs:
            return None
        return f"http://127.0.0.1:{self._runs[pod_id].vllm_port}"

    def describe(self, pod_id: str) -> dict[str, object]:
        run = self._runs.get(pod_id)
        if run is None:
            return {"running": False, "starts": 0, "pid": None}
        alive = run.process is not None and run.process.poll() is None
        pid = run.process.pid if run.process is not None else None
        key = next((k for k, owner in self._world.pod_keys.items() if owner == pod_id), None)
        return {
            "running": alive,
            "starts": run.starts,
            "pid": pid,
            "vllm_port": run.vllm_port,
            "pod_key": key,  # a fake key, for tests of its scope
        }

    def log_text(self, pod_id: str) -> str:
        path = self._dir / f"{pod_id}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    # --- the loop -----------------------------------------------------------------------
    async def run_forever(self) -> None:
        while True:
            try:
                self.reconcile()
            except Exception as error:  # one bad tick must not end the loop (STYLE 9)
                _log.error("podproc_tick_failed", error=repr(error))
            await asyncio.sleep(TICK_SECONDS)

    def reconcile(self) -> None:
        now = self._world.now()
        for pod in list(self._world.fleet.all()):
            if is_guard_entrypoint(pod.spec.docker_entrypoint):
                self._step(pod, now)
                self._pump(pod.id)

    def _pump(self, pod_id: str) -> None:
        """New lines of the pod's process output into the pod's log."""
        path = self._dir / f"{pod_id}.log"
        if not path.exists():
            return
        offset, partial = self._read.get(pod_id, (0, b""))
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        if not chunk:
            return
        *lines, partial = (partial + chunk).split(b"\n")
        self._read[pod_id] = (offset + len(chunk), partial)
        for line in lines:
            self._world.logs.container(pod_id, line.decode(errors="replace").rstrip("\r"))

    def _step(self, pod: SimPod, now: float) -> None:
        run = self._runs.get(pod.id)
        up = pod.uptime(now, self._world.settings.timings) is not None
        if not up:
            if run is not None:
                self._kill(pod.id, run, "pod not running")
            return
        if run is None or run.container_started_at != pod.container_started_at:
            if run is not None:
                self._kill(pod.id, run, "container started afresh")
            self._runs[pod.id] = run = _Run(None, pod.container_started_at)
        if run.process is None:
            if now >= run.restart_at:
                if run.starts:
                    self._world.logs.system(pod.id, "Restarting container")
                self._start(pod, run)
            return
        code = run.process.poll()
        if code is not None:
            self._pump(pod.id)
            self._kill(pod.id, run, f"container process exited with {code}")
            self._world.logs.system(pod.id, f"Container exited with code {code}")
            run.restart_at = now + RESTART_SECONDS

    def _start(self, pod: SimPod, run: _Run) -> None:
        run.vllm_port = _free_port()
        vllm_url = f"http://127.0.0.1:{run.vllm_port}"
        env = {
            "PATH": f"{self._bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self._dir),
            **pod.spec.env,
            "RUNPOD_POD_ID": pod.id,
            "RUNPOD_API_KEY": pod_key_for(self._world, pod.id),
            "PODMGR_GUARD_API_URL": f"{self._base}/v2",
            "PODMGR_GUARD_VLLM_URL": vllm_url,
            "SIM_VLLM_PORT": str(run.vllm_port),
            "SIM_CONTROL_URL": self._base,
            "PODMGR_GUARD_LEASE_FILE": str(self._dir / pod.id / "lease"),
        }
        entry = pod.spec.docker_entrypoint
        argv = [sys.executable, *entry[1:], *pod.spec.docker_start_cmd]
        log = self._logs.get(pod.id)
        if log is None:
            log = self._logs[pod.id] = (self._dir / f"{pod.id}.log").open("ab")
        run.process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        run.starts += 1
        _log.info("pod_process_started", pod_id=pod.id, pid=run.process.pid, starts=run.starts)

    def _kill(self, pod_id: str, run: _Run, why: str) -> None:
        process, run.process = run.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # the group: vLLM dies with its container
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        _log.info("pod_process_killed", pod_id=pod_id, pid=process.pid, why=why)

    def close(self) -> None:
        for pod_id, run in list(self._runs.items()):
            self._kill(pod_id, run, "simulator stopping")
        for log in self._logs.values():
            log.close()


PROCESSES = web.AppKey("pod_processes", PodProcesses)
"""Where the app keeps its PodProcesses (only with --run-guards)."""
