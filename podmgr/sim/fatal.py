"""vLLM failing to start, in its own words: when each failure strikes and what it prints.

`FAILURES` is the one table of every fatal failure the simulator plays, the lines the
container writes and the exit status. Five are faults (podmgr/sim/faults.py), each
scoped by `pod_id` like the others; two come from the pod itself:

    bad_vllm_args      argparse refuses an argument (param `arg`; default the first `--flag`
                       in the pod's args that vLLM v0.8.5 does not know)
    gated_model        the Hub refuses the model's config.json: a gated repo, no token
    model_not_found    the Hub knows no such repo
    unsupported_arch   vLLM has no implementation of the architecture (param `arch`)
    vllm_oom           torch's CUDA allocator runs out while vLLM profiles the model after
                       the weights are loaded; `kind=kv_cache`: nothing is left for the KV
                       cache
    start_command_json RunPod passed start-command JSON to the image's entrypoint literally
                       (`--start-command-json ignore`, podmgr/sim/v2/create.py)
    zero_gpus          a pod started with zero GPUs (fault `zero_gpus`, podmgr/sim/v2/pods.py)

Each strikes at a moment of the container's start-up, on the pod's clock from the moment
the container starts (podmgr/sim/pods.py counts `uptime` from there; d is the weights
download, L the load):

    argv     0        before vLLM prints anything (`parser.parse_args()` comes first)
    engine   0        after vLLM's version and args lines, when it builds its engine
                      config: reading the model's config.json from the Hub starts the download
    load     d        the weights are on disk and loading starts
    loaded   d+0.6 L  the weights are loaded (profiling and the KV cache come next)

The process then exits (argparse 2, an uncaught exception 1), the container with it, and
RunPod restarts the container (podmgr/sim/narrator.py writes the lines and the restart;
the failure stays with that container, so every restart fails alike until a new container
starts: create, start, reset). The pod URL never serves meanwhile.

A fault is drawn when a container starts (`SimWorld.arm_fatal`, podmgr/sim/world.py), so a
fault in force before the create strikes the new pod; a fault naming a pod by `pod_id` also
strikes a container that started before it was added, if the container has not passed that
failure's moment yet.

`vllm_die` is here too: the lines of a V1 engine that dies while serving, and of the API
server shutting down at the next request (podmgr/sim/edge.py plays that part).

Sources: argparse's wording (`usage:`, `<prog>: error: unrecognized arguments:`, exit 2;
`prog` is `api_server.py` for `python3 -m vllm.entrypoints.openai.api_server`, the vLLM
image's entrypoint); huggingface_hub `utils/_http.py` (`hf_raise_for_status`: GatedRepoError,
RepositoryNotFoundError and their messages); vLLM v0.8.5 `vllm/model_executor/models/
registry.py` (`_raise_for_unsupported`), `vllm/v1/core/kv_cache_utils.py`
(`check_enough_kv_cache_memory`), `vllm/v1/engine/core.py` ("EngineCore failed to start.",
"EngineCore encountered a fatal error."), `vllm/v1/engine/core_client.py` ("Engine core
initialization failed. See root cause above."), `vllm/v1/engine/exceptions.py`
(EngineDeadError); PyTorch's CUDA caching allocator for the OutOfMemoryError message. The
figures (2.00 GiB, 23.55 GiB: an RTX 4090) and traceback frames are illustrative.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "FAILURES",
    "FATAL_FAULTS",
    "GRAPHS_SHARE",
    "LOADED_SHARE",
    "Failure",
    "Fatal",
    "Moment",
    "first_unknown_arg",
    "moment_offset",
    "render",
    "variant",
    "vllm_line",
]

Moment = Literal["argv", "engine", "load", "loaded"]
# Shares of the load phase: the weights are loaded at LOADED_SHARE, CUDA graphs are captured
# from GRAPHS_SHARE to its end (vLLM's start-up order: load, profile and KV cache, graphs).
LOADED_SHARE = 0.6
GRAPHS_SHARE = 0.7
# The faults that play a failure of this table, in the order they are drawn.
FATAL_FAULTS = ("bad_vllm_args", "gated_model", "model_not_found", "unsupported_arch", "vllm_oom")
_SITE = "/usr/local/lib/python3.12/dist-packages"
_ENGINE_FAILED = ("ERROR", "core.py:396", "EngineCore failed to start.")
_ENGINE_INIT = (
    None,
    None,
    "RuntimeError: Engine core initialization failed. See root cause above.",
)

# A line: (level, "file.py:line", text) in vLLM's log format (vllm/logger.py), or
# (None, None, text) printed as it is; `{model}`, `{arch}`, `{arg}` are filled in.
Line = tuple[str | None, str | None, str]


@dataclass(frozen=True)
class Failure:
    """One fatal failure: when it strikes, what the container prints, the exit status."""

    moment: Moment | None
    code: int
    lines: tuple[Line, ...]


def _raw(*texts: str) -> tuple[Line, ...]:
    return tuple((None, None, text) for text in texts)


def _frame(path: str, line: int, function: str, code: str) -> tuple[Line, ...]:
    return _raw(f'  File "{_SITE}/{path}", line {line}, in {function}', f"    {code}")


_TRACEBACK = _raw("Traceback (most recent call last):")
_ENGINE_CORE = (
    _ENGINE_FAILED,
    *_TRACEBACK,
    *_frame("vllm/v1/engine/core.py", 387, "run_engine_core", "raise e"),
)
_HUB = (
    *_TRACEBACK,
    *_frame("vllm/transformers_utils/config.py", 245, "get_config", "config_dict, _ ="),
    *_frame("huggingface_hub/utils/_http.py", 426, "hf_raise_for_status", "raise _format("),
)

FAILURES: Mapping[str, Failure] = {
    "bad_vllm_args": Failure(
        "argv",
        2,
        _raw(
            "usage: api_server.py [-h] [--host HOST] [--port PORT] ...",
            "api_server.py: error: unrecognized arguments: {arg}",
        ),
    ),
    "start_command_json": Failure(
        "argv",
        2,
        _raw(
            "usage: api_server.py [-h] [--host HOST] [--port PORT] ...",
            "api_server.py: error: unrecognized arguments: {arg}",
        ),
    ),
    "gated_model": Failure(
        "engine",
        1,
        (
            *_HUB,
            *_raw(
                "huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-sim)",
                "Cannot access gated repo for url "
                "https://huggingface.co/{model}/resolve/main/config.json.",
                "Access to model {model} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
            ),
        ),
    ),
    "model_not_found": Failure(
        "engine",
        1,
        (
            *_HUB,
            *_raw(
                "huggingface_hub.errors.RepositoryNotFoundError: 401 Client Error. "
                "(Request ID: Root=1-sim)",
                "Repository Not Found for url: "
                "https://huggingface.co/api/models/{model}/revision/main.",
                "Please make sure you specified the correct `repo_id` and `repo_type`.",
                "If you are trying to access a private or gated repo, make sure you are "
                "authenticated.",
            ),
        ),
    ),
    "zero_gpus": Failure(
        "engine",
        1,
        (
            *_TRACEBACK,
            *_frame("torch/cuda/__init__.py", 319, "_lazy_init", "torch._C._cuda_init()"),
            *_raw("RuntimeError: No CUDA GPUs are available"),
        ),
    ),
    "unsupported_arch": Failure(
        "load",
        1,
        (
            *_ENGINE_CORE,
            *_frame(
                "vllm/model_executor/models/registry.py",
                445,
                "_raise_for_unsupported",
                "raise ValueError(",
            ),
            *_raw(
                "ValueError: Model architectures ['{arch}'] are not supported for now. "
                "Supported architectures: dict_keys(['LlamaForCausalLM', 'Qwen2ForCausalLM', "
                "...])"
            ),
            _ENGINE_INIT,
        ),
    ),
    "vllm_oom": Failure(
        "loaded",
        1,
        (
            *_ENGINE_CORE,
            *_frame(
                "vllm/v1/worker/gpu_model_runner.py",
                1486,
                "profile_run",
                "hidden_states = self._dummy_run(self.max_num_tokens)",
            ),
            *_raw(
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 "
                "has a total capacity of 23.55 GiB of which 1.06 GiB is free. Including "
                "non-PyTorch memory, this process has 22.48 GiB memory in use."
            ),
            _ENGINE_INIT,
        ),
    ),
    "vllm_oom:kv_cache": Failure(
        "loaded",
        1,
        (
            *_ENGINE_CORE,
            *_frame(
                "vllm/v1/core/kv_cache_utils.py",
                529,
                "check_enough_kv_cache_memory",
                "raise ValueError(",
            ),
            *_raw(
                "ValueError: No available memory for the cache blocks. Try increasing "
                "`gpu_memory_utilization` when initializing the engine."
            ),
            _ENGINE_INIT,
        ),
    ),
    # The V1 engine dies while serving (core.py logs it; async_llm.py's output handler
    # fails every request after it); the API server lives on until a request needs the
    # engine, answers it 500 and shuts down (launcher.py `terminate_if_errored`): uvicorn's
    # shutdown, and Python exits normally (0; an inference from the code, not observed).
    "vllm_die": Failure(
        None,
        0,
        (
            ("ERROR", "core.py:400", "EngineCore encountered a fatal error."),
            *_TRACEBACK,
            *_frame(
                "vllm/v1/engine/core.py", 393, "run_engine_core", "engine_core.run_busy_loop()"
            ),
            *_raw("RuntimeError: CUDA error: an illegal memory access was encountered"),
            ("ERROR", "async_llm.py:399", "AsyncLLM output_handler failed."),
            *_raw(
                "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. "
                "See stack trace (above) for the root cause."
            ),
        ),
    ),
    "vllm_die:exit": Failure(
        None,
        0,
        (
            *_raw(
                "INFO:     Shutting down",
                "INFO:     Waiting for application shutdown.",
                "INFO:     Application shutdown complete.",
            ),
            ("INFO", "launcher.py:74", "Shutting down FastAPI HTTP server."),
            *_raw("INFO:     Finished server process [1]"),
        ),
    ),
}

# vLLM v0.8.5's command-line options (vllm/entrypoints/openai/cli_args.py and
# vllm/engine/arg_utils.py), for the first one a pod's args give that it does not know.
_KNOWN_ARGS_TEXT = """
    --host --port --uvicorn-log-level --disable-uvicorn-access-log --allow-credentials
    --allowed-origins --allowed-methods --allowed-headers --api-key --lora-modules
    --prompt-adapters --chat-template --chat-template-content-format --response-role
    --ssl-keyfile --ssl-certfile --ssl-ca-certs --enable-ssl-refresh --ssl-cert-reqs
    --root-path --middleware --return-tokens-as-token-ids --disable-frontend-multiprocessing
    --enable-request-id-headers --enable-auto-tool-choice --tool-call-parser
    --tool-parser-plugin --log-config-file --max-log-len --disable-fastapi-docs
    --enable-prompt-tokens-details --enable-server-load-tracking --disable-log-requests
    --config --model --task --tokenizer --hf-config-path --skip-tokenizer-init --revision
    --code-revision --tokenizer-revision --tokenizer-mode --trust-remote-code
    --allowed-local-media-path --download-dir --load-format --config-format --dtype
    --kv-cache-dtype --max-model-len --guided-decoding-backend --logits-processor-pattern
    --model-impl --distributed-executor-backend --pipeline-parallel-size
    --tensor-parallel-size --data-parallel-size --enable-expert-parallel
    --max-parallel-loading-workers --ray-workers-use-nsight --disable-custom-all-reduce
    --block-size --enable-prefix-caching --no-enable-prefix-caching
    --prefix-caching-hash-algo --disable-sliding-window --use-v2-block-manager
    --num-lookahead-slots --seed --swap-space --cpu-offload-gb --gpu-memory-utilization
    --num-gpu-blocks-override --max-num-batched-tokens --max-num-partial-prefills
    --max-long-partial-prefills --long-prefill-token-threshold --max-num-seqs
    --max-logprobs --disable-log-stats --quantization --rope-scaling --rope-theta
    --hf-overrides --enforce-eager --max-seq-len-to-capture --tokenizer-pool-size
    --tokenizer-pool-type --tokenizer-pool-extra-config --limit-mm-per-prompt
    --mm-processor-kwargs --disable-mm-preprocessor-cache --enable-lora --enable-lora-bias
    --max-loras --max-lora-rank --lora-extra-vocab-size --lora-dtype
    --long-lora-scaling-factors --max-cpu-loras --fully-sharded-loras
    --enable-prompt-adapter --max-prompt-adapters --max-prompt-adapter-token --device
    --num-scheduler-steps --multi-step-stream-outputs --scheduler-delay-factor
    --enable-chunked-prefill --speculative-config --model-loader-extra-config
    --ignore-patterns --preemption-mode --served-model-name --qlora-adapter-name-or-path
    --show-hidden-metrics-for-version --otlp-traces-endpoint --collect-detailed-traces
    --disable-async-output-proc --scheduling-policy --scheduler-cls
    --override-neuron-config --override-pooler-config --compilation-config
    --kv-transfer-config --worker-cls --worker-extension-cls --generation-config
    --override-generation-config --enable-sleep-mode --calculate-kv-scales
    --additional-config --enable-reasoning --reasoning-parser --disable-cascade-attn
    --disable-chunked-mm-input --use-tqdm-on-load
