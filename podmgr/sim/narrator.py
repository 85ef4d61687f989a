"""What each pod's log says: host lifecycle lines, and the output of a simulated vLLM.

Pods change phase on the clock (podmgr/sim/pods.py), so the narrator looks at every pod
on each tick (and before a log is read) and writes what changed since it last looked, to
the pod's log (podmgr/sim/podlogs.py). RunPod's exact wording of its `system` lines is
undocumented (LogSource: "host lifecycle/userlogs stream"); the simulator writes:
    Pulling image <image>             a container is created (create, start)
    Image pulled in <s>s              the pull is over
    Starting container                the container starts (also after a restart in place)
    Container exited with code <n>    the container's main process ended (vLLM failing: 1
                                      or argparse's 2; a crashed container: 1)
    Restarting container              RunPod starts an exited container again
    Stopping container                a stop, a terminate or a restart of a live container
    Pod terminated                    the last line; the log ends
and, for a host whose CUDA is older than the image needs, the NVIDIA container runtime's
refusal (vllm#18813: `nvidia-container-cli: requirement error: unsatisfied condition:
cuda>=12.8`), once per container.

`container` lines of a pod whose process is real (`--run-guards`) come from that process
(podmgr/sim/podproc.py); other pods get what vLLM v0.8.5 prints, in its log format
(`INFO MM-DD hh:mm:ss [file.py:line] message`, vllm/logger.py; file names from vLLM's
source: entrypoints/openai/api_server.py, model_executor/model_loader/weight_utils.py,
v1/worker/gpu_model_runner.py; line numbers are illustrative) and uvicorn's start-up
lines. A vLLM that cannot start prints its error and exits; RunPod restarts the
container every `CRASH_LOOP_SECONDS` (its restart policy's timing is undocumented).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from podmgr.guard.launch import is_guard_entrypoint
from podmgr.sim.pods import SimPod
from podmgr.sim.world import SimWorld

__all__ = ["CRASH_LOOP_SECONDS", "VLLM_LOG_VERSION", "Narrator"]

CRASH_LOOP_SECONDS = 5.0
VLLM_LOG_VERSION = "0.8.5"
_ARG_ERROR_CHARS = 120
_USAGE = (
    "usage: api_server.py [-h] [--host HOST] [--port PORT] "
    "[--uvicorn-log-level {debug,info,warning,error,critical,trace}] "
    "[--api-key API_KEY] [--model MODEL] ..."
)


@dataclass
class _Seen:
    """What the narrator last wrote for one pod."""

    status: str = ""
    container: float = -1.0
    up: bool = False
    stage: str = ""
    cuda_told: bool = False
    crashed: bool = False
    next_crash_loop: float = 0.0
    closed: bool = False


def _vllm(now: float, where: str, message: str, level: str = "INFO") -> str:
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%m-%d %H:%M:%S")
    return f"{level} {stamp} [{where}] {message}"


def _version(now: float) -> str:
    return _vllm(now, "api_server.py:1090", f"vLLM API server version {VLLM_LOG_VERSION}")


class Narrator:
    """Writes each pod's log lines from its state (see the module docstring)."""

    def __init__(self, world: SimWorld) -> None:
        self._world = world
        self._seen: dict[str, _Seen] = {}

    def observe(self) -> None:
        world = self._world
        for pod in list(world.fleet.all()):
            seen = self._seen.setdefault(pod.id, _Seen())
            if not seen.closed:
                self._step(pod, seen, world.now())

    def _sys(self, pod: SimPod, line: str) -> None:
        self._world.logs.system(pod.id, line)

    def _out(self, pod: SimPod, line: str) -> None:
        self._world.logs.container(pod.id, line)

    def _real_process(self, pod: SimPod) -> bool:
        return self._world.settings.run_guards and is_guard_entrypoint(pod.spec.docker_entrypoint)

    def _step(self, pod: SimPod, seen: _Seen, now: float) -> None:
        if pod.status != "RUNNING":
            if seen.up or (seen.status == "RUNNING" and not seen.crashed):
                self._sys(pod, "Stopping container")
            seen.up, seen.status = False, pod.status
            if pod.status == "TERMINATED":
                self._sys(pod, "Pod terminated")
                self._world.logs.close(pod.id)
                seen.closed = True
            return
        if seen.container != pod.container_started_at:
            if seen.up:
                self._sys(pod, "Stopping container")
            if not pod.skip_pull:
                self._sys(pod, f"Pulling image {pod.spec.image_name}")
            seen.container, seen.up, seen.stage = pod.container_started_at, False, ""
            seen.cuda_told = seen.crashed = False
        seen.status = "RUNNING"
        timings = self._world.settings.timings
        if not pod.image_starts:
            self._refuse_cuda(pod, seen, now)
            return
        if pod.container_crashed:
            if not seen.crashed:
                self._sys(pod, "Container exited with code 1")
                seen.crashed, seen.up = True, False
            return
        up = pod.uptime(now, timings)
        if up is None:
            return
        if not seen.up:
            if not pod.skip_pull:
                self._sys(pod, f"Image pulled in {timings.pull_seconds:.1f}s")
            self._sys(pod, "Starting container")
            seen.up = True
            seen.next_crash_loop = now
        if not self._real_process(pod):
            self._vllm_lines(pod, seen, now)

    def _refuse_cuda(self, pod: SimPod, seen: _Seen, now: float) -> None:
        timings = self._world.settings.timings
        pulled = now >= pod.container_started_at + timings.pull_seconds
        if pulled and not seen.cuda_told:
            need = self._world.settings.image_min_cuda
            self._sys(pod, f"Image pulled in {timings.pull_seconds:.1f}s")
            self._sys(
                pod,
                "error starting container: nvidia-container-cli: requirement error: "
                f"unsatisfied condition: cuda>={need}, please update your driver to a newer "
                "version, or use an earlier cuda container",
            )
            seen.cuda_told = True

    def _vllm_lines(self, pod: SimPod, seen: _Seen, now: float) -> None:
        phase = pod.phase(now, self._world.settings.timings)
        if phase == "failing":
            self._fail(pod, seen, now)
            return
        if seen.stage == "":
            self._out(pod, _version(now))
            seen.stage = "started"
        if seen.stage == "started" and phase in ("downloading", "loading", "serving", "dead"):
            args = (
                f"args: Namespace(model='{pod.model}', host='0.0.0.0', port=8000, "
                f"max_model_len={pod.max_model_len})"
            )
            self._out(pod, _vllm(now, "api_server.py:1091", args))
            self._out(
                pod,
                _vllm(now, "weight_utils.py:265", "Using model weights format ['*.safetensors']"),
            )
            seen.stage = "downloading"
        if seen.stage == "downloading" and phase in ("loading", "serving", "dead"):
            took = f"{pod.download_seconds:.6f}"
            self._out(
                pod,
                _vllm(
                    now,
                    "weight_utils.py:281",
                    f"Time spent downloading weights for {pod.model}: {took} seconds",
                ),
            )
            seen.stage = "loading"
        if seen.stage == "loading" and phase in ("serving", "dead"):
            load = f"{self._world.settings.timings.load_seconds:.6f}"
            self._out(
                pod,
                _vllm(
                    now,
                    "gpu_model_runner.py:1347",
                    f"Model loading took 14.9927 GiB and {load} seconds",
                ),
            )
            self._out(
                pod,
                _vllm(now, "api_server.py:1028", "Starting vLLM API server on http://0.0.0.0:8000"),
            )
            for line in (
                "Started server process [1]",
                "Waiting for application startup.",
                "Application startup complete.",
            ):
                self._out(pod, f"INFO:     {line}")
            seen.stage = "serving"

    def _fail(self, pod: SimPod, seen: _Seen, now: float) -> None:
        """vLLM exits on start; RunPod restarts the container (see the module docstring)."""
        if now < seen.next_crash_loop:
            return
        if seen.stage == "restarting":
            self._sys(pod, "Restarting container")
            self._sys(pod, "Starting container")
        error = pod.spec.vllm_arg_error
        if error is not None and not pod.zero_gpus:
            # argparse refuses the arguments before the server logs anything
            # (api_server.py: `parser.parse_args()` comes before `run_server`).
            shown = error if len(error) <= _ARG_ERROR_CHARS else error[:_ARG_ERROR_CHARS] + "..."
            self._out(pod, _USAGE)
            self._out(pod, f"api_server.py: error: unrecognized arguments: {shown}")
            code = 2  # argparse's exit status on a usage error
        else:
            # torch finds no device once the engine starts (torch/cuda/__init__.py raises
            # "No CUDA GPUs are available").
            self._out(pod, _version(now))
            self._out(pod, "Traceback (most recent call last):")
            self._out(pod, "RuntimeError: No CUDA GPUs are available")
            code = 1
        self._sys(pod, f"Container exited with code {code}")
        seen.stage = "restarting"
        seen.next_crash_loop = now + CRASH_LOOP_SECONDS
