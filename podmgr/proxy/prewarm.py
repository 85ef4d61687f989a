"""PREWARM_CACHE: replay a file of requests into the cache once the upstream is ready.

The file holds JSON lines `{"path": "/v1/chat/completions", "body": {...}}`. Each request
that the cache would store and does not hold yet is sent upstream, one at a time (a fresh
pod should serve its user first), through the coalescer as client requests are, so only
complete answers are stored. Bad lines are skipped and counted, never fatal. With
several pods (config `pods`) each pod has its own prewarm, once it is ready, replaying
the lines whose model it serves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from podmgr.logs import get_logger
from podmgr.proxy.cache.key import CacheMode, decide
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.forward.coalescer import Coalescer
from podmgr.proxy.forward.flight import FlightState, UpstreamCall
from podmgr.proxy.upstream.outgoing import upstream_body
from podmgr.proxy.upstream.resolver import UpstreamResolver
from podmgr.proxy.upstream.router import Route

__all__ = ["PrewarmResult", "parse_prewarm_file", "prewarm"]

log = get_logger("proxy.prewarm")


@dataclass
class PrewarmResult:
    stored: int = 0
    present: int = 0
    failed: int = 0
    skipped: int = 0


def parse_prewarm_file(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """(route, body) pairs from the file, and how many lines were unusable. Blocking."""
    requests: list[tuple[str, dict[str, Any]]] = []
    bad = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
            route = str(item["path"]).replace("//", "/").removeprefix("/v1/").strip("/")
            body = item["body"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            bad += 1
            continue
        if isinstance(body, dict):
            requests.append((route, body))
        else:
            bad += 1
    return requests, bad


async def prewarm(
    path: Path,
    *,
    resolver: UpstreamResolver,
    cache: CacheStore,
    coalescer: Coalescer,
    cache_mode: CacheMode,
    route: Route | None = None,
) -> PrewarmResult:
    """Replay `path` into the cache; stops early if the upstream goes away. `route` is the
    upstream replayed to (the pod's, or the first without the pod): its cache keys,
    transport, name and URL."""
    result = PrewarmResult()
    try:
        requests, result.skipped = await asyncio.to_thread(parse_prewarm_file, path)
    except OSError as error:
        log.warning("prewarm_unreadable", path=str(path), error=str(error))
        return result
    for path_route, body in requests:
        model = body.get("model")
        if route is not None and not route.spec.serves(model if isinstance(model, str) else None):
            result.skipped += 1  # another pod's model (config `pods`): its own prewarm sends it
            continue
        scope = route.cache_scope(model if isinstance(model, str) else None) if route else None
        decision = decide(path_route, body, None, cache_mode, scope)
        if not decision.store:
            result.skipped += 1
            continue
        if decision.key in cache:
            result.present += 1
            continue
        upstream = route.target(resolver) if route else resolver.current
        if upstream.base_url is None:
            break
        headers = {"content-type": "application/json"}
        if upstream.auth_header is not None:
            headers["authorization"] = upstream.auth_header.decode("latin-1")
        url = f"{upstream.base_url}/v1/{path_route}"
        name = route.name if route else ""
        call = UpstreamCall(path_route, url, upstream_body(path_route, body), headers, name)
        client = route.client if route else None
        flight = coalescer.start(call, decision, share=False, client=client)
        await flight.task
        if flight.state is FlightState.COMPLETE:
            result.stored += 1
        else:
            result.failed += 1
    log.info("prewarm_done", **vars(result))
    return result
