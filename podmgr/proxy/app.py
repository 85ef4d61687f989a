"""The proxy app factory: `create_app(config, client)` builds ONE FastAPI app.

Its parts (upstream client, resolver, cache, metrics, coalescer) are built first and handed
in, so none of them is missing before the lifespan runs. The raw ASGI `V1Handler` is
mounted at `/v1` and reached before FastAPI's own code (its request/response machinery
costs more than a whole cache hit); `/health`, `/metrics`, `/dashboard` and
`/debug/cache` are ordinary FastAPI routes. Both check the client's key with one
`intake.authorize`. The one lifespan opens the cache and runs a background loop that
re-reads the state file, syncs the cache index with other processes, and runs the
prewarm; on the way out it cancels flights still running and closes client and cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from podmgr.config import Config
from podmgr.config.upstreams import UpstreamSpec, resolve_key
from podmgr.history import CachedHistory, history_path
from podmgr.logs import get_logger
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.forward.coalescer import Coalescer
from podmgr.proxy.forward.handler import V1Handler
from podmgr.proxy.forward.intake import authorize
from podmgr.proxy.observe.dashboard import (
    DASHBOARD_STYLE,
    build_view,
    chart_panels,
    render_html,
    render_text,
)
from podmgr.proxy.observe.health import health_payload
from podmgr.proxy.observe.history_page import render_history_html, render_history_text
from podmgr.proxy.observe.metrics import ProxyMetrics, Snapshot
from podmgr.proxy.observe.outcome import Recorder
from podmgr.proxy.observe.stats import RecentStats
from podmgr.proxy.observe.upstreams import UpstreamCollector, upstream_rows
from podmgr.proxy.openai_errors import UNAUTHORIZED, error_body
from podmgr.proxy.prewarm import prewarm
from podmgr.proxy.upstream.aiohttp_transport import AiohttpTransport
from podmgr.proxy.upstream.client import UpstreamClient
from podmgr.proxy.upstream.resolver import UpstreamResolver
from podmgr.proxy.upstream.router import Router, build_router
from podmgr.proxy.upstream.transport import Transport
from podmgr.proxy.wake import Waker

__all__ = ["ProxyApp", "create_app"]

log = get_logger("proxy")
REFRESH_SECONDS = 0.5
CACHE_SYNC_SECONDS = 1.0


class ProxyApp(FastAPI):
    """A FastAPI app whose raw-ASGI mounts are reached before any of FastAPI's own code.

    For every request FastAPI asks whether OpenTelemetry is configured and then runs five
    middlewares (errors, telemetry, body limit, exceptions, exit stack); the `/v1` handler
    needs none of it (it answers every failure itself). Measured in process (CPU time, a
    /v1 request refused for want of an upstream), going through them took the handler from
    about 60k to 35k requests a second. So a request under a raw mount goes
    straight to it, with the scope Starlette's `Mount` would give it (`root_path` gains
    the mount's path, `path` stays whole); every other request is FastAPI's.
    """

    _raw_mounts: tuple[tuple[str, str, ASGIApp], ...] = ()  # (prefix, path, app)

    def mount_raw(self, path: str, app: ASGIApp) -> None:
        """`mount(path, app)`, and reach `app` before FastAPI's machinery."""
        self.mount(path, app)
        self._raw_mounts = (*self._raw_mounts, (path + "/", path, app))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request_path = scope["path"]
            for prefix, path, app in self._raw_mounts:
                if request_path.startswith(prefix):
                    root_path = scope.get("root_path", "")
                    scope["app_root_path"] = scope.get("app_root_path", root_path)
                    scope["root_path"] = root_path + path
                    await app(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


@dataclass(frozen=True)
class _Parts:
    """What one proxy is made of, all built before the app (nothing waits for a lifespan)."""

    config: Config
    client: Transport
    transports: tuple[Transport, ...]
    router: Router
    waker: Waker
    resolver: UpstreamResolver
    cache: CacheStore
    stats: RecentStats
    history: CachedHistory
    metrics: ProxyMetrics
    coalescer: Coalescer
    api_keys: tuple[bytes, ...]


def create_app(
    config: Config, client: Transport | None = None, config_path: Path | None = None
) -> ProxyApp:
    """A proxy app for `config` that sends upstream through `client` (by default the
    transport `config.proxy.upstream_client` names: the proxy's own `UpstreamClient`, or
    `AiohttpTransport`; one per configured upstream, with its timeouts). The lifespan
    opens the cache and runs the background loop; the client, the cache and the rest
    exist before it. `config_path` (the file the proxy was started with) is what a wake
    on request hands to `podmgr up`."""
    given = client
    transports: list[Transport] = []

    def make_transport(spec: UpstreamSpec | None) -> Transport:
        made = given or _transport(config, spec)
        if made not in transports:
            transports.append(made)
        return made

    specs = config.upstreams
    pod_names = tuple(spec.pod_name for spec in specs if spec.kind == "pod")
    resolver = UpstreamResolver(config.state_path, pod_names or ("pod",))
    router = build_router(
        specs,
        resolver,
        make_transport,
        {spec.name: resolve_key(spec) for spec in specs},
        config.proxy.upstream_allowed_fails,
        config.proxy.upstream_cooldown_seconds,
    )
    client = router.routes[0].client
    waker = Waker(config, config_path, lambda: resolver.state)
    cache = CacheStore(
        config.cache_path,
        config.cache.max_entries,
        config.cache.max_bytes,
        config.cache.memory_bytes,
    )

    history = CachedHistory(history_path(config.state_path))

    def snapshot() -> Snapshot:
        return Snapshot(
            cache_entries=cache.entries,
            cache_bytes=cache.bytes,
            state=resolver.state,
            upstream_ready=router.first_target().ready,
            budget_usd=config.limits.max_cost_usd,
            pods_in_history=history.pod_count(),
            pod_names=resolver.pod_names,
        )

    metrics = ProxyMetrics(snapshot)
    metrics.registry.register(UpstreamCollector(router))
    parts = _Parts(
        config=config,
        client=client,
        transports=tuple(transports),
        router=router,
        waker=waker,
        resolver=resolver,
        cache=cache,
        stats=RecentStats(),
        history=history,
        metrics=metrics,
        coalescer=Coalescer(client, cache, metrics, router.count_usage),
        api_keys=tuple(key.encode() for key in config.proxy.api_keys),
    )
    app = ProxyApp(
        title="podmgr proxy",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lambda _app: _lifespan(parts),
    )
    v1 = V1Handler(
        router=router,
        cache=cache,
        coalescer=parts.coalescer,
        recorder=Recorder(metrics, parts.stats),
        api_keys=parts.api_keys,
        max_body_bytes=config.proxy.max_body_bytes,
        cache_mode=config.cache.mode,
        cache_fallbacks=config.cache.fallback_answers,
        waker=waker,
    )
    app.mount_raw("/v1", v1)
    _add_routes(app, parts)
    return app


async def _background(parts: _Parts) -> None:
    """Re-read the state file, sync the cache index, run the prewarm once the pod is ready."""
    config, resolver = parts.config, parts.resolver
    prewarm_path = config.resolve_path(config.cache.prewarm) if config.cache.prewarm else None
    prewarm_tasks: dict[str, asyncio.Task[object]] = {}
    # Each pod's route (several with `pods`), or the first upstream of a config without one.
    targets = [route for route in parts.router.routes if route.is_pod] or parts.router.routes[:1]
    ticks = 0
    while True:
        await asyncio.sleep(REFRESH_SECONDS)
        ticks += 1
        try:
            await asyncio.to_thread(resolver.refresh)
            parts.waker.close()  # reap a finished wake
            if ticks % round(CACHE_SYNC_SECONDS / REFRESH_SECONDS) == 0:
                await parts.cache.sync()
        except Exception:
            log.exception("background_tick_failed")
        if prewarm_path is None:
            continue
        for target in targets:
            if target.name in prewarm_tasks or not target.target(resolver).ready:
                continue
            prewarm_tasks[target.name] = asyncio.ensure_future(
                prewarm(
                    prewarm_path,
                    resolver=resolver,
                    cache=parts.cache,
                    coalescer=parts.coalescer,
                    cache_mode=config.cache.mode,
                    route=target,
                )
            )


def _transport(config: Config, spec: UpstreamSpec | None = None) -> Transport:
    """The client to one upstream (`spec`; None: the pod) that `config.proxy.upstream_client`
    names, with the upstream's own timeouts."""
    kind = AiohttpTransport if config.proxy.upstream_client == "aiohttp" else UpstreamClient
    # Waiting for a free connection is bounded like waiting for data: past 256 concurrent
    # upstream calls, a request queues rather than failing at once.
    read_timeout = config.proxy.upstream_timeout_seconds
    if spec is not None and spec.read_timeout_seconds is not None:
        read_timeout = spec.read_timeout_seconds
    transport: Transport = kind(
        connect_timeout=spec.connect_timeout_seconds if spec is not None else 10,
        read_timeout=read_timeout,
        pool_timeout=config.proxy.upstream_timeout_seconds,
    )
    return transport


@contextlib.asynccontextmanager
async def _lifespan(parts: _Parts) -> AsyncIterator[None]:
    await parts.cache.open()
    await asyncio.to_thread(parts.resolver.refresh)
    task = asyncio.ensure_future(_background(parts))
    log.info(
        "proxy_started",
        upstream_ready=parts.router.first_target().ready,
        cache_entries=parts.cache.entries,
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await parts.coalescer.close()
        for transport in parts.transports:
            await transport.close()
        await parts.cache.close()


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _denied(keys: tuple[bytes, ...], request: Request) -> Response | None:
    """The 401 answer if the request lacks a valid proxy key, else None."""
    value = request.headers.get("authorization")
    if authorize(keys, value.encode("latin-1") if value is not None else None):
        return None
    headers = dict((name.decode(), value.decode()) for name, value in UNAUTHORIZED.headers())
    return Response(UNAUTHORIZED.body, status_code=UNAUTHORIZED.status, headers=headers)


def _add_routes(app: FastAPI, parts: _Parts) -> None:
    """`/health`, `/metrics`, `/dashboard` and (with profiling) `/debug/cache`."""
    config, keys = parts.config, parts.api_keys

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> Response:
        body = error_body(str(error.detail), "invalid_request_error", f"http_{error.status_code}")
        return Response(body, status_code=error.status_code, media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return _json(
            health_payload(
                config,
                parts.resolver,
                parts.router.first_target(),
                parts.cache,
                parts.stats,
                len(parts.coalescer),
            )
            | {"upstreams": parts.router.view(), "wake": parts.waker.view()}
        )

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        denied = _denied(keys, request)
        if denied is not None:
            return denied
        return Response(generate_latest(parts.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/dashboard")
    async def dashboard(request: Request) -> Response:
        denied = _denied(keys, request)
        if denied is not None:
            return denied
        range_name = request.query_params.get("range", "hour")
        if range_name not in ("hour", "session"):
            body = error_body(
                f"range {range_name!r}: expected hour or session", "invalid_request_error",
                "invalid_range",
            )  # fmt: skip
            return Response(body, status_code=400, media_type="application/json")
        view = build_view(
            config, parts.resolver, parts.router.first_target(), parts.cache, parts.stats
        )
        view.rows.extend(upstream_rows(parts.router))
        if "text/html" in request.headers.get("accept", ""):
            stats = parts.stats
            view.charts.extend(
                chart_panels(
                    stats.series,
                    parts.resolver.state,
                    config,
                    time.time(),
                    range_name,
                    stats.started_at,
                )
            )
            return HTMLResponse(render_html(replace(view, range_name=range_name)))
        return PlainTextResponse(render_text(view))

    @app.get("/dashboard/history")
    async def history_page(request: Request) -> Response:
        denied = _denied(keys, request)
        if denied is not None:
            return denied
        records, problems = await asyncio.to_thread(parts.history.read)
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(render_history_html(records, problems, DASHBOARD_STYLE))
        return PlainTextResponse(render_history_text(records, problems))

    if config.proxy.enable_profiling:

        @app.get("/debug/cache")
        async def debug_cache(request: Request) -> Response:
            denied = _denied(keys, request)
            if denied is not None:
                return denied
            return _json(parts.cache.debug_view() | {"in_flight": len(parts.coalescer)})
