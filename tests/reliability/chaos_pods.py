"""Two-pod chaos (issue 23): chaos.py's run with a `pods` config, judged per pod.

A run: a random valid config whose pod fields go into two entries of `pods` - "chat", a
32B model on the big GPU types, and "fim", a 1.5B model on the RTX 4090 alone with its own
short idle time (1-3 s) - random faults from chaos.py's mix, `podmgr up` (a real process)
SIGKILLed at a random moment, sometimes a crashed pod or dead vLLM, clean cron passes;
one run in two, once fim has idled out, `podmgr up fim` (what the proxy's wake runs)
SIGKILLed at a random moment too; then more passes, sometimes past the deadline, and
`podmgr shutdown`. Judged from the simulator's ledger:

- orphans: a pod of the run still alive after shutdown;
- seconds billed past the bound: chaos.py's bound (the session's deadline + the wait for
  the next pass + the longest pass) for every pod of the run, and, when the run has a
  budget, the dollars past the budget + the same lateness at both pods' prices (turned
  into seconds at that summed price);
- more than one live pod for one configured pod (model) at any sampled moment: the
  ledger shows no env, so the pods are told apart by GPU type (the two sets are
  disjoint), sampled every 20 ms;
- an idle end that took the other pod: in a pass that ended fim for idle, no action of
  chat's names idle and chat's record goes only by an action of its own (`check_idle_end`),
  and chat is never ended for idle (its idle time is longer than any run);
- the state against RunPod once steady and after shutdown (as chaos.py's check_state).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podmgr.sim.process import SimProcess
from podmgr.state import State, StateStore

from .chaos import (
    CLEAN_PASSES,
    INTERVAL,
    LedgerWatch,
    Tally,
    billing_limit,
    clean_pass,
    hurt_pod,
    inject_faults,
    kill_at_random,
    longest_pass,
    podmgr,
    random_config,
)

CHAT, FIM = "Qwen/Qwen2.5-Coder-32B-Instruct", "Qwen/Qwen2.5-Coder-1.5B"
# Disjoint GPU types (all in the simulator's catalog, podmgr/sim/catalog.py): the ledger
# tells the two pods apart by them.
CHAT_GPUS = ["NVIDIA RTX A6000", "NVIDIA L40S", "NVIDIA A100 80GB PCIe"]
FIM_GPUS = ["NVIDIA GeForce RTX 4090"]
NAMES = ("chat", "fim")
# chaos.py's flat keys that belong to a pod entry (PodSection fields).
POD_KEYS = (
    "gpu_type_id",
    "endpoint_url_template",
    "pod_name_prefix",
    "template_id",
    "interruptible",
    "max_preemptions",
)
# Two pods at ~$0.7 + ~$0.8-1.6/h: $0.003 lasts 5-7 s, within the runs' 10-16 s runtime.
BUDGETS: list[float | None] = [None, 5.0, 0.003, 0.003]


@dataclass
class PodsTally(Tally):
    """chaos.py's tally plus the two-pod figures."""

    most_per_pod: int = 0
    idle_ends: int = 0
    idle_took_other: int = 0
    wakes: int = 0
    budget_ends: int = 0
    # the most both pods' cost passed the budget in a run ($; allowed up to the bound)
    worst_past_budget_usd: float = float("-inf")
    # how each run's session ended, and each pod's own ends (`Session.ended_pods`)
    ends: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (
            super().line().replace("chaos:", "chaos (two pods):")
            + f" max_pods_per_model={self.most_per_pod} idle_ends={self.idle_ends}"
            f" idle_took_other={self.idle_took_other} wakes={self.wakes}"
            f" budget_ends={self.budget_ends}"
            f" worst_cost_vs_budget={self.worst_past_budget_usd:+.5f}usd"
            f" ends={','.join(f'{k}:{v}' for k, v in sorted(self.ends.items()))}"
        )

    @property
    def violations(self) -> int:
        return super().violations + self.idle_took_other + int(self.most_per_pod > 1)


