"""Benchmark: one no-op watchdog pass and `podmgr status`, as ratios to `import runpod`.

Everything runs as fresh processes (as cron runs them) against the simulator, in one run
on one machine, so the ratios compare like with like:
  - baseline: `python -c "import runpod"` (the SDK's import alone, ~1.5 s here);
  - no-op pass: `python -m podmgr watchdog` against a healthy, ready pod (it lists pods,
    probes the pod's /health, checks the proxy, saves the state);
  - status: `python -m podmgr status` (state file and proxy /health, no SDK).
Run: `python -m bench.bench_watchdog [runs]` (default 5 runs each; the median is shown).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from podmgr.sim.testkit import SimProcess, free_port

__all__ = ["main"]


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


def measure(runs: int = 5) -> dict[str, float]:
    """Seconds (median) for the baseline, a no-op pass and status."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        SimProcess(pull_seconds=0.1, load_seconds=0.1) as sim,
    ):
        directory = Path(tmp)
        config = directory / "pod_config.json"
        config.write_text(
            json.dumps(
                {
                    "endpoint_url_template": sim.pod_url_template,
                    "initial_wait_seconds": 0,
                    "poll_interval_seconds": 0.1,
                    "proxy_port": free_port(),
                    "state_file": "state.json",
                }
            )
        )
        env = sim.env(directory / "home")
        podmgr = [sys.executable, "-m", "podmgr"]
        try:
            subprocess.run([*podmgr, "up", "--config", str(config)], env=env, check=True,
                           capture_output=True, timeout=120)  # fmt: skip
            baseline = _time([sys.executable, "-c", "import runpod"], env, runs)
            noop = _time([*podmgr, "watchdog", "--config", str(config)], env, runs)
            status = _time([*podmgr, "status", "--config", str(config)], env, runs)
        finally:
            subprocess.run([*podmgr, "shutdown", "--config", str(config)], env=env,
                           capture_output=True, timeout=120)  # fmt: skip
        alive = [p for p in sim.ledger() if p["status"] != "TERMINATED"]
        if alive:
            raise SystemExit(f"benchmark left pods alive: {alive}")
    return {"import runpod": baseline, "no-op watchdog pass": noop, "podmgr status": status}


def main(argv: list[str] | None = None) -> None:
    """Print the watchdog table (bench/__main__.py calls this)."""
    args = sys.argv[1:] if argv is None else argv
    runs = int(args[0]) if args else 5
    results = measure(runs)
    baseline = results["import runpod"]
    print(f"watchdog benchmark (median of {runs} fresh processes each)")
    print(f"{'what':<24} {'seconds':>8} {'x import runpod':>16}")
    for name, seconds in results.items():
        print(f"{name:<24} {seconds:>8.3f} {seconds / baseline:>16.2f}")


if __name__ == "__main__":
    main()
