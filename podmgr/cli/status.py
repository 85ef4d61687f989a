"""`podmgr status`: a report from the state file and the proxy's /health, fast.

Only config, state and the standard library are imported (no runpod SDK, no httpx), so
the command answers in a fraction of the SDK's import time. `--live` adds what RunPod
says about the pod, and pays for the import. The pod's vLLM key is never part of it.
The session's cost is the one figure the proxy's /health and /dashboard show too
(podmgr/session_cost.py); the guard's limits are numbers in `--json`; `logs` says where
the proxy's (and the wake's) output goes.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from podmgr.cli.options import hint
from podmgr.config import Config
from podmgr.guard.check import guard_status
from podmgr.guard.launch import guard_line
from podmgr.session_cost import session_cost, usd
from podmgr.state import State, StateStore
from podmgr.watchdog.proxy_probe import fetch_proxy_health, pid_alive, proxy_log_path

__all__ = ["format_status", "live_pod", "status_report"]

HISTORY_SHOWN = 5


def status_report(config: Config, now: float | None = None) -> dict[str, Any]:
    """Everything `podmgr status` shows, as JSON-ready values."""
    now = time.time() if now is None else now
    store = StateStore(config.state_path)
    state = store.peek()
    readable = state is not None or not store.path.exists()
    state = state or State()
    report: dict[str, Any] = {
        "state_file": str(store.path),
        "state_readable": readable,
        "session": _session(state, now),
        "pod": _pod(state, now),
        "guard": guard_status(config, state),
        "proxy": _proxy(config, state),
        "history": [h.model_dump() for h in state.history[-HISTORY_SHOWN:]],
        "logs": log_paths(config),
    }
    return report


def log_paths(config: Config) -> dict[str, str]:
    """Where to look when something went wrong: the proxy's output, the wake's (if on)."""
    paths = {"proxy": str(proxy_log_path(config))}
    if config.limits.wake_on_request:
        paths["wake"] = str(config.state_path.parent / "wake.log")  # as podmgr/proxy/wake.py
    return paths


def _session(state: State, now: float) -> dict[str, Any] | None:
    session = state.session
    if session is None:
        return None
    # the cost now, as /health and /dashboard show it: booked by the last pass + accrued
    return {
        "active": session.active,
        "started_at": session.started_at,
        "deadline": session.deadline,
        "time_left_seconds": max(0.0, session.deadline - now) if session.active else 0.0,
        "cost_usd": session_cost(state, now),
        "restarts": session.restarts,
        "ended_at": session.ended_at,
        "end_reason": session.end_reason,
    }


def _pod(state: State, now: float) -> dict[str, Any] | None:
    pod = state.pod
    if pod is None:
        return None
    return {
        "id": pod.id,
        "name": pod.name,
        "gpu_type_id": pod.gpu_type_id,
        "phase": pod.phase,
        # the starting pod's last phase: as its own log said it when it did (podlog.py)
        "progress": pod.progress_text or pod.progress,
        "uptime_seconds": max(0.0, now - pod.created_at),
        "ready_at": pod.ready_at,
        "endpoint_url": pod.endpoint_url,
        "cost_per_hr": pod.cost_per_hr,
        "restarts": pod.restarts,
        "guard": _numbers(pod.guard),  # the guard's limits as sent at create (podmgr/guard)
    }


def _numbers(limits: dict[str, str] | None) -> dict[str, Any] | None:
    """The guard's limits as JSON numbers: they travel to the pod as env strings ("5")."""
    if limits is None:
        return None
    return {name: _number(value) for name, value in limits.items()}


def _number(text: str) -> Any:
    """ "5" -> 5, "0.25" -> 0.25, a JSON list (the guard's rules) -> the list; else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text  # NaN is not JSON
    return value


def _proxy(config: Config, state: State) -> dict[str, Any]:
    health = fetch_proxy_health(config, timeout=1.0)
    pid = state.proxy_pid
    return {
        "url": config.proxy.url,
        "pid": pid,
        "running": bool(pid and pid_alive(pid)),
        "healthy": health is not None,
        "last_request_at": (health or {}).get("last_request_at", state.last_request_at),
        "upstreams": (health or {}).get("upstreams") or [],
    }


def live_pod(config: Config, report: dict[str, Any]) -> dict[str, Any] | None:
    """What RunPod says about the state's pod (`GET /pods/{id}` on REST v2; for `--live`)."""
    from podmgr.runpod.client import RunPodClient

    pod = report.get("pod")
    if not pod:
        return None
    client = RunPodClient(
        retry_initial_seconds=config.watchdog.api_retry_initial_seconds,
        retry_max_seconds=min(config.watchdog.api_retry_max_seconds, 10.0),
    )
    info = client.get_pod(pod["id"])
    if info is None:
        return {"exists": False}
    return {
        "exists": True,
        "status": info.status,
        "uptime_seconds": info.uptime_seconds,
        "cost_per_hr": info.cost_per_hr,
        "runtime_up": info.has_runtime,
        "gpu_count": info.gpu_count,
    }


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _clock(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) if epoch else "-"