def pod_of(record: dict[str, Any]) -> str:
    """The configured pod a ledger record belongs to, by its GPU type."""
    return "fim" if record["gpu_type_id"] in FIM_GPUS else "chat"


class PodsWatch(LedgerWatch):
    """Polls the ledger; remembers the most live pods of one configured pod at once."""

    def __init__(self, sim: SimProcess, prefix: str) -> None:
        super().__init__(sim, prefix)
        self.most = dict.fromkeys(NAMES, 0)
        self.worst: list[str] = []  # the live pods when a pod had the most at once

    def run(self) -> None:
        while not self.stop_event.is_set():
            live = [p for p in self.pods() if p["status"] != "TERMINATED"]
            alive = [pod_of(p) for p in live]
            self.most_alive = max(self.most_alive, len(alive))
            for name in NAMES:
                if alive.count(name) > max(1, self.most[name]):
                    self.worst = [f"{p['id']}:{pod_of(p)}:{p['status']}" for p in live]
                self.most[name] = max(self.most[name], alive.count(name))
            self.stop_event.wait(0.02)


def pods_config(rng: random.Random, sim: SimProcess, prefix: str, port: int) -> dict[str, Any]:
    """chaos.py's random config with its pod fields in two `pods` entries."""
    values = random_config(rng, sim, prefix, port)
    shared = {key: values.pop(key) for key in POD_KEYS}
    values["runtime_seconds"] = rng.randint(10, 16)
    values["max_cost_usd"] = rng.choice(BUDGETS)
    chat = {**shared, "name": "chat", "model": CHAT}
    chat["gpu_type_id"] = rng.sample(CHAT_GPUS, rng.randint(1, 3))
    fim = {**shared, "name": "fim", "model": FIM, "gpu_type_id": FIM_GPUS}
    fim["idle_timeout_seconds"] = rng.randint(1, 3)
    fim["interruptible"] = rng.choice([False, True])
    values["pods"] = [chat, fim]
    return values


def alive(watch: PodsWatch) -> list[dict[str, Any]]:
    return [p for p in watch.pods() if p["status"] != "TERMINATED"]


def records(state: State | None) -> set[str]:
    return {record.id for record in state.pods.values()} if state is not None else set()


def check_state(store: StateStore, live: list[dict[str, Any]], tally: Tally, tag: str) -> None:
    """The state's records are exactly RunPod's live pods of the run."""
    try:
        state = store.peek()
    except Exception as error:  # any parse failure is what we count
        tally.state_errors += 1
        tally.notes.append(f"{tag}: state unreadable: {error}")
        return
    ids = {p["id"] for p in live}
    if records(state) != ids:
        tally.state_errors += 1
        tally.notes.append(f"{tag}: state pods {sorted(records(state))} vs ledger {sorted(ids)}")


@dataclass
class Cron:
    config: Path
    env: dict[str, str]
    store: StateStore
    watch: PodsWatch
    tally: PodsTally
    tag: str
    passes: list[tuple[float, float]] = field(default_factory=list)


def one_pass(job: Cron, args: list[str] | None = None) -> None:
    """A clean pass, checked for an idle end of fim that took chat with it."""
    before = job.store.peek()
    begun = time.time()
    clean_pass(args or ["watchdog"], job.config, job.env)
    job.passes.append((begun, time.time()))
    check_idle_end(before, job.store.peek(), job.tally, job.tag)


