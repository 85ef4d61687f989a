"""A whole session as a user runs it, on REST API v2 alone (issue 19's first "done when").

`podmgr up`, two passes, `status --json --live`, `--refresh-catalog`, `cost`, `shutdown`,
each a real process against a simulator that runs each pod's guard for real. The test
fails if any call reached REST v1 or GraphQL (the simulator counts both), and every answer
is parsed in strict mode (tests/conftest.py): a field the v2 document lacks, or one it
requires missing, fails the command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podmgr.sim.process import SimProcess, free_port, wait_until

PODMGR = [sys.executable, "-m", "podmgr"]


@pytest.fixture(scope="module")
def guard_sim() -> Iterator[SimProcess]:
    with SimProcess(extra_args=["--run-guards"]) as process:
        yield process


def write_config(directory: Path, sim: SimProcess, **values: Any) -> Path:
    config = directory / "pod_config.json"
    base = {
        "gpu_type_id": ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000"],
        "endpoint_url_template": sim.pod_url_template,
        "runtime_seconds": 600,
        "max_cost_usd": 5,
        "initial_wait_seconds": 0,
        "poll_interval_seconds": 0.2,
        "max_startup_attempts": 300,
        "api_retry_initial_seconds": 0.05,
        "api_retry_max_seconds": 5,
        "proxy_port": free_port(),
        "proxy_start_timeout_seconds": 60,
        "guard_interval_seconds": 1,
        "state_file": "state/state.json",
    }
    config.write_text(json.dumps({**base, **values}))
    return config


def podmgr(sim: SimProcess, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PODMGR, *args], env=sim.env(home), capture_output=True, text=True, timeout=180
    )


def test_a_whole_session_speaks_v2_only(guard_sim: SimProcess, tmp_path: Path) -> None:
    config = str(write_config(tmp_path, guard_sim))
    home = tmp_path / "home"
    home.mkdir()
    before = guard_sim.api_requests()
    try:
        up = podmgr(guard_sim, home, "up", "--config", config)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "created on NVIDIA GeForce RTX 4090 (SECURE) at $" in up.stdout, up.stdout
        for _ in range(2):
            done = podmgr(guard_sim, home, "watchdog", "--config", config)
            assert done.returncode == 0, done.stdout + done.stderr

        def guard_confirmed() -> dict[str, Any] | None:
            podmgr(guard_sim, home, "watchdog", "--config", config)
            run = podmgr(guard_sim, home, "status", "--json", "--live", "--config", config)
            report: dict[str, Any] = json.loads(run.stdout)
            return report if report["guard"]["confirmed"] else None

        report = wait_until(guard_confirmed, "the guard's armed line in the pod's log", 60)
        assert report["live"]["status"] == "RUNNING" and report["live"]["runtime_up"]
        catalog = podmgr(guard_sim, home, "watchdog", "--refresh-catalog", "--config", config)
        assert catalog.returncode == 0, catalog.stdout + catalog.stderr
        assert "*NVIDIA GeForce RTX 4090" in catalog.stdout and "HIGH" in catalog.stdout
        cost = podmgr(guard_sim, home, "cost", "--json", "--config", config)
        assert cost.returncode == 0, cost.stdout + cost.stderr
        assert json.loads(cost.stdout)["runpod_error"] is None
    finally:
        down = podmgr(guard_sim, home, "shutdown", "--config", config)
    assert down.returncode == 0, down.stdout + down.stderr
    after = guard_sim.api_requests()
    assert after["v1"] == before["v1"], "a call went to the retired REST v1"
    assert after["graphql"] == before["graphql"], "an on-demand session called GraphQL"
    assert after["v2"] > before["v2"]
    ours = [p for p in guard_sim.ledger() if p["name"].startswith("podmgr-")]
    assert ours and all(p["status"] == "TERMINATED" for p in ours)


def test_the_calls_a_session_spends_on_the_rate_limit(
    guard_sim: SimProcess, tmp_path: Path
) -> None:
    """The README's budget, counted (not timed): a pass is 1 call once the guard is
    confirmed, 2 while its log is read; a create adds the catalog (1 per cloud) and 1 per
    candidate; the guard spends 1 to read its rate."""
    config = str(write_config(tmp_path, guard_sim, gpu_type_id="NVIDIA GeForce RTX 4090"))
    home = tmp_path / "home"
    home.mkdir()
    counts: dict[str, int] = {}
    try:
        before = guard_sim.rest_requests()
        up = podmgr(guard_sim, home, "up", "--config", config)
        assert up.returncode == 0, up.stdout + up.stderr
        counts["up"] = guard_sim.rest_requests() - before

        def confirmed() -> bool:
            podmgr(guard_sim, home, "watchdog", "--config", config)
            run = podmgr(guard_sim, home, "status", "--json", "--config", config)
            return bool(json.loads(run.stdout)["guard"]["confirmed"])

        wait_until(confirmed, "the guard confirmed", 60)
        before = guard_sim.rest_requests()
        for _ in range(3):
            done = podmgr(guard_sim, home, "watchdog", "--config", config)
            assert done.returncode == 0, done.stdout + done.stderr
        counts["3 steady passes"] = guard_sim.rest_requests() - before
    finally:
        before = guard_sim.rest_requests()
        podmgr(guard_sim, home, "shutdown", "--config", config)
        counts["shutdown"] = guard_sim.rest_requests() - before
    print(f"v2 calls: {counts}")
    assert counts["3 steady passes"] == 3  # GET /pods each, nothing else
    assert counts["shutdown"] == 2  # GET /pods, DELETE /pods/{id}
    # up: its passes' listings, the catalog, the create, the log reads, the guard's GET
    assert counts["up"] <= 3 + 2 * up.stdout.count("[") + 2, (counts, up.stdout)
