"""`podmgr status`: a report from the state file and the proxy's /health, fast.

Only config, state and the standard library are imported (no runpod SDK, no httpx), so
the command answers in a fraction of the SDK's import time. `--live` adds what RunPod
says about the pod, and pays for the import. The pod's vLLM key is never part of it.
The session's cost is the one figure the proxy's /health and /dashboard show too
(podmgr/session_cost.py); the guard's limits are numbers in `--json`; `logs` says where
the proxy's (and the wake's) output goes.

Several pods (config `pods`, issue 23): a block per configured pod, by name (its model,
phase or why it is down this session, id, GPU type and $/h, uptime, its cost so far and
its guard's share of the budget), then the session's totals; `--json` adds `pods` (by
name) and `totals`, and `pod` / `guard` stand for the first configured pod. A one-pod
config's report has exactly the keys and lines it had.
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
from podmgr.session_cost import pod_cost, session_cost, usd
from podmgr.state import ONE_POD, PodRecord, State, StateStore
from podmgr.watchdog.proxy_probe import fetch_proxy_health, pid_alive, proxy_log_path

__all__ = ["SHARE_RULE", "add_live", "format_status", "live_pod", "status_report"]

HISTORY_SHOWN = 5
# How watchdog/focus.py `guard_budget` sets each guard's share at its pod's create.
SHARE_RULE = "by $/h over every pod, kept for a pod that is down; never past the budget together"


def status_report(config: Config, now: float | None = None) -> dict[str, Any]:
    """Everything `podmgr status` shows, as JSON-ready values."""
    now = time.time() if now is None else now
    store = StateStore(config.state_path)
    state = store.peek()
    readable = state is not None or not store.path.exists()
    state = state or State()
    health = fetch_proxy_health(config, timeout=1.0)
    first = config.pod_names[0]
    with state.focused(first):  # one pod: "pod"; a set: its first pod, as /health's `pod`
        report: dict[str, Any] = {
            "state_file": str(store.path),
            "state_readable": readable,
            "session": _session(state, now),
            "pod": _pod(state, now),
            "guard": guard_status(config, state),
            "proxy": _proxy(config, state, health),
            "history": [h.model_dump() for h in state.history[-HISTORY_SHOWN:]],
            "logs": log_paths(config),
        }
    if config.pod_names != (ONE_POD,):
        report["pods"] = _pods(config, state, health, now)
        report["totals"] = _totals(config, state, report["pods"], now)
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
    return _record(pod, now)


def _record(pod: PodRecord, now: float) -> dict[str, Any]:
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


def _pods(
    config: Config, state: State, health: dict[str, Any] | None, now: float
) -> dict[str, dict[str, Any]]:
    """Each configured pod by name: its model, phase (or why it is down), record, cost so
    far and guard share (`max_cost_usd` its guard was created with: watchdog/focus.py)."""
    session = state.session
    ended = session.ended_pods if session is not None and session.active else {}
    asked = {**state.last_request_by_model, **((health or {}).get("last_request_by_model") or {})}
    pods: dict[str, dict[str, Any]] = {}
    for entry in config.pods:
        record = state.pods.get(entry.name)
        with state.focused(entry.name):
            seen = guard_status(config, state)
        view = _record(record, now) if record is not None else dict.fromkeys(_RECORD_KEYS)
        guard = view["guard"] or {}
        share = guard.get("max_cost_usd")
        pods[entry.name] = {
            "model": entry.model,
            **view,
            "phase": _phase(state, entry.name, record, ended),
            "down": ended.get(entry.name),
            "cost_usd": pod_cost(state, entry.name, now),
            "guard_share_usd": share if isinstance(share, int | float) else None,
            "guard_confirmed": seen["confirmed"],
            "guard_why": seen["why"],
            "idle_timeout_seconds": config.idle_timeout_for(entry.name),
            "last_request_at": asked.get(entry.model),
        }
    return pods


_RECORD_KEYS = ("id", "name", "gpu_type_id", "phase", "progress", "uptime_seconds", "ready_at",
                "endpoint_url", "cost_per_hr", "restarts", "guard")  # fmt: skip


def _phase(state: State, name: str, record: PodRecord | None, ended: dict[str, str]) -> str:
    """A pod's phase, or why it has none: down this session (idle, not asked for...)."""
    if record is not None:
        return record.phase
    if name in ended:
        return f"down: {ended[name]}"
    if state.session is None or not state.session.active:
        return "none"
    return "creating" if name in state.pending_creates else "not created yet"