def check_idle_end(before: State | None, after: State | None, tally: PodsTally, tag: str) -> None:
    """fim idling out alone leaves chat as it was; chat never ends for idle.

    Judged by what the pass did (the state's history since `before`): in the pass that
    ended fim for idle, no action of chat's names idle, and a chat record the pass dropped
    was dropped by an action of chat's own (a pod given up on, replaced, preempted ...: a
    chaos run hurts pods), never silently; the session does not end for idle while chat
    had no end of its own."""
    if after is None or after.session is None:
        return
    ended = after.session.ended_pods
    if ended.get("chat") == "idle":
        tally.idle_took_other += 1
        tally.notes.append(f"{tag}: chat ended for idle: {ended}")
    was = before.session.ended_pods if before is not None and before.session else {}
    if ended.get("fim") != "idle" or was.get("fim") == "idle":
        return
    tally.idle_ends += 1
    since = before.updated_at if before is not None and before.updated_at else 0.0
    chats = [e.detail for e in after.history if e.at > since and e.detail.startswith("[chat]")]
    if any("idle" in detail for detail in chats):
        tally.idle_took_other += 1
        tally.notes.append(f"{tag}: fim's idle end took chat: {chats}")
    chat_before = before.pods.get("chat") if before is not None else None
    chat_after = after.pods.get("chat")
    dropped = chat_before is not None and (chat_after is None or chat_after.id != chat_before.id)
    if after.session.active and dropped and not chats and "chat" not in ended:
        tally.idle_took_other += 1
        tally.notes.append(f"{tag}: chat's record went with fim's idle end: {after.pods}")
    if not after.session.active and after.session.end_reason == "idle" and "chat" not in ended:
        tally.idle_took_other += 1
        tally.notes.append(f"{tag}: fim's idle end ended the session")


def cron(job: Cron, until: float | None, idle: bool = False) -> None:
    """Clean passes every interval until the state names the live pods on two passes
    running (and, with `until`, until one pass ran after that time; with `idle`, until fim
    has idled out or the session ended)."""
    agreed = 0
    next_at = time.monotonic()
    for _ in range(CLEAN_PASSES):
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at = time.monotonic() + INTERVAL
        begun = time.time()
        one_pass(job)
        live = {p["id"] for p in alive(job.watch)}
        agreed = agreed + 1 if live == records(job.store.peek()) else 0
        if agreed >= 2 and (until is None or begun > until) and not (idle and _busy(job)):
            break


def _busy(job: Cron) -> bool:
    """A live session in which fim has not idled out (yet)."""
    state = job.store.peek()
    session = state.session if state is not None else None
    return session is not None and session.active and session.ended_pods.get("fim") != "idle"


def wake_fim(job: Cron, rng: random.Random) -> None:
    """What the proxy's wake runs for a request to fim's model: `podmgr up fim`, killed at
    a random moment like the first `up`; only once fim has idled out in a live session."""
    state = job.store.peek()
    session = state.session if state is not None else None
    if session is None or not session.active or session.ended_pods.get("fim") != "idle":
        return
    job.tally.wakes += 1
    before = job.store.peek()
    watch = _NewPodWatch(job.watch)
    kill_at_random(podmgr(["up", "fim"], job.config, job.env), watch, rng, job.tally)
    check_idle_end(before, job.store.peek(), job.tally, job.tag)


class _NewPodWatch(LedgerWatch):
    """kill_at_random's view (never started): the pods made after this moment."""

    def __init__(self, watch: PodsWatch) -> None:
        super().__init__(watch.sim, watch.prefix)
        self.watch = watch
        self.known = {p["id"] for p in watch.pods()}

    def pods(self) -> list[dict[str, Any]]:
        return [p for p in self.watch.pods() if p["id"] not in self.known]


