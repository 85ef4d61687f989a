"""Pod lifecycle on an injected clock: phases, billing while RUNNING only, the ledger."""

from __future__ import annotations

import random

import pytest

from podmgr.sim.pods import PodFleet, PodSpec, Timings


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def spec(cost_per_hr: float = 0.72, gpu_count: int = 2, docker_args: str = "") -> PodSpec:
    return PodSpec(
        name="podmgr-t",
        image_name="img",
        gpu_type_id="NVIDIA RTX A6000",
        gpu_display_name="RTX A6000",
        gpu_count=gpu_count,
        cloud_type="SECURE",
        cost_per_hr=cost_per_hr,
        docker_args=docker_args,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fleet(clock: FakeClock) -> PodFleet:
    return PodFleet(Timings(pull_seconds=10, load_seconds=5), clock, random.Random(0))


def test_phases_follow_pull_then_load_then_serving(fleet: PodFleet, clock: FakeClock) -> None:
    pod = fleet.create(spec())
    seen = []
    for step in (0, 9.9, 10, 14.9, 15, 100):
        clock.now = 1000.0 + step
        seen.append(pod.phase(clock.now, fleet.timings))
    assert seen == ["pulling", "pulling", "loading", "loading", "serving", "serving"]
    assert pod.uptime(1015.0, fleet.timings) == pytest.approx(5.0)


def test_stopped_time_is_not_billed(fleet: PodFleet, clock: FakeClock) -> None:
    pod = fleet.create(spec(cost_per_hr=3.6))
    clock.now += 100
    fleet.stop(pod)
    clock.now += 1000
    assert pod.phase(clock.now, fleet.timings) == "stopped"
    fleet.resume(pod, gpu_count=2)
    assert pod.phase(clock.now, fleet.timings) == "pulling"
    clock.now += 50
    record = pod.ledger_record(clock.now)
    assert record["billed_seconds"] == pytest.approx(150.0)
    assert record["cost_usd"] == pytest.approx(150 * 3.6 / 3600)


def test_terminated_pod_leaves_live_list_but_keeps_its_record(
    fleet: PodFleet, clock: FakeClock
) -> None:
    pod = fleet.create(spec(cost_per_hr=1.0))
    clock.now += 36
    fleet.terminate(pod)
    clock.now += 500
    assert fleet.get(pod.id) is None
    assert list(fleet.live()) == []
    ledger = fleet.ledger()
    (record,) = ledger["pods"]
    assert record["status"] == "TERMINATED"
    assert record["terminated_at"] == pytest.approx(1036.0)
    assert record["cost_usd"] == pytest.approx(0.01)
    assert ledger["total_cost_usd"] == pytest.approx(0.01)


def test_resume_brings_back_a_fresh_vllm(fleet: PodFleet, clock: FakeClock) -> None:
    pod = fleet.create(spec())
    clock.now += 20
    pod.vllm_dead = True
    assert pod.phase(clock.now, fleet.timings) == "dead"
    fleet.stop(pod)
    fleet.resume(pod, gpu_count=1)
    clock.now += 20
    assert pod.phase(clock.now, fleet.timings) == "serving"
    assert pod.cost_per_hr == pytest.approx(0.36)


def test_model_key_and_context_come_from_args_and_env(fleet: PodFleet) -> None:
    pod = fleet.create(spec(docker_args="--model Qwen/Qwen2.5-Coder-7B --max-model-len=8192"))
    assert pod.model == "Qwen/Qwen2.5-Coder-7B"
    assert pod.max_model_len == 8192
    assert pod.vllm_api_key is None
    bare = fleet.create(spec())
    assert (bare.model, bare.max_model_len) == ("sim-model", 4096)


def test_pick_running_skips_exited_pods(fleet: PodFleet) -> None:
    first = fleet.create(spec())
    second = fleet.create(spec())
    fleet.stop(first)
    assert fleet.pick_running(None) is second
    assert fleet.pick_running(first.id) is None
