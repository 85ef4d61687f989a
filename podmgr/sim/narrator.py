"""What each pod's log says: host lifecycle lines, and the output of a simulated vLLM.

Pods change phase on the clock (podmgr/sim/pods.py), so the narrator looks at every pod
on each tick (and before a log is read) and writes what came due since it last looked, to
the pod's log (podmgr/sim/podlogs.py). RunPod's exact wording of its `system` lines is
undocumented (LogSource: "host lifecycle/userlogs stream"); the simulator writes:
    Pulling image <image>             a container is created (create, start)
    Image pulled in <s>s              the pull is over
    Starting container                the container starts (also after a restart in place)
    Container exited with code <n>    the container's main process ended (vLLM failing: 1,
                                      argparse's 2; a crashed container: 1; vLLM shutting
                                      down after its engine died: 0)
    Restarting container              RunPod starts an exited container again
    Stopping container                a stop, a terminate or a restart of a live container
    Pod terminated                    the last line; the log ends
and, for a host whose CUDA is older than the image needs, the NVIDIA container runtime's
refusal (vllm#18813: `nvidia-container-cli: requirement error: unsatisfied condition:
cuda>=12.8`), once per container.

`container` lines of a pod whose process is real (`--run-guards`) come from that process
(podmgr/sim/podproc.py); other pods get what vLLM v0.8.5 prints, in its log format
(`INFO MM-DD hh:mm:ss [file.py:line] message`, vllm/logger.py; line numbers are
illustrative), each when its phase gets there on the pod's clock (`_timeline`: offsets from
the moment the container starts; d the download, L the load; files under vllm/):
  0       vLLM API server version 0.8.5; args: Namespace(...)  entrypoints/openai/api_server.py
  0       Initializing a V1 LLM engine (v0.8.5) with config: ...   v1/engine/core.py
  0       Starting to load model <model>...                     v1/worker/gpu_model_runner.py
  0       Using model weights format ['*.safetensors']          model_loader/weight_utils.py
  d       Time spent downloading weights for <model>: X seconds weight_utils.py (only if d > 0)
  d+0.6L  Loading weights took X seconds                        model_loader/loader.py
          Model loading took Y GiB and X seconds                gpu_model_runner.py (X counts
                                                                the download: it times get_model)
          GPU KV cache size: N tokens; Maximum concurrency ...  v1/core/kv_cache_utils.py
  d+0.7L  Capturing cudagraphs for decoding. This may lead to unexpected consequences if the
          model is not static. ...      (V0's worker/model_runner.py wording: the V1 runner of
                                        v0.8.5 logs only the end)
  d+L     Graph capturing finished in X secs, took Y GiB        v1/worker/gpu_model_runner.py
          init engine (profile, create kv cache, warmup model) took X seconds   v1/engine/core.py
  d+L     Starting vLLM API server on http://0.0.0.0:8000       api_server.py: the moment the
          Available routes are: ...                             pod URL serves (launcher.py)
          INFO:     Application startup complete.               uvicorn
(model_loader/ is vllm/model_executor/model_loader/.)
A vLLM that cannot start prints its failure's lines at that failure's moment instead, and
exits (podmgr/sim/fatal.py holds every failure's lines); the narrator writes the exit and
has RunPod restart the container (`SimPod.restart_after_exit`). A V1 engine that died
(`vllm_die`) prints its error when it dies, and its shutdown when its API server exits.
"""

from __future__ import annotations

from dataclasses import dataclass

from podmgr.guard.launch import is_guard_entrypoint
from podmgr.sim import fatal
from podmgr.sim.fatal import GRAPHS_SHARE, LOADED_SHARE, vllm_line
from podmgr.sim.pods import RESTART_SECONDS, SimPod, Timings
from podmgr.sim.world import SimWorld

__all__ = ["CRASH_LOOP_SECONDS", "VLLM_LOG_VERSION", "Narrator"]

