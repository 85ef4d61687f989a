"""The pod's own log read as phases and fatal signatures (podmgr/watchdog/podlog.py)."""

from __future__ import annotations

import dataclasses

import pytest

from podmgr.watchdog import actions as act
from podmgr.watchdog.observed import PodLog
from podmgr.watchdog.plan import plan
from podmgr.watchdog.podlog import SIGNATURES, LogReading, read_log

from .helpers import NOW, config, live, record, seen, session, state
from .test_plan import summary

# The lines as vLLM v0.8.5, PyTorch, huggingface_hub and nvidia-container-cli print them.
FATAL = {
    "out_of_memory": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
    "gated_model": "huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: x)",
    "model_not_found": "huggingface_hub.errors.RepositoryNotFoundError: 401 Client Error.",
    "unsupported_architecture": "ValueError: Model architectures ['FooForCausalLM'] are not "
    "supported for now. Supported architectures: dict_keys(['LlamaForCausalLM'])",
    "bad_vllm_args": "api_server.py: error: unrecognized arguments: --max-modle-len 4096",
    "host_cuda_too_old": "nvidia-container-cli: requirement error: unsatisfied condition: "
    "cuda>=12.4, please update your driver to a newer version",
}


def test_every_signature_has_a_line_and_a_source() -> None:
    assert {s.name for s in SIGNATURES} == set(FATAL)
    assert all(s.source and s.meaning and s.advice for s in SIGNATURES)


@pytest.mark.parametrize("name", sorted(FATAL))
def test_each_signature_is_read_from_its_line(name: str) -> None:
    reading = read_log(["INFO loading", FATAL[name]])
    assert reading.fatal is not None and reading.fatal.signature.name == name


def test_nothing_fatal_from_lines_outside_the_table() -> None:
    lines = [
        "WARNING 12-06 [config.py:1] CUDA graph is not supported on this model",
        "ERROR something odd but not known",
        'api_server.py: error: unrecognized arguments: {"entrypoint": ["python3"]}',  # guard's
    ]
    assert read_log(lines).fatal is None


def test_the_latest_phase_with_its_figures() -> None:
    lines = [
        "Pulling image vllm/vllm-openai:v0.8.5",
        "Image pulled in 61.5s",
        "INFO [weight_utils.py:281] Time spent downloading weights for m: 30.25 seconds",
        "INFO [gpu_model_runner.py:1347] Model loading took 14.9927 GiB and 12.300000 seconds",
    ]
    assert read_log(lines[:2]).phase == "image pulled (in 61.5s)"
    assert read_log(lines[:3]).phase == "weights downloaded (in 30.2s)"
    assert read_log(lines).phase == "weights loaded (14.9927 GiB in 12.3s)"


def fatal_seen(name: str, bigger: str | None = None) -> PodLog:
    return PodLog(None, read_log([FATAL[name]]), "c1", NOW, bigger)


def starting() -> object:
    return record(phase="starting", created_ago=40)


def test_a_configuration_failure_ends_the_session_at_once() -> None:
    obs = dataclasses.replace(seen(live(), healthy=False), pod_log=fatal_seen("gated_model"))
    actions = plan(config(), state(session(), starting()), obs, NOW)  # type: ignore[arg-type]
    assert [summary(a) for a in actions] == ["NoteLog", "TerminatePod p1", "EndSession pod_failed"]
    end = actions[-1]
    assert isinstance(end, act.EndSession) and "HF_TOKEN" in end.detail and "40s" in end.detail


def test_out_of_memory_names_a_bigger_gpu() -> None:
    bigger = "NVIDIA RTX A6000, 48 GB at $0.76/h"
    obs = dataclasses.replace(
        seen(live(), healthy=False), pod_log=fatal_seen("out_of_memory", bigger)
    )
    actions = plan(config(), state(session(), starting()), obs, NOW)  # type: ignore[arg-type]
    end = actions[-1]
    assert isinstance(end, act.EndSession) and end.reason == "pod_failed"
    assert "NVIDIA RTX A6000" in end.detail and "--max-model-len" in end.detail


def test_a_host_failure_is_tried_on_another_host_once() -> None:
    obs = dataclasses.replace(
        seen(live(status="STARTING", runtime=False)), pod_log=fatal_seen("host_cuda_too_old")
    )
    first = plan(config(), state(session(), starting()), obs, NOW)  # type: ignore[arg-type]
    assert [summary(a) for a in first] == ["NoteLog", "AbandonPod p1 replace", "CreatePod"]
    again = state(session(no_container_replacements=1), starting())
    second = plan(config(), again, obs, NOW)  # type: ignore[arg-type]
    assert [summary(a) for a in second] == ["NoteLog", "TerminatePod p1", "EndSession no_container"]


def test_a_ready_pod_is_not_ended_by_an_old_line() -> None:
    obs = dataclasses.replace(seen(live(), healthy=True), pod_log=fatal_seen("bad_vllm_args"))
    actions = plan(config(), state(session(), record()), obs, NOW)  # type: ignore[arg-type]
    assert "EndSession pod_failed" not in [summary(a) for a in actions]


def test_the_progress_line_says_the_phase_from_the_log() -> None:
    reading = LogReading(phases=("weights loaded (14.9 GiB in 12.3s)",))
    obs = dataclasses.replace(seen(live(), healthy=False), pod_log=PodLog(None, reading, "c", NOW))
    actions = plan(config(), state(session(), starting()), obs, NOW)  # type: ignore[arg-type]
    progress = actions[-1]
    assert isinstance(progress, act.PodProgress)
    assert progress.text == "weights loaded (14.9 GiB in 12.3s) (from the pod's log)"
