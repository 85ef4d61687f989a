"""Builders for plan() table tests: configs, states and observations in one line each."""

from __future__ import annotations

from typing import Any

from podmgr.config import Config, build_config
from podmgr.runpod.values import PodInfo
from podmgr.state import HistoryEntry, PodRecord, Session, State
from podmgr.watchdog.identity import MARKER_CONFIG_ID, MARKER_MANAGED
from podmgr.watchdog.observed import Observed, ProxyView

NOW = 100_000.0
CID = "cid0000000"
PROXY_UP = ProxyView(pid=4242, healthy=True, last_request_at=None)


def config(**values: Any) -> Config:
    base: dict[str, Any] = {
        "runtime_seconds": 3600,
        "max_restarts": 2,
        "restart_backoff_seconds": 30,
        "watchdog_interval_seconds": 300,
        "gpu_type_id": ["A", "B"],
    }
    return build_config({**base, **values}, environ={})


def live(
    pod_id: str = "p1",
    status: str = "RUNNING",
    uptime: float = 600,
    cost: float = 1.2,
    runtime: bool | None = None,
    name: str | None = None,
) -> PodInfo:
    env = {MARKER_MANAGED: "1", MARKER_CONFIG_ID: CID, "VLLM_API_KEY": "k-fake"}
    return PodInfo(
        id=pod_id,
        name=name or f"podmgr-{pod_id}",
        status=status,
        cost_per_hr=cost,
        uptime_seconds=uptime,
        has_runtime=status == "RUNNING" if runtime is None else runtime,
        env=env,
    )


def session(
    age: float = 600, left: float = 3000, cost: float = 0.2, restarts: int = 0, **more: Any
) -> Session:
    return Session(
        started_at=NOW - age, deadline=NOW + left, cost_usd=cost, restarts=restarts, **more
    )


def ended(reason: str = "deadline") -> Session:
    return Session(
        started_at=NOW - 5000, deadline=NOW - 1400, ended_at=NOW - 1400, end_reason=reason
    )


def record(
    pod_id: str = "p1",
    phase: str = "ready",
    ready_ago: float = 500,
    created_ago: float = 600,
    container_ago: float | None = None,
    restart_ago: float | None = None,
) -> PodRecord:
    return PodRecord(
        id=pod_id,
        name=f"podmgr-{pod_id}",
        gpu_type_id="A",
        cost_per_hr=1.2,
        created_at=NOW - created_ago,
        container_seen_at=NOW - container_ago if container_ago is not None else None,
        last_restart_at=NOW - restart_ago if restart_ago is not None else None,
        ready_at=NOW - ready_ago if phase == "ready" else None,
        phase=phase,  # type: ignore[arg-type]
        endpoint_url=f"http://pods/{pod_id}",
        vllm_api_key="k-fake",
    )


def state(
    sess: Session | None = None,
    pod: PodRecord | None = None,
    history: tuple[str, ...] = ("StartSession",),
    last_request_at: float | None = None,
) -> State:
    return State(
        session=sess,
        pod=pod,
        history=[HistoryEntry(at=NOW - 700, action=a) for a in history],
        last_request_at=last_request_at,
    )


def seen(
    *pods: PodInfo, healthy: bool | None = None, proxy: ProxyView = PROXY_UP, detail: str = ""
) -> Observed:
    return Observed(pods=pods, pod_healthy=healthy, health_detail=detail, proxy=proxy)