CRASH_LOOP_SECONDS = RESTART_SECONDS
VLLM_LOG_VERSION = "0.8.5"
# Figures of the simulated start-up (an RTX 4090 serving a ~7B model in bf16).
_MODEL_GIB = 14.9927
_KV_CACHE_TOKENS = 98304
_GRAPHS_GIB = 0.45
_ROUTES = (
    ("/openapi.json", "HEAD, GET"), ("/docs", "HEAD, GET"), ("/redoc", "HEAD, GET"),
    ("/health", "GET"), ("/load", "GET"), ("/ping", "POST, GET"), ("/tokenize", "POST"),
    ("/detokenize", "POST"), ("/v1/models", "GET"), ("/version", "GET"),
    ("/v1/chat/completions", "POST"), ("/v1/completions", "POST"), ("/v1/embeddings", "POST"),
    ("/pooling", "POST"), ("/score", "POST"), ("/v1/score", "POST"), ("/rerank", "POST"),
    ("/v1/rerank", "POST"), ("/v2/rerank", "POST"), ("/invocations", "POST"),
    ("/metrics", "GET"),
)  # fmt: skip


@dataclass(frozen=True)
class _Event:
    """A line due `offset` seconds after the container started; `where` None: printed as
    is. `failure`: the line belongs to a start-up failure (a real process prints the rest)."""

    offset: float
    where: str | None
    text: str
    failure: bool = False


@dataclass
class _Seen:
    """What the narrator last wrote for one pod."""

    status: str = ""
    container: float = -1.0
    up: bool = False
    emitted: int = 0
    restarting: bool = False
    exited: bool = False
    engine_told: bool = False
    cuda_told: bool = False
    crashed: bool = False
    closed: bool = False