"""
_KNOWN_ARGS = frozenset(_KNOWN_ARGS_TEXT.split())
_UNKNOWN_ARG_DEFAULT = "--sim-unknown-arg"


def first_unknown_arg(args: str) -> str | None:
    """The first `--flag` in `args` that vLLM v0.8.5's parser does not know, or None."""
    try:
        words = shlex.split(args or "")
    except ValueError:
        words = (args or "").split()
    for word in words:
        flag = word.split("=", 1)[0]
        if flag.startswith("--") and flag not in _KNOWN_ARGS:
            return word
    return None


def variant(name: str, params: Mapping[str, Any]) -> str:
    """The table's key for fault `name` with `params` (`vllm_oom` with `kind=kv_cache`)."""
    return "vllm_oom:kv_cache" if name == "vllm_oom" and params.get("kind") == "kv_cache" else name


def moment_offset(moment: Moment | None, download: float, load: float) -> float:
    """Seconds after the container starts at which `moment` comes (see the docstring)."""
    if moment == "load":
        return download
    if moment == "loaded":
        return download + LOADED_SHARE * load
    return 0.0


def vllm_line(now: float, where: str, message: str, level: str = "INFO") -> str:
    """A line in vLLM's log format: `INFO MM-DD hh:mm:ss [file.py:line] message`."""
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%m-%d %H:%M:%S")
    return f"{level} {stamp} [{where}] {message}"


