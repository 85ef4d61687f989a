"""Laptop-closed chaos runs (chaos_guard.py): 0 pods billed past deadline + guard interval."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from podmgr.sim.process import SimProcess, free_port

from .chaos import Tally
from .chaos_guard import laptop_closed_run

CI_RUNS = 3
LONG_RUNS = int(os.environ.get("PODMGR_CHAOS_RUNS", "50"))


@pytest.fixture(scope="module")
def guard_chaos_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=0.1, load_seconds=0.1, extra_args=["--run-guards"]) as sim:
        yield sim


def run_laptop_closed(sim: SimProcess, base: Path, runs: int, seed: int) -> Tally:
    rng, tally, port = random.Random(seed), Tally(), free_port()
    ended: Counter[str] = Counter()
    for _ in range(runs):
        ended += laptop_closed_run(sim, base, rng, port, tally)
    line = tally.line().replace("chaos:", "chaos (laptop closed):")
    print(line, "ended_by=" + ",".join(f"{k}:{v}" for k, v in sorted(ended.items())))
    assert ended["pod"] > 0, "no pod was left to its guard: the runs proved nothing"
    assert tally.violations == 0, "\n".join([tally.line(), *tally.notes])
    assert tally.runs == runs
    return tally


@pytest.mark.timeout(600 + 120 * CI_RUNS)
def test_laptop_closed_chaos_short(guard_chaos_sim: SimProcess, tmp_path: Path) -> None:
    run_laptop_closed(guard_chaos_sim, tmp_path, CI_RUNS, seed=11)


@pytest.mark.slow
@pytest.mark.timeout(600 + 120 * LONG_RUNS)
def test_laptop_closed_chaos_long(guard_chaos_sim: SimProcess, tmp_path: Path) -> None:
    seed = int(os.environ.get("PODMGR_CHAOS_SEED", str(random.randrange(1 << 30))))
    run_laptop_closed(guard_chaos_sim, tmp_path, LONG_RUNS, seed)
