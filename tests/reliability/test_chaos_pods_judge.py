"""The two-pod chaos's own checks (chaos_pods.py), on made-up states and ledgers: each one
counts the violation it exists for, so a chaos run reporting 0 means something."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from podmgr.state import HistoryEntry, PodRecord, Session, State, StateStore

from .chaos_pods import Cron, PodsTally, check_idle_end, judge_budget, pod_of


def record(pod_id: str, gpu: str = "NVIDIA RTX A6000") -> PodRecord:
    return PodRecord(id=pod_id, name="p-x", gpu_type_id=gpu, created_at=0.0,
                     phase="ready", vllm_api_key="fake-key")  # fmt: skip


def state(
    pods: dict[str, str], ended: dict[str, str], reason: str | None = None, *done: str
) -> State:
    """A state saved at t=20 after a pass that did `done` (history details) at t=15."""
    session = Session(started_at=0.0, deadline=100.0, ended_pods=ended)
    if reason is not None:
        session.ended_at, session.end_reason = 50.0, reason
    history = [HistoryEntry(at=15.0, action="ForPod", detail=detail) for detail in done]
    return State(pods={name: record(pod_id) for name, pod_id in pods.items()}, session=session,
                 history=history, updated_at=20.0)  # fmt: skip


BEFORE = state({"chat": "c1", "fim": "f1"}, {}).model_copy(update={"updated_at": 10.0})
IDLE = "[fim] terminate pod f1 (idle)"


def test_fim_idling_out_alone_is_counted_and_no_violation() -> None:
    tally = PodsTally()
    check_idle_end(BEFORE, state({"chat": "c1"}, {"fim": "idle"}), tally, "t")
    assert (tally.idle_ends, tally.idle_took_other) == (1, 0)
    check_idle_end(state({"chat": "c1"}, {"fim": "idle"}), state({"chat": "c1"}, {"fim": "idle"}),
                   tally, "t")  # fmt: skip
    assert tally.idle_ends == 1  # counted once, on the pass that ended it


def test_an_idle_end_that_takes_chat_is_a_violation() -> None:
    for after in (
        state({}, {"fim": "idle"}, None, IDLE),  # chat's record gone silently, session on
        state({"chat": "c2"}, {"fim": "idle"}, None, IDLE),  # chat replaced, no action of its
        state({}, {"fim": "idle"}, None, IDLE, "[chat] terminate pod c1 (idle)"),
        state({}, {"fim": "idle"}, "idle", IDLE),  # the session ended with fim's idle
        state({"fim": "f1"}, {"chat": "idle"}),  # chat ended for idle
    ):
        tally = PodsTally()
        check_idle_end(BEFORE, after, tally, "t")
        assert tally.idle_took_other == 1 and tally.violations == 1, after


def test_chat_ending_for_its_own_reason_with_fim_idle_is_no_violation() -> None:
    tally = PodsTally()
    check_idle_end(BEFORE, state({}, {"fim": "idle", "chat": "crash_loop"}), tally, "t")
    assert tally.idle_took_other == 0
    check_idle_end(BEFORE, state({}, {}, reason="deadline"), tally, "t")
    # chaos run 1b37ace1: chat's pod given up on (its vLLM killed) in fim's idle pass
    given_up = "[chat] give up on pod c1 (not serving 7s after its start, budget 5s)"
    check_idle_end(BEFORE, state({}, {"fim": "idle"}, None, given_up, IDLE), tally, "t")
    assert tally.idle_took_other == 0 and tally.idle_ends == 2


def test_pods_are_told_apart_by_gpu_type() -> None:
    assert pod_of({"gpu_type_id": "NVIDIA GeForce RTX 4090"}) == "fim"
    assert {pod_of({"gpu_type_id": g}) for g in ("NVIDIA RTX A6000", "NVIDIA L40S")} == {"chat"}


def ledger_pod(gpu: str, price: float, cost: float) -> dict[str, Any]:
    return {"gpu_type_id": gpu, "cost_per_hr": price, "cost_usd": cost}


def test_cost_past_the_budget_bound_counts_seconds(tmp_path: Path) -> None:
    # $1.8/h together: one 2 s pass late is $0.001 past a $0.003 budget, allowed; more is not
    pods = [ledger_pod("NVIDIA RTX A6000", 1.1, 0.002), ledger_pod("NVIDIA GeForce RTX 4090",
            0.7, 0.0019)]  # fmt: skip
    store = StateStore(tmp_path / "state.json")
    job = Cron(tmp_path, {}, store, None, PodsTally(), "t")  # type: ignore[arg-type]
    judge_budget(job, 0.003, pods, longest=2.0)
    assert job.tally.overbilled_seconds == 0.0
    assert abs(job.tally.worst_past_budget_usd - 0.0009) < 1e-9
    judge_budget(job, 0.003, pods, longest=0.5)  # a shorter pass allows less: $0.00025
    assert abs(job.tally.overbilled_seconds - (0.0039 - 0.00325) * 3600 / 1.8) < 1e-6


def test_a_spot_pod_runpod_stopped_is_counted_apart_and_a_live_one_is_an_orphan() -> None:
    """Laptop closed (chaos_guard_pods.judge): a preempted spot pod nothing can terminate
    is no orphan but is counted; a pod still running is an orphan."""
    from .chaos_guard_pods import judge

    def pod(status: str, ended_by: str | None, spot: bool) -> dict[str, Any]:
        return {"id": f"{status}-{ended_by}", "gpu_type_id": "NVIDIA RTX A6000",
                "status": status, "ended_by": ended_by, "interruptible": spot,
                "terminated_at": None, "cost_per_hr": 1.0, "cost_usd": 0.0}  # fmt: skip

    class Watch:
        def __init__(self, pods: list[dict[str, Any]]) -> None:
            self._pods = pods
            self.most = {"chat": 1, "fim": 0}
            self.worst: list[str] = []

        def pods(self) -> list[dict[str, Any]]:
            return self._pods

    tally = PodsTally()
    judge(Watch([pod("EXITED", "runpod", True)]), 100.0, None, tally, "t")  # type: ignore[arg-type]
    assert (tally.orphans, tally.ends["stopped_by_runpod"]) == (0, 1)
    judge(Watch([pod("RUNNING", None, True)]), 100.0, None, tally, "t")  # type: ignore[arg-type]
    judge(Watch([pod("EXITED", "user", False)]), 100.0, None, tally, "t")  # type: ignore[arg-type]
    assert (tally.orphans, tally.ends["stopped_by_runpod"]) == (2, 1)