@dataclass(frozen=True)
class Fatal:
    """A failure bound to one pod's container: the table's entry and the values it names."""

    key: str
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def failure(self) -> Failure:
        return FAILURES[self.key]

    @property
    def name(self) -> str:
        """The fault's (or the pod's condition's) name, without the variant."""
        return self.key.split(":", 1)[0]

    def offset(self, download: float, load: float) -> float:
        return moment_offset(self.failure.moment, download, load)

    def lines(self, now: float) -> list[str]:
        return render(self.key, now, self.values)

    @classmethod
    def of(cls, name: str, params: Mapping[str, Any], model: str, args: str) -> Fatal:
        """The failure a fault `name` with `params` plays on a pod serving `model`."""
        values = {"model": model, "arch": str(params.get("arch") or "SimForCausalLM")}
        if name == "bad_vllm_args":
            values["arg"] = str(
                params.get("arg") or first_unknown_arg(args) or _UNKNOWN_ARG_DEFAULT
            )
        key = (
            "vllm_oom:kv_cache" if name == "vllm_oom" and params.get("kind") == "kv_cache" else name
        )
        return cls(key, values)


def render(key: str, now: float, values: Mapping[str, str]) -> list[str]:
    """The table's lines for `key`, filled in, stamped `now` where vLLM's logger writes."""
    out = []
    for level, where, text in FAILURES[key].lines:
        filled = text.format_map(dict(values)) if values else text
        out.append(
            filled if level is None or where is None else vllm_line(now, where, filled, level)
        )
    return out
