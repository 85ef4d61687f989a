"""Two-pod chaos (chaos_pods.py, issue 23): 0 orphans, 0 s billed past the bound, never
more than one live pod per configured pod, fim's idle end never takes chat.

CI runs a few runs; `make chaos RUNS=N` runs N (PODMGR_CHAOS_RUNS), as test_watchdog_chaos.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from podmgr.sim.process import SimProcess, free_port

from .chaos_pods import PodsTally, one_run

CI_RUNS = 2
LONG_RUNS = int(os.environ.get("PODMGR_CHAOS_RUNS", "50"))


@pytest.fixture(scope="module")
def pods_chaos_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=0.1, load_seconds=0.1, token_delay=0.0) as process:
        yield process


def run_pods_chaos(sim: SimProcess, base: Path, runs: int, seed: int) -> PodsTally:
    rng = random.Random(seed)
    tally = PodsTally()
    port = free_port()
    for _ in range(runs):
        one_run(sim, base, rng, port, tally)
    print(tally.line(), f"seed={seed}")
    assert tally.violations == 0, "\n".join([tally.line(), *tally.notes])
    assert tally.runs == runs
    return tally


@pytest.mark.timeout(600 + 120 * CI_RUNS)  # a hang guard; passes run slow on a busy machine
def test_two_pod_chaos_short(pods_chaos_sim: SimProcess, tmp_path: Path) -> None:
    tally = run_pods_chaos(pods_chaos_sim, tmp_path, CI_RUNS, seed=23)
    assert tally.kills + tally.faults > 0, "no kill and no fault: the run proved nothing"


@pytest.mark.slow
@pytest.mark.timeout(600 + 120 * LONG_RUNS)
def test_two_pod_chaos_long(pods_chaos_sim: SimProcess, tmp_path: Path) -> None:
    seed = int(os.environ.get("PODMGR_CHAOS_SEED", str(random.randrange(1 << 30))))
    run_pods_chaos(pods_chaos_sim, tmp_path, LONG_RUNS, seed)
