"""A state writer killed with SIGKILL at random moments never leaves a broken file.

Each round forks a child that rewrites the state file in a loop (alternating two states
of different sizes) and kills it after a random delay; the file must then parse and be
one of the two states. CI runs PODMGR_STATE_KILLS (default 150) rounds; `make chaos`
runs 500.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from podmgr.sim.process import wait_until
from podmgr.state import PodRecord, State, StateStore

ROUNDS = int(os.environ.get("PODMGR_STATE_KILLS", "150"))


def state_with_restarts(restarts: int, padding: int) -> State:
    state = State()
    state.pod = PodRecord(
        id=f"pod{restarts}",
        name="podmgr-kill",
        gpu_type_id="A",
        created_at=1.0,
        vllm_api_key="k-fake",
        restarts=restarts,
    )
    for index in range(padding):
        state.record(float(index), "noop", "x" * 40)
    return state


def writer_loop(store: StateStore) -> None:
    variants = [state_with_restarts(1, 2), state_with_restarts(2, 40)]
    index = 0
    while True:
        store.save(variants[index % 2])
        index += 1


def test_killed_writer_leaves_old_or_new_state(tmp_path: Path) -> None:
    kill_rounds(tmp_path, ROUNDS)


@pytest.mark.slow
def test_killed_writer_500_rounds(tmp_path: Path) -> None:
    kill_rounds(tmp_path, max(ROUNDS, 500))


def _restarts(store: StateStore) -> int | None:
    state = store.peek()
    return state.pod.restarts if state is not None and state.pod is not None else None


def kill_rounds(tmp_path: Path, rounds: int) -> None:
    store = StateStore(tmp_path / "state.json")
    store.save(state_with_restarts(0, 0))
    rng = random.Random(1234)
    seen: set[int] = set()
    for round_ in range(rounds):
        pid = os.fork()
        if pid == 0:  # the child: write until killed
            try:
                writer_loop(store)
            finally:
                os._exit(0)
        if round_ == 0:
            # One kill after a completed write, whatever the load: on a busy machine a
            # child may not be scheduled at all within 10 ms, round after round.
            wait_until(lambda: _restarts(store) in (1, 2), "the writer to complete one write")
        else:
            time.sleep(rng.uniform(0, 0.01))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        state = store.peek()
        assert state is not None, "the state file no longer parses after a SIGKILL"
        assert state.pod is not None and state.pod.restarts in (0, 1, 2)
        seen.add(state.pod.restarts)
    with store.locked():
        assert not list(tmp_path.glob(".state.json.*")), "stale temp files were not removed"
    assert store.load().pod is not None
    assert not list(tmp_path.glob("state.json.corrupt-*"))
    assert seen & {1, 2}, "the writer never completed a write: the test proved nothing"
