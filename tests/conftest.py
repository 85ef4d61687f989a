"""Fixtures shared by every test directory: a running simulator and an isolated runpod SDK."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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
