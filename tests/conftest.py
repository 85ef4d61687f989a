"""Fixtures shared by every test directory: a running simulator, an isolated runpod SDK, and
the watchdog harness (`wd`, or `make_wd(sim, **config)` for a simulator of the test's own)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from wdkit import Harness, MakeWd

from podmgr.sim.process import SimProcess

# Every answer of RunPod's API (the simulator's, here) is parsed against the v2 document in
# strict mode: a field it lacks, or one it requires missing, is an error (podmgr/runpod/wire.py).
# Set before any test starts a process, so `podmgr` subprocesses are strict too.
os.environ["PODMGR_RUNPOD_STRICT"] = "1"


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    """A started `podmgr sim` with fast timings (pull 0.1 s, load 0.1 s, no token delay)."""
    with SimProcess(pull_seconds=0.1, load_seconds=0.1, token_delay=0.0) as process:
        yield process


@pytest.fixture
def runpod_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: SimProcess) -> SimProcess:
    """Point the runpod SDK (and child processes) at `sim`, with HOME in a temp dir.

    Sets HOME, RUNPOD_API_BASE_URL, RUNPOD_REST_URL and RUNPOD_API_KEY; if `runpod` is
    already imported its `api_key` global is set too (the SDK reads the key from there, not
    from the env).
    """
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RUNPOD_API_BASE_URL", sim.base_url)
    monkeypatch.setenv("RUNPOD_REST_URL", sim.rest_url)
    monkeypatch.setenv("RUNPOD_API_KEY", sim.api_key)
    if "runpod" in sys.modules:
        monkeypatch.setattr(sys.modules["runpod"], "api_key", sim.api_key)
    return sim


@pytest.fixture(scope="session")
def shared_sim() -> Iterator[SimProcess]:
    """One simulator for every `wd` of the run (fast timings, as `sim`)."""
    with SimProcess(pull_seconds=0.1, load_seconds=0.1, token_delay=0.0) as process:
        yield process


@pytest.fixture
def make_wd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeWd]:
    """`make_wd(sim, harness_class=Harness, **config)`: the test's watchdog harness on `sim`.

    Its RunPod clients (and child processes) talk to `sim`: HOME, RUNPOD_API_BASE_URL,
    RUNPOD_REST_URL and RUNPOD_API_KEY are set for the test, so one harness per test.
    `config` is written over the harness's fast defaults. At teardown the harness's faults
    are cleared, its pods terminated and its proxies stopped.
    """
    made: list[Harness] = []

    def make(sim: SimProcess, harness_class: type[Harness] = Harness, **config: object) -> Harness:
        if made:
            raise RuntimeError("one watchdog harness per test: the env points at its simulator")
        home = tmp_path / "home"
        home.mkdir()
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("RUNPOD_API_BASE_URL", sim.base_url)
        monkeypatch.setenv("RUNPOD_REST_URL", sim.rest_url)
        monkeypatch.setenv("RUNPOD_API_KEY", sim.api_key)
        if "runpod" in sys.modules:  # the SDK (spot creates only) reads its key from a global
            monkeypatch.setattr(sys.modules["runpod"], "api_key", sim.api_key)
        harness = harness_class(sim, tmp_path)
        made.append(harness)
        if config:
            harness.configure(**config)
        return harness

    try:
        yield make
    finally:
        for harness in made:
            harness.cleanup()


@pytest.fixture
def wd_sim(shared_sim: SimProcess) -> SimProcess:
    """The simulator `wd` runs on; a module overrides this fixture to give it another."""
    return shared_sim


@pytest.fixture
def wd(wd_sim: SimProcess, make_wd: MakeWd) -> Harness:
    """The watchdog harness on `wd_sim` (tests/wdkit.py)."""
    return make_wd(wd_sim)