def _totals(
    config: Config, state: State, pods: dict[str, dict[str, Any]], now: float
) -> dict[str, Any]:
    """The session's figures over every pod: cost against budget, guard shares, deadline."""
    session = state.session
    shares = [view["guard_share_usd"] for view in pods.values()]
    return {
        "pods": len(pods),
        "cost_usd": session_cost(state, now),
        "max_cost_usd": config.limits.max_cost_usd,
        "guard_shares_usd": round(sum(s for s in shares if s is not None), 6),
        "guard_share_rule": SHARE_RULE,
        "deadline": session.deadline if session is not None else None,
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


def _proxy(config: Config, state: State, health: dict[str, Any] | None) -> dict[str, Any]:
    pid = state.proxy_pid
    return {
        "url": config.proxy.url,
        "pid": pid,
        "running": bool(pid and pid_alive(pid)),
        "healthy": health is not None,
        "last_request_at": (health or {}).get("last_request_at", state.last_request_at),
        "upstreams": (health or {}).get("upstreams") or [],
    }


def add_live(config: Config, report: dict[str, Any]) -> None:
    """`--live`: what RunPod says about the state's pod (`live`) and, with several pods,
    about each configured pod's (`pods.NAME.live`)."""
    report["live"] = live_pod(config, report)
    for view in (report.get("pods") or {}).values():
        view["live"] = live_pod(config, {"pod": view if view.get("id") else None})


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
    if "pods" in report:
        lines.extend(_pods_lines(report, config))
    elif pod is None:
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
    if "live" in report and "pods" not in report:
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


def _pods_lines(report: dict[str, Any], config: Config) -> list[str]:
    """A block per configured pod, by name, then the session's totals (several pods)."""
    lines: list[str] = []
    for name, pod in report["pods"].items():
        lines.append(f"pod {name}: {pod['phase']}, {pod['model']}")
        if pod["id"] is not None:
            lines.append(
                f"  {pod['id']} ({pod['name']})"
                + (f" {pod['progress']}" if pod.get("progress") else "")
                + f", {pod['gpu_type_id']} at ${pod['cost_per_hr']:.2f}/h, "
                f"up {_ago(pod['uptime_seconds'])}, endpoint {pod['endpoint_url'] or '-'}"
            )
        share, idle = pod["guard_share_usd"], pod["idle_timeout_seconds"]
        lines.append(
            f"  cost so far {usd(pod['cost_usd'])}; guard share "
            + (usd(share) if share is not None else "-")
            + (f"; idle after {idle}s" if idle else "; no idle limit")
            + f", last request {_clock(pod['last_request_at'])}"
        )
        if pod["id"] is not None:
            limits = {k: str(v) for k, v in (pod["guard"] or {}).items()}
            lines.append(f"  guard: {guard_line(limits or None, config)}")
            seen = {"confirmed": pod["guard_confirmed"], "why": pod["guard_why"]}
            lines.append(f"         {_guard_seen(seen)}")
        if "live" in pod:
            lines.append(f"  runpod: {_live_line(pod['live'])}")
    lines.append(_totals_line(report["totals"]))
    return lines


def _totals_line(totals: dict[str, Any]) -> str:
    budget = totals["max_cost_usd"]
    of = f" of budget {usd(budget)}" if budget is not None else " (no budget)"
    return (
        f"total:   {totals['pods']} pods, cost so far {usd(totals['cost_usd'])}{of}; "
        f"guard shares {usd(totals['guard_shares_usd'])} ({totals['guard_share_rule']}); "
        f"deadline {_clock(totals['deadline'])}"
    )


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
