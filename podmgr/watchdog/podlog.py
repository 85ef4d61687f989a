"""What a starting pod's own log says: its phase with figures, and failures that are final.

Pure: lines in, findings out. The lines are RunPod's `GET /v2/pods/{id}/logs` events
(`system`: image pull and host lifecycle; `container`: vLLM's output). A phase is read from
the lines vLLM v0.8.5 and RunPod print (each pattern cites where it comes from); a fatal
signature ends the attempt at once instead of letting the pod bill through its start-up
budget. Nothing fatal is inferred from a line that is not in `SIGNATURES`; the guard's own
finding (the start-command JSON passed literally) is podmgr/guard/check.py's, not one of
these (its argument error names `"entrypoint"`).

What each signature does (`Scope`):
  - `config`: the configuration cannot work on any pod (gated model without a token,
    misspelt model, bad vLLM argument, unsupported architecture, not enough GPU memory):
    the pod is terminated and the session ends (exit 12: change the config);
  - `host`: this host cannot run the image (its CUDA too old): the pod is terminated and
    replaced on another host once per session, as a pod without a container is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["SIGNATURES", "Fatal", "LogReading", "Signature", "read_log"]

Scope = Literal["config", "host"]


@dataclass(frozen=True)
class Signature:
    """One fatal line: how to know it, where it comes from, what it means, what to do."""

    name: str
    pattern: re.Pattern[str]
    source: str
    meaning: str
    advice: str
    scope: Scope


def _re(text: str) -> re.Pattern[str]:
    return re.compile(text)


SIGNATURES: tuple[Signature, ...] = (
    Signature(
        "out_of_memory",
        _re(
            r"CUDA out of memory|OutOfMemoryError|No available memory for the cache blocks"
            r"|larger than the maximum number of tokens that can be stored in KV cache"
        ),
        "PyTorch's caching allocator (torch.OutOfMemoryError); vLLM v0.8.5 "
        "vllm/v1/core/kv_cache_utils.py (no memory left for the KV cache)",
        "the model does not fit this GPU's memory",
        "use a GPU type with more memory{bigger}, or a lower --max-model-len in vllm_args",
        "config",
    ),
    Signature(
        "gated_model",
        _re(r"GatedRepoError|Cannot access gated repo"),
        "huggingface_hub (errors.GatedRepoError: 401 on a gated repository)",
        "the model is gated or private on Hugging Face and the pod has no token for it",
        'accept its license on huggingface.co and set "env": {"HF_TOKEN": "${HF_TOKEN}"} '
        "(the token read from this machine's environment)",
        "config",
    ),
    Signature(
        "model_not_found",
        _re(
            r"RepositoryNotFoundError|Repository Not Found for url"
            r"|is not a local folder and is not a valid model identifier"
        ),
        "huggingface_hub (errors.RepositoryNotFoundError); transformers' OSError for an "
        "unknown model id",
        "Hugging Face has no model by that name",
        "check `model` (the repository id, e.g. Qwen/Qwen2.5-Coder-7B-Instruct)",
        "config",
    ),
    Signature(
        "unsupported_architecture",
        _re(r"Model architectures \[.*\] are not supported for now"),
        "vLLM v0.8.5 vllm/model_executor/models/registry.py",
        "vLLM v0.8.5 cannot run this model's architecture",
        "pick a model vLLM supports, or an image with a newer vLLM (image_name)",
        "config",
    ),
    Signature(
        "bad_vllm_args",
        _re(r"error: (unrecognized arguments|argument [^ ]+|the following arguments)"),
        "argparse, through vLLM v0.8.5's FlexibleArgumentParser "
        "(vllm/entrypoints/openai/cli_args.py)",
        "vLLM refused its command line",
        "fix or remove the vllm_args entry this line names",
        "config",
    ),
    Signature(
        "host_cuda_too_old",
        _re(r"unsatisfied condition: cuda>="),
        "nvidia-container-cli (vllm#18813: the host's driver is older than the image's CUDA)",
        "this host's CUDA is older than the image needs",
        "podmgr tries another host once; raise min_cuda_version if it happens again",
        "host",
    ),
)

# The phases, in order, each with the line that starts it and a figure when the line has one.
_PHASES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("image pull", _re(r"Pulling image"), "system: RunPod's host (wording undocumented)"),
    ("image pulled", _re(r"Image pulled in (?P<secs>[\d.]+)s"), "system (undocumented)"),
    ("container started", _re(r"Starting container"), "system (undocumented)"),
    ("weights download", _re(r"Using model weights format"), "weight_utils.py"),
    ("weights downloaded", _re(r"Time spent downloading weights for .*: (?P<secs>[\d.]+) s"),
     "vLLM v0.8.5 model_executor/model_loader/weight_utils.py"),
    ("weights loaded", _re(r"Model loading took (?P<gib>[\d.]+) GiB and (?P<secs>[\d.]+) s"),
     "vLLM v0.8.5 v1/worker/gpu_model_runner.py"),
    ("CUDA graph capture", _re(r"Capturing cudagraphs"), "v1/worker/gpu_model_runner.py"),
    ("CUDA graphs captured", _re(r"Graph capturing finished in (?P<secs>[\d.]+) sec"),
     "vLLM v0.8.5 v1/worker/gpu_model_runner.py"),
    ("vLLM serving", _re(r"Application startup complete"), "uvicorn, in vLLM's api_server"),
)  # fmt: skip


@dataclass(frozen=True)
class Fatal:
    """A fatal signature seen in the log, with the line that showed it."""

    signature: Signature
    line: str

    def message(self, bigger_gpu: str | None = None) -> str:
        bigger = f" (e.g. {bigger_gpu})" if bigger_gpu else ""
        advice = self.signature.advice.replace("{bigger}", bigger)
        return f"{self.signature.meaning}: {advice}. The pod's log said: {self.line[:240]}"


@dataclass(frozen=True)
class LogReading:
    """What new lines said: the phases they entered, in order (with their figures), and
    the first fatal line."""

    phases: tuple[str, ...] = ()
    fatal: Fatal | None = None

    @property
    def phase(self) -> str | None:
        """The latest phase the lines showed."""
        return self.phases[-1] if self.phases else None


def read_log(lines: Iterable[str]) -> LogReading:
    """The phases and the first fatal signature among `lines` (oldest first)."""
    phases: list[str] = []
    for line in lines:
        for signature in SIGNATURES:
            if signature.pattern.search(line) and not _is_guard_literal(line):
                return LogReading(tuple(phases), Fatal(signature, line.strip()))
        phase = _phase_of(line)
        if phase is not None:
            phases.append(phase)
    return LogReading(tuple(phases))


def _phase_of(line: str) -> str | None:
    for name, pattern, _source in _PHASES:
        match = pattern.search(line)
        if match is None:
            continue
        figures = match.groupdict()
        if "gib" in figures:
            return f"{name} ({figures['gib']} GiB in {float(figures['secs']):.1f}s)"
        if "secs" in figures:
            return f"{name} (in {float(figures['secs']):.1f}s)"
        return name
    return None


def _is_guard_literal(line: str) -> bool:
    """vLLM's argument error over the guard's start-command JSON: podmgr/guard/check.py's."""
    return '"entrypoint"' in line