def one_run(sim: SimProcess, base: Path, rng: random.Random, port: int, tally: PodsTally) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}-"
    run_dir = base / prefix.rstrip("-")
    (run_dir / "home").mkdir(parents=True)
    values = pods_config(rng, sim, prefix, port)
    config = run_dir / "pod_config.json"
    config.write_text(json.dumps(values))
    env = sim.env(run_dir / "home")
    store = StateStore(run_dir / "state" / "state.json")
    watch = PodsWatch(sim, prefix)
    watch.start()
    job = Cron(config, env, store, watch, tally, prefix)
    started = time.time()
    try:
        inject_faults(sim, rng, tally)
        kill_at_random(podmgr(["up"], config, env), watch, rng, tally)
        tally.runpod_stops += sum(
            f["fired"] for f in sim.faults() if f["fault"] in ("preempt", "balance_zero")
        )
        sim.clear_faults()
        hurt_pod(sim, watch, rng, tally)
        past_deadline = rng.random() < 0.5  # then the watchdog itself must end the pods
        until = started + values["runtime_seconds"] + INTERVAL if past_deadline else None
        cron(job, None if rng.random() < 0.5 else until, idle=rng.random() < 0.8)
        if rng.random() < 2 / 3:
            wake_fim(job, rng)
        cron(job, until)
        check_state(store, alive(watch), tally, prefix)
        one_pass(job, ["shutdown"])
    finally:
        watch.stop_event.set()
        watch.join()
        sim.clear_faults()
    tally.runs += 1
    judge(job, started, values)


def judge(job: Cron, started: float, values: dict[str, Any]) -> None:
    tally, tag, store = job.tally, job.tag, job.store
    pods = job.watch.pods()
    live = [p for p in pods if p["status"] != "TERMINATED"]
    tally.orphans += len(live)
    for pod in live:
        tally.notes.append(f"{tag}: pod {pod['id']} ({pod_of(pod)}) alive after shutdown")
    most = max(job.watch.most.values())
    tally.most_per_pod = max(tally.most_per_pod, most)
    if most > 1:
        tally.notes.append(f"{tag}: live pods at once per pod: {job.watch.most}: {job.watch.worst}")
    limit = billing_limit(store, started, values["runtime_seconds"], job.passes)
    longest = longest_pass(job.passes)
    tally.longest_pass = max(tally.longest_pass, longest)
    strict = limit - longest - max(INTERVAL, longest) + INTERVAL
    for pod in pods:
        end = pod["terminated_at"] if pod["terminated_at"] is not None else time.time()
        tally.worst_past_interval = max(tally.worst_past_interval, end - strict)
        if end > limit:
            tally.overbilled_seconds += end - limit
            what = f"{tag}: pod {pod['id']} ({pod_of(pod)})"
            tally.notes.append(f"{what} billed {end - limit:.2f}s past limit")
    judge_budget(job, values.get("max_cost_usd"), pods, longest)
    check_state(store, live, tally, tag)


def judge_budget(
    job: Cron, budget: float | None, pods: list[dict[str, Any]], longest: float
) -> None:
    """The budget over both pods: the rule ends the session when the cost so far plus one
    interval at the summed price reaches it, so what the pods cost may pass it only by the
    lateness chaos.py allows the deadline (the wait past one interval, the longest pass)."""
    state = job.store.peek()
    session = state.session if state is not None else None
    if session is not None:
        job.tally.budget_ends += session.end_reason == "budget"
        job.tally.ends[f"session={session.end_reason}"] += 1
        for name, why in session.ended_pods.items():
            job.tally.ends[f"{name}={why.split(' ')[0]}"] += 1
    if budget is None or not pods:
        return
    price = sum(  # $/h of both pods: each configured pod's dearest pod of the run
        max((p["cost_per_hr"] for p in pods if pod_of(p) == name), default=0.0) for name in NAMES
    )
    late = max(INTERVAL, longest) + longest - INTERVAL
    allowed = budget + price * late / 3600
    spent = sum(p["cost_usd"] for p in pods)
    job.tally.worst_past_budget_usd = max(job.tally.worst_past_budget_usd, spent - budget)
    if spent > allowed:
        job.tally.overbilled_seconds += (spent - allowed) * 3600 / price
        job.tally.notes.append(
            f"{job.tag}: ${spent:.5f} billed, budget {budget} allows ${allowed:.5f}"
        )
