"""One chaos run of the watchdog against the simulator, judged by the simulator's ledger.

A run: a random valid config, random faults, `podmgr up` as a real process killed with
SIGKILL at a random moment (sometimes the instant the ledger shows a new pod, i.e. right
after RunPod returned its id), clean passes until steady, then `podmgr shutdown`. A poller
thread watches the ledger the whole time for more than one live pod of the run.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podmgr.sim.process import SimProcess
from podmgr.state import StateStore

GPUS = ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000", "NVIDIA L40S", "NVIDIA A100 80GB PCIe"]
FAULTS: list[dict[str, Any]] = [
    {"fault": "api_error", "status": 500},
    {"fault": "api_error", "status": 502},
    {"fault": "api_error", "status": 429},
    {"fault": "api_slow", "seconds": 0.4},
    {"fault": "api_something_went_wrong"},
    {"fault": "capacity"},
    {"fault": "list_error"},  # issue 10: limits must hold when listing pods fails
    {"fault": "transient_status", "seconds": 0.5},  # issue 10: CREATED/RESTARTING a while
    {"fault": "container_crash"},  # issue 10: the pod stays RUNNING, its container gone
    {"fault": "api_error_after_apply"},  # issue 10: the change happens, the answer is 500
    # issue 10: a create answered 500 after it made the pod, which listings show late
    {"fault": "api_error_after_apply", "field": "create", "hide_seconds": 0.5},
    # issue 10: a template RunPod does not know, answered with the misleading capacity
    # wording (runpod-python#297); only creates that name a template (see random_config)
    {"fault": "unknown_template"},
    # issue 11: RunPod stops a spot pod (only configs with `interruptible` make one), and
    # the balance at $0 (every pod stopped or terminated, starts refused until cleared)
    {"fault": "preempt"},
    {"fault": "balance_zero"},
    # issue 19 (REST v2): 429 with Retry-After (the client waits it out), and a start that
    # gives the pod zero GPUs (RunPod docs, pods/manage-pods.mdx): replaced at once
    {"fault": "rate_limited", "seconds": 1},
    {"fault": "zero_gpus"},
]
PASS_TIMEOUT = 120.0  # a hang guard only: a loaded 2-core machine made passes take 8 s+
CLEAN_PASSES = 25
INTERVAL = 2.0  # the watchdog interval: cron's period in these runs


@dataclass
class Tally:
    runs: int = 0
    kills: int = 0
    faults: int = 0
    orphans: int = 0
    overbilled_seconds: float = 0.0
    state_errors: int = 0
    multi_alive: int = 0
    # measured against deadline + interval alone, without the pass's own run time
    worst_past_interval: float = float("-inf")
    longest_pass: float = 0.0
    # firings of RunPod's own stops (preempt, balance_zero): proof that the mix played them
    runpod_stops: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"chaos: runs={self.runs} kills={self.kills} faults={self.faults} "
            f"orphans={self.orphans} overbilled_seconds={self.overbilled_seconds:.1f} "
            f"state_errors={self.state_errors} "
            f"worst_end_vs_deadline_plus_interval={self.worst_past_interval:+.1f}s "
            f"longest_pass={self.longest_pass:.1f}s runpod_stops={self.runpod_stops}"
        )

    @property
    def violations(self) -> int:
        overbilled = int(self.overbilled_seconds > 0)
        return self.orphans + self.state_errors + self.multi_alive + overbilled


class LedgerWatch(threading.Thread):
    """Polls the ledger; remembers the most pods of `prefix` alive at once."""

    def __init__(self, sim: SimProcess, prefix: str) -> None:
        super().__init__(daemon=True)
        self.sim, self.prefix = sim, prefix
        self.most_alive = 0
        self.stop_event = threading.Event()

    def pods(self) -> list[dict[str, Any]]:
        return [p for p in self.sim.ledger() if p["name"].startswith(self.prefix)]

    def run(self) -> None:
        while not self.stop_event.is_set():
            alive = [p for p in self.pods() if p["status"] != "TERMINATED"]
            self.most_alive = max(self.most_alive, len(alive))
            self.stop_event.wait(0.02)


def random_config(rng: random.Random, sim: SimProcess, prefix: str, port: int) -> dict[str, Any]:
    return {
        "gpu_type_id": rng.sample(GPUS, rng.randint(1, 3)),
        "endpoint_url_template": sim.pod_url_template,
        "runtime_seconds": rng.randint(4, 8),
        "max_cost_usd": rng.choice([None, 5.0]),
        "idle_timeout_seconds": rng.choice([None, 600]),
        "max_restarts": rng.randint(0, 3),
        "initial_wait_seconds": 0,
        "poll_interval_seconds": rng.choice([0.05, 0.1]),
        "max_startup_attempts": 100,
        "watchdog_interval_seconds": INTERVAL,
        "restart_backoff_seconds": rng.choice([0, 0.2]),
        "health_probe_attempts": 2,
        "api_retry_initial_seconds": 0.01,
        "api_retry_max_seconds": 1,
        "proxy_port": port,
        "proxy_start_timeout_seconds": 60,  # a loaded machine took >10 s to start one
        "state_file": "state/state.json",
        "pod_name_prefix": prefix,
        # A known opaque template id now and then, so that `unknown_template` can fire.
        "template_id": rng.choice([None, None, "runpod-torch-v21"]),
        # Spot pods now and then (issue 11), so that `preempt` can fire.
        "interruptible": rng.choice([False, True]),
        "max_preemptions": rng.randint(0, 2),
    }


def podmgr(args: list[str], config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "podmgr", *args, "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def inject_faults(sim: SimProcess, rng: random.Random, tally: Tally) -> None:
    for spec in rng.sample(FAULTS, rng.randint(0, 3)):
        params = {k: v for k, v in spec.items() if k != "fault"}
        sim.set_fault(spec["fault"], count=rng.randint(1, 3), **params)
        tally.faults += 1


def kill_at_random(
    proc: subprocess.Popen[bytes], watch: LedgerWatch, rng: random.Random, tally: Tally
) -> None:
    """SIGKILL after a random delay, or (one run in three) the moment a pod appears."""
    on_create = rng.random() < 1 / 3
    deadline = time.monotonic() + rng.uniform(0.05, 2.0 if not on_create else 8.0)
    while proc.poll() is None and time.monotonic() < deadline:
        if on_create and watch.pods():
            break
        time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        tally.kills += 1
    proc.wait(PASS_TIMEOUT)


def clean_pass(args: list[str], config: Path, env: dict[str, str]) -> int:
    return podmgr(args, config, env).wait(PASS_TIMEOUT)


def check_state(store: StateStore, alive: list[dict[str, Any]], tally: Tally, tag: str) -> None:
    try:
        state = store.peek()
    except Exception as error:  # any parse failure is what we count
        tally.state_errors += 1
        tally.notes.append(f"{tag}: state unreadable: {error}")
        return
    ids = {p["id"] for p in alive}
    mine = state.pod.id if state is not None and state.pod is not None else None
    if (mine is None and ids) or (mine is not None and ids != {mine}):
        tally.state_errors += 1
        tally.notes.append(f"{tag}: state pod {mine} vs ledger {sorted(ids)}")


def one_run(sim: SimProcess, base: Path, rng: random.Random, port: int, tally: Tally) -> None:
    prefix = f"c{uuid.uuid4().hex[:8]}-"
    run_dir = base / prefix.rstrip("-")
    (run_dir / "home").mkdir(parents=True)
    values = random_config(rng, sim, prefix, port)
    config = run_dir / "pod_config.json"
    config.write_text(json.dumps(values))
    env = sim.env(run_dir / "home")
    store = StateStore(run_dir / "state" / "state.json")
    watch = LedgerWatch(sim, prefix)
    watch.start()
    started = time.time()
    try:
        inject_faults(sim, rng, tally)
        kill_at_random(podmgr(["up"], config, env), watch, rng, tally)
        tally.runpod_stops += sum(
            f["fired"] for f in sim.faults() if f["fault"] in ("preempt", "balance_zero")
        )
        sim.clear_faults()
        hurt_pod(sim, watch, rng, tally)
        past_deadline = rng.random() < 0.5  # then the watchdog itself must end the pod
        until = started + values["runtime_seconds"] + INTERVAL if past_deadline else None
        passes = cron(Cron(config, env, store, watch, INTERVAL), until)
        check_state(store, alive_pods(watch), tally, prefix)
        clean_pass(["shutdown"], config, env)
    finally:
        watch.stop_event.set()
        watch.join()
        sim.clear_faults()
    tally.runs += 1
    limit = billing_limit(store, started, values["runtime_seconds"], passes)
    longest = longest_pass(passes)
    tally.longest_pass = max(tally.longest_pass, longest)
    deadline = limit - longest - max(INTERVAL, longest)
    judge(watch, store, limit, tally, prefix, deadline + INTERVAL)


def billing_limit(
    store: StateStore, started: float, runtime: float, passes: list[tuple[float, float]]
) -> float:
    """Deadline + the wait for the next pass + the run time of the longest pass.

    The deadline is session start + runtime; the session may start on a clean pass when
    the killed `up` never saved it (a start before this run began would be a lie). A pass
    takes ~0.5 s here (up to several seconds on a loaded 2-core box), which a
    2 s interval cannot always absorb as a 300 s real one does; so a pass's own duration counts.
    Our cron never overlaps passes: the first pass after the deadline begins one interval
    after it at the latest, or when the pass running across it ends if that is later (a
    loaded machine made passes longer than the interval), then takes at most the longest.
    """
    state = store.peek()
    begun = state.session.started_at if state is not None and state.session else started
    assert begun >= started - 0.01, "the session claims to have started before the run"
    deadline = begun + runtime
    longest = longest_pass(passes)
    return deadline + max(INTERVAL, longest) + longest


def longest_pass(passes: list[tuple[float, float]]) -> float:
    return max((end - start for start, end in passes), default=0.0)


def hurt_pod(sim: SimProcess, watch: LedgerWatch, rng: random.Random, tally: Tally) -> None:
    """One run in three: the live pod crashes or its vLLM dies before the clean passes."""
    alive = alive_pods(watch)
    if not alive or rng.random() >= 1 / 3:
        return
    try:
        (sim.crash_pod if rng.random() < 0.5 else sim.kill_vllm)(alive[0]["id"])
        tally.faults += 1
    except RuntimeError:  # 404: the pod ended between the ledger read and the call
        pass


def alive_pods(watch: LedgerWatch) -> list[dict[str, Any]]:
    return [p for p in watch.pods() if p["status"] != "TERMINATED"]


@dataclass
class Cron:
    config: Path
    env: dict[str, str]
    store: StateStore
    watch: LedgerWatch
    interval: float


def cron(job: Cron, until: float | None) -> list[tuple[float, float]]:
    """Clean passes every interval, as cron would, until the state names the one live pod
    on two passes running (and, with `until`, until one pass ran after that time)."""
    agreed = 0
    passes: list[tuple[float, float]] = []
    next_at = time.monotonic()
    for _ in range(CLEAN_PASSES):
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at = time.monotonic() + job.interval
        begun = time.time()
        clean_pass(["watchdog"], job.config, job.env)
        passes.append((begun, time.time()))
        alive = {p["id"] for p in alive_pods(job.watch)}
        state = job.store.peek()
        mine = state.pod.id if state is not None and state.pod is not None else None
        agreed = agreed + 1 if alive == ({mine} if mine else set()) else 0
        if agreed >= 2 and (until is None or begun > until):
            break
    return passes


def judge(
    watch: LedgerWatch, store: StateStore, limit: float, tally: Tally, tag: str, strict: float
) -> None:
    pods = watch.pods()
    alive = [p for p in pods if p["status"] != "TERMINATED"]
    tally.orphans += len(alive)
    if watch.most_alive > 1:
        tally.multi_alive += 1
        tally.notes.append(f"{tag}: {watch.most_alive} pods alive at once")
    for pod in pods:
        end = pod["terminated_at"] if pod["terminated_at"] is not None else time.time()
        tally.worst_past_interval = max(tally.worst_past_interval, end - strict)
        if end > limit:
            tally.overbilled_seconds += end - limit
            tally.notes.append(
                f"{tag}: pod {pod['id']} billed {end - limit:.2f}s past limit "
                f"(created {pod['created_at'] - limit:.2f}, session {_session(store)})"
            )
    check_state(store, alive, tally, tag)


def _session(store: StateStore) -> str:
    state = store.peek()
    if state is None or state.session is None:
        return "none"
    return f"{state.session.model_dump(mode='json')}"
