"""Laptop-closed chaos runs: `podmgr up` under faults, killed at random, then no pass ever.

A run: a random valid config with the guard armed (check interval `GUARD_INTERVAL`), random
API faults during `podmgr up` (a real process, SIGKILLed at a random moment as in
chaos.py), then the laptop closes: the proxy is SIGKILLed, the faults end, and no watchdog
pass runs again. Only the pods' own guards can end the pods. Judged from the ledger: every
pod of the run is terminated, by `pod`, at most `GUARD_INTERVAL + SLACK` after the
session's deadline.

Left out on purpose: `container_crash` (a container that never runs again runs no guard:
docs/guard.md) and templates (a template pod gets no guard).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from podmgr.sim.process import SimProcess, wait_until
from podmgr.state import StateStore

from .chaos import FAULTS, PASS_TIMEOUT, LedgerWatch, Tally, podmgr, random_config

GUARD_INTERVAL = 1.0
# The guard's DELETE and the simulator's bookkeeping after its check; a loaded 2-core
# machine delays a process's wake-up by a fraction of a second.
SLACK = 2.0
# GPU types the simulator's catalog has: chaos.py's GPUS also names "NVIDIA A40" and
# "NVIDIA L4", which the simulator refuses ("Invalid GPU type id"), so that a run trying
# one of them first makes no pod, and a laptop-closed run without a pod proves nothing.
KNOWN_GPUS = ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000", "NVIDIA L40S"]
GUARD_FAULTS = [f for f in FAULTS if f["fault"] not in ("container_crash", "unknown_template")]


def inject(sim: SimProcess, rng: random.Random, tally: Tally) -> None:
    for spec in rng.sample(GUARD_FAULTS, rng.randint(0, 3)):
        params = {k: v for k, v in spec.items() if k != "fault"}
        sim.set_fault(spec["fault"], count=rng.randint(1, 3), **params)
        tally.faults += 1


def close_during_up(
    up: subprocess.Popen[bytes], watch: LedgerWatch, rng: random.Random, tally: Tally
) -> None:
    """The lid closes once `up` made a pod: at once, a random 0-3 s later, or after `up`
    ended (one run in three each); SIGKILL, as a sleeping machine stops everything."""
    moment = rng.choice(("on_create", "later", "after_up"))
    if moment == "after_up":
        up.wait(PASS_TIMEOUT)
        return
    wait_until(lambda: watch.pods() or up.poll() is not None, "a pod or the end of up")
    if moment == "later":
        time.sleep(rng.uniform(0.0, 3.0))
    if up.poll() is None:
        up.send_signal(signal.SIGKILL)
        tally.kills += 1
    up.wait(PASS_TIMEOUT)


def close_the_laptop(store: StateStore) -> None:
    """SIGKILL the proxy the killed `up` may have started; cron never runs again."""
    state = store.peek()
    if state is not None and state.proxy_pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.proxy_pid, signal.SIGKILL)


def laptop_closed_run(
    sim: SimProcess, base: Path, rng: random.Random, port: int, tally: Tally
) -> Counter[str]:
    """One run; returns who ended each of its pods ("pod": its guard), for the summary."""
    prefix = f"g{uuid.uuid4().hex[:8]}-"
    run_dir = base / prefix.rstrip("-")
    (run_dir / "home").mkdir(parents=True)
    values: dict[str, Any] = {
        **random_config(rng, sim, prefix, port),
        "template_id": None,
        "gpu_type_id": rng.sample(KNOWN_GPUS, rng.randint(1, 2)),
        "guard_interval_seconds": GUARD_INTERVAL,
    }
    config = run_dir / "pod_config.json"
    config.write_text(json.dumps(values))
    store = StateStore(run_dir / "state" / "state.json")
    watch = LedgerWatch(sim, prefix)
    watch.start()
    started = time.time()
    try:
        inject(sim, rng, tally)
        close_during_up(podmgr(["up"], config, sim.env(run_dir / "home")), watch, rng, tally)
        sim.clear_faults()
        close_the_laptop(store)
        deadline = _deadline(store, started, values["runtime_seconds"])
        wait_until(
            lambda: time.time() > deadline + GUARD_INTERVAL + SLACK and True,
            "the guard's limit to pass",
            timeout=values["runtime_seconds"] + 60,
        )
        wait_until(lambda: not _alive(watch) or time.time() > deadline + 60, "pods to end")
    finally:
        watch.stop_event.set()
        watch.join()
        sim.clear_faults()
        _kill_proxies_of(config)
    tally.runs += 1
    _judge(watch, deadline, tally, prefix)
    return Counter(str(pod["ended_by"]) for pod in watch.pods())


def _kill_proxies_of(config: Path) -> None:
    """SIGKILL this run's proxies: one started by an `up` killed before it saved the pid is
    in no state file (the machine "woke up" long ago in real life)."""
    wanted = str(config).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"proxy" in words and wanted in words:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def _deadline(store: StateStore, started: float, runtime: float) -> float:
    """The session's deadline; a killed `up` may not have saved one (then no pod exists)."""
    state = store.peek()
    if state is not None and state.session is not None:
        return state.session.deadline
    return started + runtime


def _alive(watch: LedgerWatch) -> list[dict[str, Any]]:
    return [p for p in watch.pods() if p["status"] != "TERMINATED"]


def _judge(watch: LedgerWatch, deadline: float, tally: Tally, tag: str) -> None:
    limit = deadline + GUARD_INTERVAL + SLACK
    for pod in watch.pods():
        if pod["status"] != "TERMINATED":
            tally.orphans += 1
            tally.notes.append(f"{tag}: pod {pod['id']} still {pod['status']}")
            continue
        end = pod["terminated_at"]
        tally.worst_past_interval = max(tally.worst_past_interval, end - deadline - GUARD_INTERVAL)
        if end > limit:
            tally.overbilled_seconds += end - limit
            tally.notes.append(f"{tag}: pod {pod['id']} ended {end - deadline:.2f}s past deadline")
        if pod["ended_by"] not in ("pod", "user"):
            tally.notes.append(f"{tag}: pod {pod['id']} ended by {pod['ended_by']}")
