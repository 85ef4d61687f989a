"""The dashboard with two pods (issue 23): "Pod uptime" and "Guard in the pod" come once per
pod by name, the guard row with the share of the budget that pod's guard holds; the cost
so far counts both pods. A real proxy in front of a simulator with two serving pods."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from simkit import SimUpstream

from podmgr.state import PodRecord, Session, State, StateStore

from .conftest import BIG, SMALL
from .proxykit import ProxyProcess

PODS = [{"name": "chat", "model": BIG}, {"name": "fast", "model": SMALL}]


def record(up: SimUpstream, now: float, age: float, price: float, share: str) -> PodRecord:
    return PodRecord(
        id=up.pod_id, name=f"podmgr-{up.pod_id}", gpu_type_id="NVIDIA GeForce RTX 4090",
        cost_per_hr=price, created_at=now - age - 30, ready_at=now - age, phase="ready",
        endpoint_url=up.url, vllm_api_key=up.api_key, billed_until=now - 3600,
        guard={"max_cost_usd": share, "spent_usd": "0", "interval_seconds": "30"},
        guard_confirmed=True, guard_why="its armed line is in the pod's log",
    )  # fmt: skip


def rows(url: str) -> dict[str, str]:
    with urllib.request.urlopen(url + "/dashboard", timeout=10) as response:
        text = response.read().decode()
    pairs = (line.split("  ", 1) for line in text.splitlines() if "  " in line)
    return {name.strip(): value.strip() for name, value in pairs}


def test_uptime_and_guard_rows_per_pod(two_pods: dict[str, SimUpstream], make_proxy: Any) -> None:
    proxy: ProxyProcess = make_proxy(start=False, pods=PODS, cache_mode="off")
    now = time.time()
    pods = {"chat": record(two_pods["chat"], now, 3 * 3600, 2.0, "0.6"),
            "fast": record(two_pods["fast"], now, 600, 0.5, "0.15")}  # fmt: skip
    session = Session(started_at=now - 4 * 3600, deadline=now + 3600, cost_usd=0.25)
    StateStore(proxy.state_path).save(State(session=session, pods=pods))
    proxy.start()
    shown = rows(proxy.url)
    assert shown["Pod uptime (chat)"].startswith("3h 00m"), shown
    assert shown["Pod uptime (fast)"].startswith("10m"), shown
    assert "Pod uptime" not in shown and "Guard in the pod" not in shown  # no first-pod-only row
    assert shown["Guard in the pod (chat)"].startswith("running: ")
    assert shown["Guard in the pod (chat)"].endswith("its share of the budget $0.6000")
    assert shown["Guard in the pod (fast)"].endswith("its share of the budget $0.1500")
    # booked $0.25 plus what each pod accrued in the hour since it was billed ($2 + $0.50)
    assert float(shown["Cost so far"].lstrip("$")) >= 2.75, shown


def test_a_cold_pod_has_no_uptime_and_no_guard(
    two_pods: dict[str, SimUpstream], make_proxy: Any
) -> None:
    proxy: ProxyProcess = make_proxy(start=False, pods=PODS, cache_mode="off")
    now = time.time()
    session = Session(started_at=now - 60, deadline=now + 3600)
    pods = {"chat": record(two_pods["chat"], now, 30, 2.0, "0.6")}
    StateStore(proxy.state_path).save(State(session=session, pods=pods))
    proxy.start()
    shown = rows(proxy.url)
    assert shown["Pod uptime (fast)"] == "-" and shown["Pod fast"] == "none"
    assert shown["Guard in the pod (fast)"] == "not confirmed yet: no pod", shown