def _timeline(pod: SimPod, timings: Timings, now: float) -> list[_Event]:
    """The container's vLLM lines in order, up to its failure if it has one."""
    d, load = pod.download_seconds, timings.load_seconds
    loaded = d + LOADED_SHARE * load
    model, length = pod.model, pod.max_model_len
    normal = [
        _Event(0.0, "api_server.py:1090", f"vLLM API server version {VLLM_LOG_VERSION}"),
        _Event(
            0.0,
            "api_server.py:1091",
            f"args: Namespace(model='{model}', host='0.0.0.0', port=8000, max_model_len={length})",
        ),
        _Event(
            0.0,
            "core.py:58",
            f"Initializing a V1 LLM engine (v{VLLM_LOG_VERSION}) with config: model='{model}', "
            f"tokenizer='{model}', dtype=torch.bfloat16, max_seq_len={length}, "
            "tensor_parallel_size=1, enforce_eager=False",
        ),
        _Event(0.0, "gpu_model_runner.py:1329", f"Starting to load model {model}..."),
        _Event(0.0, "weight_utils.py:265", "Using model weights format ['*.safetensors']"),
    ]
    if d > 0:
        normal.append(
            _Event(
                d,
                "weight_utils.py:281",
                f"Time spent downloading weights for {model}: {d:.6f} seconds",
            )
        )
    weights = LOADED_SHARE * load
    concurrency = _KV_CACHE_TOKENS / max(length, 1)
    normal += [
        _Event(loaded, "loader.py:458", f"Loading weights took {weights:.2f} seconds"),
        _Event(
            loaded,
            "gpu_model_runner.py:1347",
            f"Model loading took {_MODEL_GIB:.4f} GiB and {d + weights:.6f} seconds",
        ),
        _Event(loaded, "kv_cache_utils.py:634", f"GPU KV cache size: {_KV_CACHE_TOKENS:,} tokens"),
        _Event(
            loaded,
            "kv_cache_utils.py:637",
            f"Maximum concurrency for {length:,} tokens per request: {concurrency:.2f}x",
        ),
        _Event(
            d + GRAPHS_SHARE * load,
            "gpu_model_runner.py:1567",
            "Capturing cudagraphs for decoding. This may lead to unexpected consequences if the "
            "model is not static. To run the model in eager mode, set 'enforce_eager=True' or "
            "use '--enforce-eager' in the CLI. If out-of-memory error occurs during cudagraph "
            "capture, consider decreasing `gpu_memory_utilization` or switching to eager mode. "
            "You can also reduce the `max_num_seqs` as needed to decrease memory usage.",
        ),
        _Event(
            d + load,
            "gpu_model_runner.py:1592",
            f"Graph capturing finished in {(1 - GRAPHS_SHARE) * load:.0f} secs, "
            f"took {_GRAPHS_GIB:.2f} GiB",
        ),
        _Event(
            d + load,
            "core.py:159",
            "init engine (profile, create kv cache, warmup model) took "
            f"{(1 - LOADED_SHARE) * load:.2f} seconds",
        ),
        _Event(d + load, "api_server.py:1028", "Starting vLLM API server on http://0.0.0.0:8000"),
        _Event(d + load, "launcher.py:26", "Available routes are:"),
        *(
            _Event(d + load, "launcher.py:34", f"Route: {path}, Methods: {methods}")
            for path, methods in _ROUTES
        ),
        _Event(d + load, None, "INFO:     Started server process [1]"),
        _Event(d + load, None, "INFO:     Waiting for application startup."),
        _Event(d + load, None, "INFO:     Application startup complete."),
    ]
    failure = pod.failure
    if failure is None:
        return normal
    # Where the failure cuts in: argparse before anything, the Hub after the version and
    # args lines, loading after the download's lines, "loaded" after the loading lines.
    downloaded = 5 + (1 if d > 0 else 0)
    cut = {"argv": 0, "engine": 2, "load": downloaded, "loaded": downloaded + 2}
    strike = failure.offset(d, load)
    lines = [_Event(strike, None, line, failure=True) for line in failure.lines(now)]
    return [*normal[: cut.get(failure.failure.moment or "", 0)], *lines]


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
            if seen.up or (seen.status == "RUNNING" and not seen.crashed and not seen.exited):
                self._sys(pod, "Stopping container")
            seen.up, seen.status = False, pod.status
            if pod.status == "TERMINATED":
                self._sys(pod, "Pod terminated")
                self._world.logs.close(pod.id)
                seen.closed = True
            return
        if seen.container != pod.container_started_at:
            self._new_container(pod, seen, now)
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
            if seen.restarting:
                self._sys(pod, "Restarting container")
            elif not pod.skip_pull:
                self._sys(pod, f"Image pulled in {timings.pull_seconds:.1f}s")
            self._sys(pod, "Starting container")
            seen.up, seen.exited = True, False
        self._world.arm_fatal(pod, now, named_only=True)
        self._vllm_lines(pod, seen, now, up)

    def _new_container(self, pod: SimPod, seen: _Seen, now: float) -> None:
        """A new container (create, start, reset), or RunPod restarting an exited one."""
        exit_ = pod.last_exit
        if exit_ is not None:
            if not seen.exited:  # vLLM shut down after its engine died (podmgr/sim/edge.py)
                if not self._real_process(pod):
                    for line in fatal.render("vllm_die:exit", now, {}):
                        self._out(pod, line)
                self._sys(pod, f"Container exited with code {exit_.code}")
        else:
            if seen.up:
                self._sys(pod, "Stopping container")
            if not pod.skip_pull:
                self._sys(pod, f"Pulling image {pod.spec.image_name}")
        seen.container, seen.up, seen.emitted = pod.container_started_at, False, 0
        seen.restarting, seen.exited = exit_ is not None, exit_ is not None
        seen.cuda_told = seen.crashed = seen.engine_told = False

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

    def _vllm_lines(self, pod: SimPod, seen: _Seen, now: float, up: float) -> None:
        """The container's lines that came due, then its failure's exit, or its engine's death."""
        timings = self._world.settings.timings
        events = _timeline(pod, timings, now)
        real = self._real_process(pod)
        while seen.emitted < len(events) and events[seen.emitted].offset <= up:
            event = events[seen.emitted]
            seen.emitted += 1
            if real and not event.failure:
                continue  # the process prints its own start-up
            self._out(
                pod, event.text if event.where is None else vllm_line(now, event.where, event.text)
            )
        failure = pod.failure
        if failure is not None and seen.emitted >= len(events):
            code = failure.failure.code
            self._sys(pod, f"Container exited with code {code}")
            seen.exited = True
            pod.restart_after_exit(now, timings, code, "fatal")
            return
        if pod.engine_dead and not seen.engine_told and seen.emitted >= len(events):
            if not real:
                for line in fatal.render("vllm_die", now, {}):
                    self._out(pod, line)
            seen.engine_told = True
