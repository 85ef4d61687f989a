"""`python -m bench.versus OTHER_PYTHON [ROUNDS]`: this checkout's proxy against another's.

Runs two `podmgr proxy` processes on loopback in front of one upstream (bench/apps.py),
this checkout's and the one `OTHER_PYTHON` imports (the python of a venv with another
commit installed: `git worktree add --detach /tmp/old REV`, a venv there, `pip install -e
/tmp/old`), with the cache off (the pass-through path). Rounds alternate their order and
each round loads one proxy at 32 connections for a few seconds. The figure that matters is
the proxy process's CPU per request (utime + stime from /proc over the requests served):
unlike req/s it hardly moves with what else the machine runs, so two commits can be
compared on a shared machine. Req/s and each proxy's ratio to calling the upstream directly
are printed too, as `python -m bench` measures them.

Issue 21 used it to ask whether the pass-through had won back the speed of 81570d3 (the
commit before the redesign); docs/bench.md has the figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.fill import bench_body
from bench.load import run_load
from bench.servers import serve_app
from podmgr.sim.process import free_port, wait_http

CHAT = "/v1/chat/completions"
BODY = [json.dumps(bench_body(0))]
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
_TICKS = os.sysconf("SC_CLK_TCK")
# Runs the proxy of whatever `podmgr` the interpreter imports, and says which one.
_LAUNCH = (
    "import sys, podmgr; sys.stderr.write(podmgr.__file__ + '\\n'); "
    "from podmgr.cli import main; sys.argv = ['podmgr', 'proxy', '--config', sys.argv[1]]; main()"
)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@contextmanager
def proxy_of(python: str, workdir: Path, upstream: str) -> Iterator[tuple[str, int, str]]:
    """A pass-through proxy run by `python`: (base URL, pid, the podmgr it imported)."""
    port = free_port()
    workdir.mkdir(parents=True)
    config = workdir / "pod_config.json"
    config.write_text(
        json.dumps({"proxy_port": port, "cache_dir": "cache", "state_file": "state.json",
                    "log_level": "warning", "upstream_url": upstream, "cache_mode": "off"})
    )  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    err = workdir / "stderr"
    with err.open("w") as sink:
        process = subprocess.Popen(
            [python, "-c", _LAUNCH, str(config)], cwd=workdir, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health")
        yield url, process.pid, err.read_text().splitlines()[0]
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    other, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 6
    cpu: dict[str, list[float]] = {"this": [], "other": []}
    rps: dict[str, list[float]] = {"this": [], "other": [], "direct": []}
    with tempfile.TemporaryDirectory(prefix="podmgr-versus-") as tmp, serve_app("upstream") as up:
        work = Path(tmp)
        with (
            proxy_of(sys.executable, work / "this", up) as this,
            proxy_of(other, work / "other", up) as that,
        ):
            print(f"this: {this[2]}\nother: {that[2]}")
            targets = {"this": this, "other": that}
            for url, _pid, _where in targets.values():
                run_load(url + CHAT, 4, 1, BODY)  # connections made, code warm
            for index in range(rounds):
                names = ["this", "other"] if index % 2 == 0 else ["other", "this"]
                for name in names:
                    url, pid, _where = targets[name]
                    before = cpu_seconds(pid)
                    result = run_load(url + CHAT, 32, SECONDS, BODY)
                    served = result.rps * SECONDS
                    cpu[name].append(1e6 * (cpu_seconds(pid) - before) / max(served, 1.0))
                    rps[name].append(result.rps)
                rps["direct"].append(run_load(up + CHAT, 32, SECONDS, BODY).rps)
    direct = statistics.median(rps["direct"])
    for name in ("this", "other"):
        print(
            f"{name:5}: CPU {statistics.median(cpu[name]):.0f} us/request (rounds: "
            f"{', '.join(f'{v:.0f}' for v in cpu[name])}); {statistics.median(rps[name]):,.0f} "
            f"req/s, {statistics.median(rps[name]) / direct:.2f}x of direct ({direct:,.0f})"
        )
    ratio = statistics.median(cpu["this"]) / statistics.median(cpu["other"])
    print(f"CPU per request, this / other: {ratio:.2f} (below 1: this checkout is cheaper)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
