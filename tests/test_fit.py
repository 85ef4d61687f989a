"""podmgr/fit.py: the memory estimate `podmgr init` proposes GPU types by, and init's pure
helpers (durations, the proposal, the minimal config)."""

from __future__ import annotations

import pytest

from podmgr.cli.init import Answers, minimal_config, parse_duration, propose
from podmgr.config import build_config
from podmgr.errors import ConfigError
from podmgr.fit import bytes_per_weight, estimate, fits, parameters_billions
from podmgr.runpod.values import GpuType


@pytest.mark.parametrize(
    ("model", "billions"),
    [
        pytest.param("Qwen/Qwen2.5-Coder-7B-Instruct", 7, id="plain"),
        pytest.param("Qwen/Qwen2.5-Coder-1.5B-Instruct", 1.5, id="decimal, version ignored"),
        pytest.param("mistralai/Mixtral-8x7B-Instruct-v0.1", 56, id="experts"),
        pytest.param("Qwen/Qwen3-30B-A3B", 30, id="total, not active"),
        pytest.param("meta-llama/Llama-3.1-8b-instruct", 8, id="lower-case b"),
        pytest.param("Qwen/Qwen2.5-0.5B", 0.5, id="under one billion"),
        pytest.param("HuggingFaceTB/SmolLM2-360M-Instruct", 0.36, id="millions"),
        pytest.param("org/some-model-v2", None, id="no size"),
    ],
)
def test_parameters_from_the_model_id(model: str, billions: float | None) -> None:
    assert parameters_billions(model) == billions


@pytest.mark.parametrize(
    ("model", "args", "size"),
    [
        pytest.param("Qwen/Qwen2.5-Coder-7B-Instruct", [], 2.0, id="default 16-bit"),
        pytest.param("Qwen/Qwen2.5-Coder-32B-Instruct-AWQ", [], 0.5, id="awq in the id"),
        pytest.param("Qwen/Qwen2.5-Coder-7B-Instruct-GPTQ-Int4", [], 0.5, id="gptq"),
        pytest.param("neuralmagic/Llama-3.1-70B-Instruct-FP8", [], 1.0, id="fp8 in the id"),
        pytest.param("Qwen/Qwen2.5-7B", ["--quantization", "fp8"], 1.0, id="fp8 from args"),
        pytest.param("Qwen/Qwen2.5-7B-AWQ", ["--dtype=bfloat16"], 0.5, id="dtype is not quant"),
        pytest.param("Qwen/Qwen2.5-7B", ["--quantization=awq"], 0.5, id="flag=value"),
    ],
)
def test_bytes_per_weight(model: str, args: list[str], size: float) -> None:
    assert bytes_per_weight(model, args) == size


def test_a_7b_model_at_16k_fits_a_24_gib_gpu_and_a_32b_one_needs_80() -> None:
    small = estimate("Qwen/Qwen2.5-Coder-7B-Instruct", 16384)
    big = estimate("Qwen/Qwen2.5-Coder-32B-Instruct", 16384)
    assert small is not None and big is not None
    assert 13 < small.weights_gib < 13.1  # 7e9 x 2 bytes
    assert fits(small, 24) and not fits(big, 48) and fits(big, 80) and fits(big, 48, 2)
    assert "7B parameters x 2 bytes" in small.how and "16384 tokens" in small.how


def test_kv_cache_grows_with_the_context_and_fp8_halves_it() -> None:
    short = estimate("Qwen/Qwen2.5-7B", 4096)
    long = estimate("Qwen/Qwen2.5-7B", 32768)
    fp8 = estimate("Qwen/Qwen2.5-7B", 32768, ["--kv-cache-dtype", "fp8"])
    assert short is not None and long is not None and fp8 is not None
    assert long.kv_gib == pytest.approx(8 * short.kv_gib)
    assert fp8.kv_gib == pytest.approx(long.kv_gib / 2)
    assert long.weights_gib == short.weights_gib


def test_a_model_without_a_size_needs_its_weights_given() -> None:
    assert estimate("org/some-model", 8192) is None
    given = estimate("org/some-model", 8192, weights_gib=10)
    assert given is not None and given.weights_gib == 10 and "as given" in given.how


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("15m", 900), ("1h30m", 5400), ("45s", 45), ("3600", 3600), ("1.5h", 5400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text, "--runtime") == seconds


@pytest.mark.parametrize("text", ["", "soon", "1d", "0", "h"])
def test_a_bad_duration_names_the_flag(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(text, "--idle")
    assert caught.value.exit_code == 2 and "--idle" in str(caught.value)


def _gpu(gpu_id: str, memory: float, price: float | None, stock: str = "HIGH") -> GpuType:
    return GpuType(
        gpu_id, gpu_id, memory, secure_price=price, secure_cloud=price is not None,
        secure_stock=stock,
    )  # fmt: skip


def test_propose_takes_the_cheapest_that_fit_and_are_in_stock() -> None:
    need = estimate("Qwen/Qwen2.5-Coder-7B-Instruct", 16384)
    assert need is not None
    catalog = [
        _gpu("small", 16, 0.20),  # too small
        _gpu("out", 24, 0.30, stock="NONE"),
        _gpu("cheap", 24, 0.40),
        _gpu("big", 80, 1.60),
        _gpu("mid", 48, 0.70),
        _gpu("dear", 80, 2.90),
        _gpu("no-price", 48, None),
    ]
    chosen = propose(catalog, need, "SECURE")
    assert [(gpu.id, price) for gpu, price in chosen] == [
        ("cheap", 0.40), ("mid", 0.70), ("big", 1.60),
    ]  # fmt: skip
    two = propose(catalog, need, "SECURE", gpu_count=2)  # 2 x 16 GiB fits; the price doubles
    assert (two[0][0].id, two[0][1]) == ("small", 0.40)


def test_minimal_config_holds_only_what_differs_and_validates() -> None:
    defaults = build_config({}, ".", environ={})
    same = Answers(defaults.pod.model, 16384, None, 3600, None)
    assert minimal_config(same, defaults.pod.gpu_type_ids, defaults) == {
        "pod": {"vllm_args": ["--max-model-len", "16384"]}
    }
    other = Answers("Qwen/Qwen2.5-Coder-32B-Instruct-AWQ", 8192, 2.5, 5400, 900)
    data = minimal_config(other, ["NVIDIA L40S", "NVIDIA RTX A6000"], defaults)
    assert data == {
        "pod": {
            "model": "Qwen/Qwen2.5-Coder-32B-Instruct-AWQ",
            "gpu_type_id": ["NVIDIA L40S", "NVIDIA RTX A6000"],
            "vllm_args": ["--max-model-len", "8192"],
        },
        "limits": {"runtime_seconds": 5400, "max_cost_usd": 2.5, "idle_timeout_seconds": 900},
    }
    config = build_config(data, ".", environ={})
    assert config.limits.max_cost_usd == 2.5 and config.pod.gpu_type_ids[0] == "NVIDIA L40S"
