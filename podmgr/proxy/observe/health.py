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

from podmgr.config import Config
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.observe.stats import RecentStats
from podmgr.proxy.upstream.resolver import Upstream, UpstreamResolver
from podmgr.session_cost import session_cost
from podmgr.state import pod_record

__all__ = ["health_payload"]


def _pod_view(resolver: UpstreamResolver, name: str | None = None) -> dict[str, Any] | None:
    """The pod `name` (None: the first configured pod) as /health shows it, or None."""
    pod = pod_record(resolver.state, name or resolver.pod_names[0])
    if pod is None:
        return None
    return {
        "id": pod.id,
        "phase": pod.phase,
        "gpu_type_id": pod.gpu_type_id,
        "cost_per_hr": pod.cost_per_hr,
        "created_at": pod.created_at,
        "ready_at": pod.ready_at,
        "restarts": pod.restarts,
    }


def _session_view(resolver: UpstreamResolver, now: float) -> dict[str, Any] | None:
    state = resolver.state
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


def health_payload(
    config: Config,
    resolver: UpstreamResolver,
    upstream: Upstream,
    cache: CacheStore,
    stats: RecentStats,
    in_flight: int,
) -> dict[str, Any]:
    """The /health document. `upstream` is where the pod's route sends now, or the first
    upstream's when no pod is configured (`static`); `in_flight` counts upstream calls
    whose answer is not stored yet."""
    now = time.time()
    return {
        "status": "ok",
        "pid": os.getpid(),
        "uptime_seconds": round(now - stats.started_at, 3),
        "last_request_at": stats.last_request_at,
        "last_request_by_model": dict(stats.last_request_by_model),
        "upstream": {
            "ready": upstream.ready,
            "reason": upstream.reason,
            "url_host": upstream.url_host,
            "static": config.pod_upstream is None,
            "state_checked_at": resolver.checked_at or None,
        },
        "pod": _pod_view(resolver),
        # Every configured pod by name (issue 23); one pod: {"pod": the same as "pod"}.
        "pods": {name: _pod_view(resolver, name) for name in resolver.pod_names},
        "session": _session_view(resolver, now),
        "cache": {
            "mode": config.cache.mode,
            "writable": cache.writable,
            "entries": cache.entries,
            "bytes": cache.bytes,
            "max_entries": cache.max_entries,
            "max_bytes": cache.max_bytes,
            # Upstream calls not finished yet. A flight leaves the coalescer only after its
            # answer is stored, which happens after the client got it: 0 means no cache
            # write is pending, so tests wait for 0 before they read `entries`.
            "in_flight": in_flight,
        },
    }
