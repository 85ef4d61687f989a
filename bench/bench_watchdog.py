"""Benchmark: watchdog passes and `podmgr status` as cron runs them, as ratios to `python -c pass`.

Issue 10 asks that a no-op pass take well under a second: a pass no longer imports the
`runpod` SDK (only the GPU catalog does), just httpx and pydantic. Everything runs as
fresh processes against a `podmgr sim` started here, in one run on one machine:
  - baseline: `python -c pass` (the interpreter's start alone);
  - ended session: `python -m podmgr watchdog` with a session that has ended and no pod
    (lists pods over REST, plans "keep down", saves the state);
  - ready pod: the same pass against a healthy, ready pod (lists pods, reads the pod,
    probes its /health, checks the proxy, saves the state);
  - status: `python -m podmgr status` (state file and proxy /health; no API call);
  - for reference, `python -c "import runpod"`: what every pass paid before issue 10.
Run: `python -m bench.bench_watchdog [runs]` (default 5 runs each; medians are shown).
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
from podmgr.sim.process import SimProcess, free_port
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


def _write_config(directory: Path, sim: SimProcess) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "pod_config.json"
    values = {
        "endpoint_url_template": sim.pod_url_template,
        "initial_wait_seconds": 0,
        "poll_interval_seconds": 0.1,
        "proxy_port": free_port(),
        "state_file": "state.json",
    }
    config.write_text(json.dumps(values))
    return config


def _end_session(config: Path) -> None:
    """A session that ended an hour ago, and no pod."""
    now = time.time()
    ended = Session(started_at=now - 7200, deadline=now - 3600, ended_at=now - 3600,
                    end_reason="deadline")  # fmt: skip
    StateStore(load_config(config, environ={}).state_path).save(State(session=ended), now=now)


def measure(runs: int = 5) -> dict[str, float]:
    """Seconds (median) for the baseline, both passes, status and `import runpod`."""
    with tempfile.TemporaryDirectory() as tmp, SimProcess() as sim:
        directory = Path(tmp)
        env = sim.env(directory / "home")
        podmgr = [sys.executable, "-m", "podmgr"]
        results = {"python -c pass": _time([sys.executable, "-c", "pass"], env, runs)}
        ended = _write_config(directory / "ended", sim)
        _end_session(ended)
        results["pass, ended session"] = _time([*podmgr, "watchdog", "--config", str(ended)],
                                               env, runs)  # fmt: skip
        ready = _write_config(directory / "ready", sim)
        try:
            subprocess.run([*podmgr, "up", "--config", str(ready)], env=env, check=True,
                           capture_output=True, timeout=120)  # fmt: skip
            results["pass, ready pod"] = _time([*podmgr, "watchdog", "--config", str(ready)],
                                               env, runs)  # fmt: skip
            results["podmgr status"] = _time([*podmgr, "status", "--config", str(ready)],
                                             env, runs)  # fmt: skip
        finally:
            subprocess.run([*podmgr, "shutdown", "--config", str(ready)], env=env,
                           capture_output=True, timeout=120)  # fmt: skip
        results["import runpod (old pass)"] = _time([sys.executable, "-c", "import runpod"],
                                                    env, runs)  # fmt: skip
        alive = [p for p in sim.ledger() if p["status"] != "TERMINATED"]
        if alive:
            raise SystemExit(f"benchmark left pods alive: {alive}")
    return results


def main(argv: list[str] | None = None) -> None:
    """Print the watchdog table (`make bench` runs this after the proxy's)."""
    args = sys.argv[1:] if argv is None else argv
    runs = int(args[0]) if args else 5
    results = measure(runs)
    baseline = results["python -c pass"]
    print(f"watchdog benchmark (median of {runs} fresh processes each)")
    print(f"{'what':<26} {'seconds':>8} {'x python -c pass':>17}")
    for name, seconds in results.items():
        print(f"{name:<26} {seconds:>8.3f} {seconds / baseline:>17.2f}")


if __name__ == "__main__":
    main()
