"""Laptop-closed chaos with two pods (issue 23): chaos_guard.py's run on a `pods` config.

`podmgr up` (a real process) under random API faults, SIGKILLed at a random moment, then
the laptop closes (proxy SIGKILLed, faults cleared, no pass ever again): only each pod's
own guard can end it. The config is chaos_pods.py's two pods (chat on the big GPU types,
fim on the RTX 4090), guarded (`guard_interval_seconds` 1), no template (a template pod
gets no guard), half of the runs with a budget small enough to be reached, one in two
with a guard lease (no pass renews it).

Judged from the simulator's ledger (the simulator runs the guards, `--run-guards`):
- every pod of the run terminated, by its guard (`ended_by: pod`) or by podmgr;
- none ended later than the session's deadline + one guard interval + SLACK;
- with a budget: what both pods cost together passes it by no more than both prices for
  one guard interval + SLACK (each guard enforces its share of the budget, and the shares
  sum to at most the budget: watchdog/focus.py `guard_budget`); the excess is counted in
  seconds at the summed price;
- never more than one live pod per configured pod at any sampled moment.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from podmgr.sim.process import SimProcess, wait_until
from podmgr.state import StateStore

from .chaos import PASS_TIMEOUT, podmgr
from .chaos_guard import (
    GUARD_INTERVAL,
    SLACK,
    _alive,
    _deadline,
    _kill_proxies_of,
    close_during_up,
    close_the_laptop,
    inject,
)
from .chaos_pods import NAMES, PodsTally, PodsWatch, pod_of, pods_config

# Both pods at ~$0.7 + ~$0.8-1.6/h: $0.002 is reached in 3-5 s, before the deadline.
GUARD_BUDGETS: list[float | None] = [None, 0.002]
GUARD_LEASES: list[float | None] = [None, None, 5.0, 8.0]


def guarded_pods_config(
    rng: random.Random, sim: SimProcess, prefix: str, port: int
) -> dict[str, Any]:
    """chaos_pods.py's two pods, guarded, no template, maybe a budget within reach."""
    values = pods_config(rng, sim, prefix, port)
    values["guard_interval_seconds"] = GUARD_INTERVAL
    values["max_cost_usd"] = rng.choice(GUARD_BUDGETS)
    # A lease now and then (at least 2 intervals: config/model.py): with no pass to renew
    # it, each guard ends its pod when it runs out, before the deadline.
    values["guard_lease_seconds"] = rng.choice(GUARD_LEASES)
    for entry in values["pods"]:
        entry["template_id"] = None
    return values


def laptop_closed_pods_run(
    sim: SimProcess, base: Path, rng: random.Random, port: int, tally: PodsTally
) -> Counter[str]:
    """One run; returns who ended each of its pods ("pod": its guard), for the summary."""
    prefix = f"q{uuid.uuid4().hex[:8]}-"
    run_dir = base / prefix.rstrip("-")
    (run_dir / "home").mkdir(parents=True)
    values = guarded_pods_config(rng, sim, prefix, port)
    config = run_dir / "pod_config.json"
    config.write_text(json.dumps(values))
    store = StateStore(run_dir / "state" / "state.json")
    watch = PodsWatch(sim, prefix)
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
            timeout=values["runtime_seconds"] + PASS_TIMEOUT,
        )
        wait_until(lambda: not _alive(watch) or time.time() > deadline + 60, "pods to end")
    finally:
        watch.stop_event.set()
        watch.join()
        sim.clear_faults()
        _kill_proxies_of(config)
    tally.runs += 1
    tally.ends["lease_runs"] += values["guard_lease_seconds"] is not None
    judge(watch, deadline, values.get("max_cost_usd"), tally, prefix)
    return Counter(str(pod["ended_by"]) for pod in watch.pods())


def judge(
    watch: PodsWatch, deadline: float, budget: float | None, tally: PodsTally, tag: str
) -> None:
    pods = watch.pods()
    limit = deadline + GUARD_INTERVAL + SLACK
    for pod in pods:
        what = f"{tag}: pod {pod['id']} ({pod_of(pod)})"
        if stopped_by_runpod(pod):
            # A spot pod RunPod stopped (preempted): no container, so no guard; its GPU is
            # no longer billed (its cost counts in the budget check below), its disk is
            # until a pass terminates it. With the laptop closed no pass comes: a known
            # limit of the guard, one pod or several (docs/reliability.md), counted apart.
            tally.ends["stopped_by_runpod"] += 1
            tally.notes.append(f"{what} stopped by RunPod (spot), left for the next pass")
            continue
        if pod["status"] != "TERMINATED":
            tally.orphans += 1
            tally.notes.append(f"{what} still {pod['status']}")
            continue
        end = pod["terminated_at"]
        tally.worst_past_interval = max(tally.worst_past_interval, end - deadline - GUARD_INTERVAL)
        if end > limit:
            tally.overbilled_seconds += end - limit
            tally.notes.append(f"{what} ended {end - deadline:.2f}s past deadline")
        if pod["ended_by"] not in ("pod", "user"):
            tally.notes.append(f"{what} ended by {pod['ended_by']}")
    most = max(watch.most.values())
    tally.most_per_pod = max(tally.most_per_pod, most)
    if most > 1:
        tally.notes.append(f"{tag}: live pods at once per pod: {watch.most}: {watch.worst}")
    if budget is not None and pods:
        judge_guard_budget(pods, budget, tally, tag)


def stopped_by_runpod(pod: dict[str, Any]) -> bool:
    """A spot pod RunPod stopped and nothing has terminated (the simulator's ledger:
    podmgr/sim/runpod_stops.py marks both of RunPod's stops `ended_by: runpod`)."""
    return pod["status"] == "EXITED" and pod["ended_by"] == "runpod" and bool(pod["interruptible"])


def judge_guard_budget(
    pods: list[dict[str, Any]], budget: float, tally: PodsTally, tag: str
) -> None:
    """Both pods' cost against the budget + both prices for one guard check and SLACK."""
    price = sum(
        max((p["cost_per_hr"] for p in pods if pod_of(p) == name), default=0.0) for name in NAMES
    )
    allowed = budget + price * (GUARD_INTERVAL + SLACK) / 3600
    spent = sum(p["cost_usd"] for p in pods)
    tally.ends["budget_runs"] += 1
    tally.worst_past_budget_usd = max(tally.worst_past_budget_usd, spent - budget)
    if spent > allowed:
        tally.overbilled_seconds += (spent - allowed) * 3600 / price
        tally.notes.append(f"{tag}: ${spent:.5f} billed, budget {budget} allows ${allowed:.5f}")


def summary(tally: PodsTally, ended: Counter[str]) -> str:
    """The one line a laptop-closed run prints (the watchdog's figures left out)."""
    return (
        f"chaos (two pods, laptop closed): runs={tally.runs} kills={tally.kills}"
        f" faults={tally.faults} orphans={tally.orphans}"
        f" overbilled_seconds={tally.overbilled_seconds:.1f}"
        f" worst_end_vs_deadline_plus_guard_interval={tally.worst_past_interval:+.1f}s"
        f" max_pods_per_model={tally.most_per_pod} budget_runs={tally.ends['budget_runs']}"
        f" lease_runs={tally.ends['lease_runs']}"
        f" stopped_by_runpod={tally.ends['stopped_by_runpod']}"
        f" worst_cost_vs_budget={tally.worst_past_budget_usd:+.5f}usd"
        " ended_by=" + ",".join(f"{k}:{v}" for k, v in sorted(ended.items()))
    )
