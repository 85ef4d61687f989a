"""A simulated pod's start-up in vLLM's and RunPod's words, phase by phase, and the fatal
start-up faults (podmgr/sim/narrator.py, podmgr/sim/fatal.py).

Timing checks are lower bounds only: a line's `ts` is when the simulator wrote it, never
before its phase's moment on the pod's clock, which starts after our create call was sent.
Nothing asserts how soon a line comes (the suite runs on busy machines).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from podmgr.sim.fatal import first_unknown_arg
from podmgr.sim.podlogs import parse_ts
from podmgr.sim.process import SimProcess

from .v2kit import create, read_events, wait_for

PULL, DOWNLOAD, LOAD = 0.3, 0.6, 1.0
MODEL = "org/some-model"
EXIT_1 = "Container exited with code 1"
OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
    "capacity of 23.55 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this "
    "process has 22.48 GiB memory in use."
)
KV_CACHE = (
    "ValueError: No available memory for the cache blocks. Try increasing "
    "`gpu_memory_utilization` when initializing the engine."
)
GATED = [
    "huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-sim)",
    f"Cannot access gated repo for url https://huggingface.co/{MODEL}/resolve/main/config.json.",
    f"Access to model {MODEL} is restricted. You must have access to it and be authenticated "
    "to access it. Please log in.",
]
NOT_FOUND = [
    "huggingface_hub.errors.RepositoryNotFoundError: 401 Client Error. (Request ID: Root=1-sim)",
    f"Repository Not Found for url: https://huggingface.co/api/models/{MODEL}/revision/main.",
]
USAGE = "usage: api_server.py [-h] [--host HOST] [--port PORT] ..."
ARCH = (
    "ValueError: Model architectures ['{arch}'] are not supported for now. Supported "
    "architectures: dict_keys(['LlamaForCausalLM', 'Qwen2ForCausalLM', ...])"
)


def _rest(sim: SimProcess) -> httpx.Client:
    return httpx.Client(
        base_url=sim.rest_url, headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=30
    )


def _lines(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["line"]) for e in events]


def _at(events: list[dict[str, Any]], fragment: str) -> tuple[int, float]:
    """(index, ts in seconds) of the first line containing `fragment`."""
    for index, event in enumerate(events):
        if fragment in str(event["line"]):
            return index, parse_ts(str(event["ts"])) / 1e6
    raise AssertionError(f"no line with {fragment!r} in {_lines(events)}")


def _health(sim: SimProcess, pod_id: str) -> int:
    return httpx.get(sim.pod_url(pod_id) + "/health", timeout=30).status_code


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=PULL, download_seconds=DOWNLOAD, load_seconds=LOAD) as sim:
        yield sim


def test_the_phases_lines_come_in_order_with_their_figures(slow_sim: SimProcess) -> None:
    serving_when_told: list[int] = []

    def until(events: list[dict[str, Any]]) -> bool:
        done = any(e["line"] == "INFO:     Application startup complete." for e in events)
        if done and not serving_when_told:
            serving_when_told.append(_health(slow_sim, pod_id))
        return done

    sent = time.time()
    with _rest(slow_sim) as rest:
        pod_id = create(rest, args=f"--model {MODEL} --max-model-len 8192")["id"]
        events, _ = read_events(rest, f"/pods/{pod_id}/logs", until=until, timeout=60)
    assert serving_when_told == [200]  # the URL serves once vLLM says so
    steps = [
        ("Pulling image vllm/vllm-openai:v0.8.5", 0.0),
        ("Image pulled in 0.3s", PULL),
        ("Starting container", PULL),
        ("vLLM API server version 0.8.5", PULL),
        ("Initializing a V1 LLM engine (v0.8.5) with config: model='org/some-model'", PULL),
        (f"Starting to load model {MODEL}...", PULL),
        ("Using model weights format ['*.safetensors']", PULL),
        (f"Time spent downloading weights for {MODEL}: 0.600000 seconds", PULL + DOWNLOAD),
        ("Loading weights took 0.60 seconds", PULL + DOWNLOAD + 0.6 * LOAD),
        ("Model loading took 14.9927 GiB and 1.200000 seconds", PULL + DOWNLOAD + 0.6 * LOAD),
        ("GPU KV cache size: 98,304 tokens", PULL + DOWNLOAD + 0.6 * LOAD),
        ("Maximum concurrency for 8,192 tokens per request: 12.00x", PULL + DOWNLOAD + 0.6 * LOAD),
        (
            "Capturing cudagraphs for decoding. This may lead to unexpected consequences if the "
            "model is not static.",
            PULL + DOWNLOAD + 0.7 * LOAD,
        ),
        ("Graph capturing finished in 0 secs, took 0.45 GiB", PULL + DOWNLOAD + LOAD),
        ("Starting vLLM API server on http://0.0.0.0:8000", PULL + DOWNLOAD + LOAD),
        ("INFO:     Application startup complete.", PULL + DOWNLOAD + LOAD),
    ]
    found = [_at(events, fragment) for fragment, _offset in steps]
    assert [index for index, _ts in found] == sorted(index for index, _ts in found)
    for (fragment, offset), (_index, ts) in zip(steps, found, strict=True):
        assert ts >= sent + offset - 0.001, f"{fragment!r} came before its phase"
    sources = {str(e["line"]): e["source"] for e in events}
    assert sources["Image pulled in 0.3s"] == "system"
    assert sources["INFO:     Application startup complete."] == "container"


def _follow_failure(
    sim: SimProcess, pod_id: str, rest: httpx.Client, signature: list[str]
) -> list[str]:
    """The pod's lines until its container failed twice (RunPod restarted it once), checking
    meanwhile that the URL never serves."""
    statuses: set[int] = set()

    def until(events: list[dict[str, Any]]) -> bool:
        statuses.add(_health(sim, pod_id))
        return _lines(events).count(signature[-1]) >= 2 and "Restarting container" in _lines(events)

    events, _ = read_events(rest, f"/pods/{pod_id}/logs", until=until, timeout=60)
    lines = _lines(events)
    assert lines.count(signature[-1]) >= 2, lines
    statuses.add(_health(sim, pod_id))
    assert statuses == {502}, statuses  # the pod URL never served
    assert sim.pod_phase(pod_id)["phase"] in ("failing", "downloading", "loading")
    return lines


def _in_order(lines: list[str], expected: list[str]) -> int:
    """`expected` appear in `lines` one after the other; the index of the first."""
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected, lines[start : start + 8]
    return start


@pytest.mark.parametrize(
    ("fault", "params", "signature", "code", "after"),
    [
        pytest.param("vllm_oom", {}, [OOM], 1, "Model loading took", id="vllm_oom"),
        pytest.param(
            "vllm_oom", {"kind": "kv_cache"}, [KV_CACHE], 1, "Model loading took", id="kv_cache"
        ),
        pytest.param("gated_model", {}, GATED, 1, "args: Namespace(", id="gated_model"),
        pytest.param("model_not_found", {}, NOT_FOUND, 1, "args: Namespace(", id="not_found"),
        pytest.param(
            "bad_vllm_args",
            {},
            [USAGE, "api_server.py: error: unrecognized arguments: --turbo-mode"],
            2,
            None,
            id="bad_vllm_args_first_unknown",
        ),
        pytest.param(
            "bad_vllm_args",
            {"arg": "--no-such-flag"},
            [USAGE, "api_server.py: error: unrecognized arguments: --no-such-flag"],
            2,
            None,
            id="bad_vllm_args_param",
        ),
        pytest.param(
            "unsupported_arch",
            {},
            [ARCH.format(arch="SimForCausalLM")],
            1,
            "Time spent downloading weights",
            id="unsupported_arch",
        ),
        pytest.param(
            "unsupported_arch",
            {"arch": "MambaXForCausalLM"},
            [ARCH.format(arch="MambaXForCausalLM")],
            1,
            "Time spent downloading weights",
            id="unsupported_arch_param",
        ),
    ],
)
def test_fatal_fault_lines_exit_and_restart(
    slow_sim: SimProcess,
    fault: str,
    params: dict[str, str],
    signature: list[str],
    code: int,
    after: str | None,
) -> None:
    slow_sim.set_fault(fault, count=1, **params)
    try:
        with _rest(slow_sim) as rest:
            args = f"--model {MODEL} --turbo-mode --port 8000"
            pod_id = create(rest, args=args)["id"]
            lines = _follow_failure(slow_sim, pod_id, rest, signature)
    finally:
        slow_sim.clear_faults()
    first = _in_order(lines, signature)
    exit_line = f"Container exited with code {code}"
    assert exit_line in lines[first:]
    restart = lines.index("Restarting container", first)
    assert lines.index(exit_line, first) < restart < lines.index(signature[0], restart)
    assert lines[restart + 1] == "Starting container"
    assert not any("Application startup complete." in line for line in lines)
    if after is None:  # argparse refuses before vLLM prints anything
        assert lines[first - 1] == "Starting container"
    else:
        assert any(after in line for line in lines[:first])
    if fault == "unsupported_arch" or fault == "vllm_oom":  # the restart keeps the weights
        assert not any("Time spent downloading" in line for line in lines[restart:])


def test_first_unknown_arg() -> None:
    assert first_unknown_arg("--model m --max-model-len 4096 --turbo-mode --x") == "--turbo-mode"
    assert first_unknown_arg("--model=m --gpu-memory-utilization=0.9") is None
    assert first_unknown_arg("--model m --bogus=1") == "--bogus=1"


def test_a_fault_naming_a_pod_strikes_its_running_container() -> None:
    """Added after the create, `pod_id` given: the container has not reached its moment."""
    with (
        SimProcess(pull_seconds=0.1, download_seconds=5.0, load_seconds=0.1) as sim,
        _rest(sim) as rest,
    ):
        pod_id = create(rest, args=f"--model {MODEL}")["id"]
        sim.set_fault("gated_model", pod_id="some-other-pod")
        sim.set_fault("vllm_oom", pod_id=pod_id)
        lines = _follow_failure(sim, pod_id, rest, [OOM])
        assert not any("GatedRepoError" in line for line in lines)
        assert EXIT_1 in lines


def test_start_command_json_passed_literally_keeps_failing() -> None:
    """`--start-command-json ignore`: argparse's error, exit 2, restarts (fatal.py's table)."""
    with SimProcess(extra_args=["--start-command-json", "ignore"]) as sim, _rest(sim) as rest:
        args = '{"entrypoint": ["python3", "-c", "pass"], "cmd": ["vllm", "serve"]}'
        pod_id = create(rest, args=args)["id"]
        lines = _follow_failure(
            sim, pod_id, rest, [USAGE, f"api_server.py: error: unrecognized arguments: {args}"]
        )
        assert "Container exited with code 2" in lines
        wait_for("a failing phase", lambda: sim.pod_phase(pod_id)["phase"] == "failing")
