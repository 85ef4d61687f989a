"""Will a model fit on a GPU type? An estimate of the memory vLLM needs, from the model id.

Pure (no I/O); `podmgr init` uses it to propose the cheapest GPU types that fit. How the
estimate is made, as the output says it:

- **weights**: the parameter count read from the model id ("Qwen2.5-Coder-32B" -> 32e9,
  "Mixtral-8x7B" -> 56e9, "Qwen3-30B-A3B" -> 30e9: the total, not the active count) times
  the bytes per weight of its quantization, read from the id and vLLM's `--quantization`
  / `--dtype`: fp16/bf16 2, fp8/int8 1, awq/gptq/int4 0.5. When the id names no size the
  caller gives the weights in GiB (`--weights-gib`).
- **KV cache** for one sequence of the context length: per token about
  `24 x billions ** 0.6` KiB in 16-bit (a grouped-query-attention model: Qwen2.5-7B has 56
  KiB, Llama-3-8B 128, Qwen2.5-32B 256, Llama-3-70B 320; this formula gives 77, 83, 192,
  307), halved by `--kv-cache-dtype fp8`.
- **overhead**: 2 GiB for CUDA context, activations and CUDA graphs.

vLLM takes `--gpu-memory-utilization` (0.9 by default) of each GPU's memory, so a type
fits when weights + KV + overhead <= 0.9 x VRAM x GPU count. It is an estimate: a model
that fits by a hair may still need a smaller `--max-model-len`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Estimate",
    "bytes_per_weight",
    "estimate",
    "fits",
    "kv_kib_per_token",
    "parameters_billions",
]

GIB = 1024**3
OVERHEAD_GIB = 2.0
DEFAULT_UTILIZATION = 0.9

_EXPERTS = re.compile(r"(?<![A-Za-z0-9.])(\d+)x(\d+(?:\.\d+)?)[bB](?![A-Za-z])")
_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)[bB](?![A-Za-z])")
_SIZE_M = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)[mM](?![A-Za-z])")
# Lower-case markers, in the order they are checked: the first match decides.
_QUANT = (
    (0.5, ("awq", "gptq", "int4", "4bit", "4-bit", "w4a16", "nf4", "bnb-4bit", "q4")),
    (1.0, ("fp8", "int8", "8bit", "8-bit", "w8a8", "w8a16", "q8")),
    (2.0, ("bf16", "fp16", "float16", "bfloat16", "half")),
)


def parameters_billions(model_id: str) -> float | None:
    """The parameter count the id names, in billions (None when it names none)."""
    name = model_id.rsplit("/", 1)[-1]
    experts = _EXPERTS.search(name)
    if experts:
        return int(experts[1]) * float(experts[2])
    sizes = [float(match) for match in _SIZE.findall(name)]
    if sizes:
        return max(sizes)
    millions = [float(match) for match in _SIZE_M.findall(name)]
    return max(millions) / 1000 if millions else None


def _arg(vllm_args: Sequence[str], flag: str) -> str | None:
    for index, arg in enumerate(vllm_args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and index + 1 < len(vllm_args):
            return vllm_args[index + 1]
    return None


def bytes_per_weight(model_id: str, vllm_args: Sequence[str] = ()) -> float:
    """2 (fp16/bf16), 1 (fp8/int8) or 0.5 (awq/gptq/int4): from `--quantization`, else
    the id, else `--dtype` (the activations' type: an AWQ checkpoint stays 4-bit)."""
    name = model_id.rsplit("/", 1)[-1]
    for text in (_arg(vllm_args, "--quantization"), name, _arg(vllm_args, "--dtype")):
        found = _quant_of(text.lower()) if text else None
        if found is not None:
            return found
    return 2.0


def _quant_of(text: str) -> float | None:
    for size, markers in _QUANT:
        if any(marker in text for marker in markers):
            return size
    return None


def kv_kib_per_token(billions: float, vllm_args: Sequence[str] = ()) -> float:
    """KV cache per token in KiB (see the module docstring), fp8 KV cache halving it."""
    kib: float = 24.0 * float(billions) ** 0.6
    kv_dtype = (_arg(vllm_args, "--kv-cache-dtype") or "").lower()
    return kib / 2 if kv_dtype.startswith("fp8") else kib


@dataclass(frozen=True)
class Estimate:
    """GiB a model needs: its weights, the KV cache for one full context, the overhead."""

    weights_gib: float
    kv_gib: float
    overhead_gib: float
    context: int
    how: str

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_gib + self.overhead_gib


def estimate(
    model_id: str,
    context: int,
    vllm_args: Sequence[str] = (),
    weights_gib: float | None = None,
) -> Estimate | None:
    """The memory estimate, or None when the id names no size and no weights_gib is given."""
    args = list(vllm_args)
    billions = parameters_billions(model_id)
    if weights_gib is None:
        if billions is None:
            return None
        per = bytes_per_weight(model_id, args)
        weights_gib = billions * 1e9 * per / GIB
        how = f"{billions:g}B parameters x {per:g} bytes"
    else:
        how = f"weights {weights_gib:g} GiB as given"
        # Without a size, size the KV cache as for a model of those weights in 16-bit.
        billions = billions or weights_gib * GIB / 2e9
    kv_gib = kv_kib_per_token(billions, args) * 1024 * context / GIB
    how += f" + KV cache for {context} tokens + {OVERHEAD_GIB:g} GiB overhead"
    return Estimate(weights_gib, kv_gib, OVERHEAD_GIB, context, how)


def fits(need: Estimate, vram_gib: float, gpu_count: int = 1) -> bool:
    """Whether `need` fits in the share of the GPUs' memory vLLM takes by default."""
    return need.total_gib <= DEFAULT_UTILIZATION * vram_gib * gpu_count
