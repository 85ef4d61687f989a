"""`GET /health`: the proxy's own liveness plus what it knows about the upstream and cache.

HTTP 200 whenever the proxy process answers at all; readiness is in the body. The watchdog
reads `last_request_at` (time of the last client request under /v1) for its idle rule.
`cache.in_flight` counts upstream calls whose answer may still be written to the cache.
No secret appears here: the upstream is shown by host only, the pod without its key.
"""

from __future__ import annotations

import os
import time
from typing import Any

from podmgr.proxy.context import ProxyContext
from podmgr.proxy.metrics import session_cost

__all__ = ["health_payload"]


def _pod_view(ctx: ProxyContext) -> dict[str, Any] | None:
    state = ctx.resolver.state
    if state is None or state.pod is None:
        return None
    pod = state.pod
    return {
        "id": pod.id,
        "phase": pod.phase,
        "gpu_type_id": pod.gpu_type_id,
        "cost_per_hr": pod.cost_per_hr,
        "created_at": pod.created_at,
        "ready_at": pod.ready_at,
        "restarts": pod.restarts,
    }


def _session_view(ctx: ProxyContext, now: float) -> dict[str, Any] | None:
    state = ctx.resolver.state
    if state is None or state.session is None:
        return None
    session = state.session
    return {
        "started_at": session.started_at,
        "deadline": session.deadline,
        "seconds_left": max(0.0, session.deadline - now) if session.active else 0.0,
        "cost_usd": session_cost(state, now),
        "active": session.active,
        "end_reason": session.end_reason,
    }


def health_payload(ctx: ProxyContext) -> dict[str, Any]:
    now = time.time()
    upstream = ctx.resolver.current
    return {
        "status": "ok",
        "pid": os.getpid(),
        "uptime_seconds": round(now - ctx.stats.started_at, 3),
        "last_request_at": ctx.stats.last_request_at,
        "upstream": {
            "ready": upstream.ready,
            "reason": upstream.reason,
            "url_host": upstream.url_host,
            "static": ctx.config.upstream_url is not None,
            "state_checked_at": ctx.resolver.checked_at or None,
        },
        "pod": _pod_view(ctx),
        "session": _session_view(ctx, now),
        "cache": {
            "mode": ctx.config.cache_mode,
            "writable": ctx.cache.writable,
            "entries": ctx.cache.entries,
            "bytes": ctx.cache.bytes,
            "max_entries": ctx.cache.max_entries,
            "max_bytes": ctx.cache.max_bytes,
            # Upstream calls not finished yet. A flight leaves this table only after its
            # answer is stored, which happens after the client got it: 0 means no cache
            # write is pending, so tests wait for 0 before they read `entries`.
            "in_flight": len(ctx.flights),
        },
    }
