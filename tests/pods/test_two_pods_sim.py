"""Two pods against the simulator (issue 23): `up` brings both to serving, the small one
idles out alone and `up fim` wakes it, shutdown ends both; the ledger is the judge."""

from __future__ import annotations

import time

import pytest
from wdkit import Harness

from podmgr.errors import CapacityError
from podmgr.runpod.client import RunPodClient
from podmgr.state import StateStore
from podmgr.watchdog.actions import EndSession, Noop
from podmgr.watchdog.identity import MARKER_POD
from podmgr.watchdog.plan_set import EndPod, ForPod
from podmgr.watchdog.runner import run_pass

CHAT, FIM = "Qwen/Qwen2.5-Coder-32B-Instruct", "Qwen/Qwen2.5-Coder-1.5B"
POD_FIELDS = ("gpu_type_id", "endpoint_url_template", "pod_name_prefix")


def two_pods(wd: Harness, fim_idle: int = 600) -> None:
    """The harness's config with its pod fields moved into two entries of `pods`."""
    shared = {key: wd.values.pop(key) for key in POD_FIELDS}
    shared.pop("gpu_type_id")
    wd.values["pods"] = [
        {"name": "chat", "model": CHAT, "gpu_type_id": ["NVIDIA RTX A6000"], **shared},
        {
            "name": "fim",
            "model": FIM,
            "gpu_type_id": ["NVIDIA GeForce RTX 4090"],
            "idle_timeout_seconds": fim_idle,
            **shared,
        },
    ]
    wd.configure()


def owners(wd: Harness) -> dict[str, str]:
    """RunPod's pods of this test by id, with the configured pod their marker names."""
    listed = RunPodClient(api_key=wd.sim.api_key, retry_max_seconds=5).list_pods()
    return {pod.id: pod.env.get(MARKER_POD, "-") for pod in listed if pod.name.startswith(wd.prefix)
            and pod.status != "TERMINATED"}  # fmt: skip


def test_up_brings_both_pods_to_serving_then_shutdown_ends_both(wd: Harness) -> None:
    two_pods(wd)
    up = wd.up()
    assert up.serving
    state = wd.state()
    assert set(state.pods) == {"chat", "fim"}
    assert all(record.phase == "ready" for record in state.pods.values())
    alive = {pod["id"]: pod for pod in wd.alive()}
    assert set(alive) == {state.pods["chat"].id, state.pods["fim"].id}
    assert alive[state.pods["chat"].id]["gpu_type_id"] == "NVIDIA RTX A6000"
    assert alive[state.pods["fim"].id]["gpu_type_id"] == "NVIDIA GeForce RTX 4090"
    assert owners(wd) == {state.pods["chat"].id: "chat", state.pods["fim"].id: "fim"}
    again = wd.run()
    changes = [a for a in again.actions if isinstance(a, ForPod) and not isinstance(a.action, Noop)]
    assert changes == [] and len(wd.alive()) == 2
    wd.run("shutdown")
    assert wd.alive() == []
    session = wd.state().session
    assert session is not None and session.end_reason == "shutdown"
    assert {pod.pod_name for pod in session.pods} == {"chat", "fim"}


def test_the_small_pod_idles_out_alone_and_up_fim_wakes_it(wd: Harness) -> None:
    two_pods(wd, fim_idle=1)
    wd.configure(idle_timeout_seconds=3600)
    wd.up()
    store = StateStore(wd.config.state_path)
    state = store.load()
    state.last_request_by_model = {CHAT: time.time() + 60}  # the chat model keeps getting asked
    store.save(state)
    time.sleep(1.2)
    result = wd.run()
    ended = [a for a in result.actions if isinstance(a, ForPod) and isinstance(a.action, EndPod)]
    assert [(a.pod, a.action.reason) for a in ended] == [("fim", "idle")]
    state = wd.state()
    assert set(state.pods) == {"chat"} and state.session is not None and state.session.active
    assert state.session.ended_pods == {"fim": "idle"}
    [chat] = wd.alive()
    assert chat["id"] == state.pods["chat"].id
    quiet = wd.run()  # a plain pass keeps the idle pod down
    assert len(wd.alive()) == 1 and quiet.state.session is not None
    run_pass(wd.config, wd.config_path, request="start", names=("fim",),
             emit=wd.lines.append, proxy_command=wd.command())  # fmt: skip
    state = wd.state()
    assert set(state.pods) == {"chat", "fim"} and state.session is not None
    assert state.session.ended_pods == {}
    assert len(wd.alive()) == 2  # one pod per model, never two
    wd.run("shutdown")
    assert wd.alive() == []


def test_the_budget_counts_both_pods_and_ends_both(wd: Harness) -> None:
    # Two pods at ~$0.5-0.7/h each: ~$0.00035 a second together, so $0.0012 lasts ~3 s.
    two_pods(wd)
    wd.configure(max_cost_usd=0.0012)
    wd.run("start")
    listed = RunPodClient(api_key=wd.sim.api_key, retry_max_seconds=5).list_pods()
    ours = [pod for pod in listed if pod.name.startswith(wd.prefix)]
    assert len(ours) == 2
    # each guard enforces its price-weighted share on its own pod's cost (watchdog/focus.py)
    shares = {pod.id:
              float(pod.env["PODMGR_GUARD_MAX_COST_USD"]) for pod in ours}  # fmt: skip
    assert sum(shares.values()) <= 0.0012
    prices = {pod.id: pod.cost_per_hr for pod in ours}
    cheap, dear = sorted(prices, key=prices.__getitem__)
    assert shares[cheap] < shares[dear] and sum(shares.values()) > 0.0012 * 0.99
    ended, previous = None, time.time()
    for _ in range(60):
        time.sleep(0.2)
        started = time.time()
        result = wd.run()
        ended = next((a for a in result.actions if isinstance(a, EndSession)), None)
        if ended:
            break
        previous = started
    finished = time.time()
    assert ended is not None and ended.reason == "budget"
    assert wd.alive() == []
    session = wd.state().session
    assert session is not None and {pod.pod_name for pod in session.pods} == {"chat", "fim"}
    # The margin is one 1 s interval at both prices; passes a loaded machine stretched past
    # it may bill the rest of the gap between the last two passes (as test_passes_sim).
    late = max(0.0, finished - previous - 1.0)
    price = sum(record["cost_per_hr"] for record in wd.ledger())
    assert sum(record["cost_usd"] for record in wd.ledger()) <= 0.0012 + price * late / 3600


def test_one_pods_failure_does_not_stop_the_other(wd: Harness) -> None:
    two_pods(wd)
    wd.sim.set_fault("capacity", gpu_type_ids=["NVIDIA RTX A6000"])  # chat's only GPU type
    with pytest.raises(CapacityError):
        wd.run("start")  # chat comes first in the file: its create fails, fim's still runs
    state = wd.state()
    assert set(state.pods) == {"fim"} and state.session is not None and state.session.active
    [alive] = wd.alive()
    assert alive["id"] == state.pods["fim"].id
    wd.sim.clear_faults()
    wd.run()  # the next pass (cron) creates the missing one
    assert set(wd.state().pods) == {"chat", "fim"} and len(wd.alive()) == 2
    wd.run("shutdown")
    assert wd.alive() == []
