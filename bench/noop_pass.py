"""Benchmark: a no-op watchdog pass and `podmgr status`, as ratios to `python -c pass`.

Issue 10 asks that a no-op pass take well under a second: a pass no longer imports the
`runpod` SDK (~1.5 s), only httpx and pydantic. Everything runs as fresh processes (as
cron runs them) against a `podmgr sim` started here, in one run on one machine:
  - baseline: `python -c pass` (the interpreter's start alone);
  - no-op pass: `python -m podmgr watchdog` with a session that has ended and no pod (it
    lists pods over REST, plans "keep down", saves the state);
  - status: `python -m podmgr status` (state file and proxy /health; no API call).
Run: `python -m bench.noop_pass [runs]` (default 10 runs each; medians are shown).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from podmgr.config import load_config
from podmgr.sim.testkit import SimProcess, free_port
from podmgr.state import Session, State, StateStore

__all__ = ["main", "measure"]


def _time(args: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time of `args` over `runs` runs; fails loudly on a non-zero exit."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        samples.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return statistics.median(samples)


def _ended_session_config(directory: Path, sim: SimProcess) -> Path:
    config = directory / "pod_config.json"
    config.write_text(
        json.dumps(
            {
                "endpoint_url_template": sim.pod_url_template,
                "proxy_port": free_port(),
                "state_file": "state.json",
            }
        )
    )
    now = time.time()  # a session that ended an hour ago, and no pod
    ended = Session(started_at=now - 7200, deadline=now - 3600, ended_at=now - 3600,
                    end_reason="deadline")  # fmt: skip
    StateStore(load_config(config, environ={}).state_path).save(State(session=ended), now=now)
    return config


def measure(runs: int = 10) -> dict[str, float]:
    """Seconds (median) for `python -c pass`, a no-op pass and `podmgr status`."""
    with tempfile.TemporaryDirectory() as tmp, SimProcess() as sim:
        directory = Path(tmp)
        config = _ended_session_config(directory, sim)
        env = {**sim.env(directory / "home"), "RUNPOD_REST_URL": sim.rest_url}
        podmgr = [sys.executable, "-m", "podmgr"]
        baseline = _time([sys.executable, "-c", "pass"], env, runs)
        noop = _time([*podmgr, "watchdog", "--config", str(config)], env, runs)
        status = _time([*podmgr, "status", "--config", str(config)], env, runs)
        if sim.ledger():
            raise SystemExit(f"the no-op passes made pods: {sim.ledger()}")
    return {"python -c pass": baseline, "no-op watchdog pass": noop, "podmgr status": status}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    runs = int(args[0]) if args else 10
    results = measure(runs)
    baseline = results["python -c pass"]
    print(f"no-op pass benchmark (median of {runs} fresh processes each)")
    print(f"{'what':<24} {'seconds':>8} {'x python -c pass':>17}")
    for name, seconds in results.items():
        print(f"{name:<24} {seconds:>8.3f} {seconds / baseline:>17.2f}")


if __name__ == "__main__":
    main()
