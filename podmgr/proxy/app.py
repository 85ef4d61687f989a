"""The proxy app factory: `create_app(config)` builds one ASGI app with its parts injected.

Requests under `/v1` go straight to the raw ASGI `V1Handler` (FastAPI's request/response
machinery costs more than a whole cache hit); everything else (`/health`, `/metrics`,
`/dashboard`, `/debug/cache`) is a small FastAPI app. The lifespan opens the upstream client
(a `transport.Transport`: `upstream_client` by default, `aiohttp_transport` when
`upstream_client: aiohttp`), the cache, and a background loop that
re-reads the state file, syncs the cache index with other processes, and runs the prewarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from podmgr.config import Config
from podmgr.logs import get_logger
from podmgr.proxy.aiohttp_transport import AiohttpTransport
from podmgr.proxy.asgi import Receive, Scope, Send
from podmgr.proxy.cache_store import CacheStore
from podmgr.proxy.context import ProxyContext
from podmgr.proxy.dashboard import build_view, render_html, render_text
from podmgr.proxy.forward import V1Handler
from podmgr.proxy.health import health_payload
from podmgr.proxy.openai_errors import error_body
from podmgr.proxy.prewarm import prewarm
from podmgr.proxy.transport import Transport
from podmgr.proxy.upstream import UpstreamResolver
from podmgr.proxy.upstream_client import UpstreamClient

__all__ = ["ProxyApp", "create_app"]

log = get_logger("proxy")
REFRESH_SECONDS = 0.5
CACHE_SYNC_SECONDS = 1.0


class ProxyApp:
    """The ASGI app: `/v1/*` to the raw handler, the rest to FastAPI."""

    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.v1 = V1Handler(ctx)
        self.fastapi = _build_fastapi(ctx)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            path = scope["path"]
            if len(path) == 3 or path[3] == "/":
                await self.v1(scope, receive, send)
                return
        await self.fastapi(scope, receive, send)


def create_app(config: Config) -> ProxyApp:
    """A proxy app for `config`; nothing is opened until the ASGI lifespan starts."""
    resolver = UpstreamResolver(config.state_path, config.upstream_url, config.upstream_api_key)
    cache = CacheStore(
        config.cache_path,
        config.max_cache_size,
        config.max_cache_bytes,
        config.cache_memory_bytes,
    )
    return ProxyApp(ProxyContext(config=config, resolver=resolver, cache=cache))


async def _background(ctx: ProxyContext) -> None:
    """Re-read the state file, sync the cache index, run the prewarm once the pod is ready."""
    prewarm_path = (
        ctx.config.resolve_path(ctx.config.prewarm_cache) if ctx.config.prewarm_cache else None
    )
    prewarm_task: asyncio.Task[object] | None = None
    ticks = 0
    while True:
        await asyncio.sleep(REFRESH_SECONDS)
        ticks += 1
        try:
            await asyncio.to_thread(ctx.resolver.refresh)
            if ticks % round(CACHE_SYNC_SECONDS / REFRESH_SECONDS) == 0:
                await ctx.cache.sync()
        except Exception:
            log.exception("background_tick_failed")
        if prewarm_path is not None and prewarm_task is None and ctx.resolver.current.ready:
            prewarm_task = asyncio.ensure_future(prewarm(ctx, prewarm_path))


def _transport(config: Config) -> Transport:
    """The client to the model server that `config.upstream_client` names."""
    kind = AiohttpTransport if config.upstream_client == "aiohttp" else UpstreamClient
    # Waiting for a free connection is bounded like waiting for data: past 256 concurrent
    # upstream calls, a request queues rather than failing at once.
    transport: Transport = kind(
        connect_timeout=10,
        read_timeout=config.upstream_timeout_seconds,
        pool_timeout=config.upstream_timeout_seconds,
    )
    return transport


@contextlib.asynccontextmanager
async def _lifespan(ctx: ProxyContext) -> AsyncIterator[None]:
    ctx.client = _transport(ctx.config)
    await ctx.cache.open()
    await asyncio.to_thread(ctx.resolver.refresh)
    task = asyncio.ensure_future(_background(ctx))
    log.info(
        "proxy_started",
        upstream_ready=ctx.resolver.current.ready,
        cache_entries=ctx.cache.entries,
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Cancel upstream calls still running; let answers already complete finish storing.
        tasks = [flight.task for flight in ctx.flights.values()]
        for flight in ctx.flights.values():
            if not flight.done:
                flight.task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await ctx.client.close()
        await ctx.cache.close()


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _build_fastapi(ctx: ProxyContext) -> FastAPI:
    app = FastAPI(
        title="podmgr proxy",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lambda _app: _lifespan(ctx),
    )

    def authorized(request: Request) -> bool:
        if not ctx.api_keys:
            return True
        value = request.headers.get("authorization", "")
        token = value[7:].strip().encode() if value[:7].lower() == "bearer " else b""
        matched = False
        for key in ctx.api_keys:
            matched |= hmac.compare_digest(token, key)
        return matched

    def denied() -> Response:
        body = error_body(
            "a valid proxy key is required", "invalid_request_error", "invalid_api_key"
        )
        return Response(body, status_code=401, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> Response:
        body = error_body(str(error.detail), "invalid_request_error", f"http_{error.status_code}")
        return Response(body, status_code=error.status_code, media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return _json(health_payload(ctx))

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if not authorized(request):
            return denied()
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/dashboard")
    async def dashboard(request: Request) -> Response:
        if not authorized(request):
            return denied()
        view = build_view(ctx)
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(render_html(view))
        return PlainTextResponse(render_text(view))

    if ctx.config.enable_profiling:

        @app.get("/debug/cache")
        async def debug_cache(request: Request) -> Response:
            if not authorized(request):
                return denied()
            return _json(ctx.cache.debug_view() | {"in_flight": len(ctx.flights)})

    return app
