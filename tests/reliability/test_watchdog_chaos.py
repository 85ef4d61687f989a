"""Part 1 of the reliability proofs: the watchdog under faults and SIGKILL (see chaos.py).

CI runs a few runs; `make chaos RUNS=N` runs N (PODMGR_CHAOS_RUNS). Both print the one
summary line and fail on any violation, judged from the simulator's ledger.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from podmgr.sim.process import SimProcess, free_port

from .chaos import Tally, one_run

CI_RUNS = 3
LONG_RUNS = int(os.environ.get("PODMGR_CHAOS_RUNS", "50"))


@pytest.fixture(scope="module")
def chaos_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=0.1, load_seconds=0.1, token_delay=0.0) as process:
        yield process


def run_chaos(sim: SimProcess, base: Path, runs: int, seed: int) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    port = free_port()
    for _ in range(runs):
        one_run(sim, base, rng, port, tally)
    print(tally.line())
    assert tally.violations == 0, "\n".join([tally.line(), *tally.notes])
    assert tally.runs == runs
    return tally


@pytest.mark.timeout(600 + 120 * CI_RUNS)  # a hang guard; passes run slow on a busy machine
def test_chaos_short(chaos_sim: SimProcess, tmp_path: Path) -> None:
    tally = run_chaos(chaos_sim, tmp_path, CI_RUNS, seed=7)
    assert tally.kills + tally.faults > 0, "no kill and no fault: the run proved nothing"


@pytest.mark.slow
@pytest.mark.timeout(600 + 120 * LONG_RUNS)
def test_chaos_long(chaos_sim: SimProcess, tmp_path: Path) -> None:
    runs = LONG_RUNS
    seed = int(os.environ.get("PODMGR_CHAOS_SEED", str(random.randrange(1 << 30))))
    run_chaos(chaos_sim, tmp_path, runs, seed)