def format_status(
    report: dict[str, Any], config: Config | None = None, config_path: str | None = None
) -> list[str]:
    """Human lines for the report (`config` says why a pod has no guard; `config_path`, the
    `--config` given, goes into the commands the lines suggest)."""
    config = config or Config.model_validate({})
    lines = [
        f"state:   {report['state_file']}" + ("" if report["state_readable"] else " (UNREADABLE)")
    ]
    session = report["session"]
    if session is None:
        lines.append(
            f"session: none (the first watchdog pass or `{hint('up', config_path)}` starts one)"
        )
    elif session["active"]:
        lines.append(
            f"session: active, {_ago(session['time_left_seconds'])} left "
            f"(deadline {_clock(session['deadline'])}), cost so far {usd(session['cost_usd'])}, "
            f"{session['restarts']} restarts"
        )
    else:
        lines.append(
            f"session: ended {_clock(session['ended_at'])} ({session['end_reason']}), "
            f"cost {usd(session['cost_usd'])}; `{hint('up', config_path)}` starts a new one"
        )
    pod = report["pod"]
    if pod is None:
        lines.append("pod:     none")
    else:
        lines.append(
            f"pod:     {pod['id']} ({pod['name']}) {pod['phase']}"
            + (f" ({pod['progress']})" if pod.get("progress") else "")
            + ", "
            f"up {_ago(pod['uptime_seconds'])}, "
            f"{pod['gpu_type_id']} at ${pod['cost_per_hr']:.2f}/h"
        )
        lines.append(f"endpoint: {pod['endpoint_url']}")
        lines.append(f"guard:   {guard_line(pod.get('guard'), config)}")
        lines.append(f"         {_guard_seen(report.get('guard') or {})}")
    if "live" in report:
        lines.append(f"runpod:  {_live_line(report['live'])}")
    proxy = report["proxy"]
    state = (
        "healthy"
        if proxy["healthy"]
        else ("running, not answering" if proxy["running"] else "down")
    )
    last = proxy["last_request_at"]
    lines.append(
        f"proxy:   {proxy['url']} pid {proxy['pid'] or '-'} {state}; last request {_clock(last)}"
    )
    lines.extend(_upstream_lines(proxy.get("upstreams") or []))
    lines.append(_logs_line(report.get("logs") or {}, config_path))
    for entry in report["history"]:
        lines.append(f"  {_clock(entry['at'])}  {entry['action']}: {entry['detail']}")
    return lines


def _upstream_lines(views: list[dict[str, Any]]) -> list[str]:
    """One line per configured upstream, from the proxy's /health (several upstreams only)."""
    if len(views) < 2:
        return []
    from podmgr.config.upstreams import upstream_line

    return [f"  upstream {view['name']}: {upstream_line(view)}" for view in views]


def _guard_seen(guard: dict[str, Any]) -> str:
    confirmed = guard.get("confirmed")
    said = {True: "confirmed", False: "NOT running", None: "not confirmed yet"}[confirmed]
    return f"{said}: {guard.get('why', '')}"


def _logs_line(logs: dict[str, str], config_path: str | None) -> str:
    named = [f"{name} {path}" for name, path in logs.items()]
    return f"logs:    {'; '.join(named)}; the pod's: `{hint('logs', config_path)}`"


def _live_line(live: dict[str, Any] | None) -> str:
    if live is None:
        return "not asked: the state names no pod"
    if not live.get("exists"):
        return "pod not found on RunPod"
    uptime = live.get("uptime_seconds")
    return (
        f"{live['status']}, runtime {'up' if live['runtime_up'] else 'not up'}, "
        f"uptime {_ago(uptime) if uptime is not None else '-'}"
    )
