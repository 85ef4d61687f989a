"""The `/v1/*` handler: a raw ASGI callable, the proxy's hot path.

For each request: check the target and headers (request_checks), the client's key (when
keys are configured), read the body within `max_body_bytes`, and then either
- cacheable route: POST with a JSON object body (else a 4xx, nothing forwarded); decide
  (cache_key.decide), serve a hit from the cache, or join/start a `Flight` to the model
  server and store its complete answer;
- anything else: pass it through as it is.
Non-streaming completions are sent upstream as streams (RunPod's edge cuts responses that
take more than 100 s to start; a stream keeps the connection alive) and the JSON answer is
assembled here. Every failure is an OpenAI-shaped error; nothing here answers 500.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from typing import Any

import orjson

from podmgr.logs import get_logger
from podmgr.proxy import openai_errors as errors
from podmgr.proxy import request_checks as checks
from podmgr.proxy.asgi import BodyTooLarge, Receive, Responder, Scope, Send, header, read_body
from podmgr.proxy.cache_entry import CachedAnswer
from podmgr.proxy.cache_key import CACHEABLE_ROUTES, CacheDecision, decide
from podmgr.proxy.context import ProxyContext
from podmgr.proxy.flight import Flight
from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.outgoing import upstream_body, upstream_headers
from podmgr.proxy.relay import JSON_HEADERS, SSE_HEADERS, pass_through, serve_flight
from podmgr.proxy.sse import stream_from_json
from podmgr.proxy.upstream import Upstream

__all__ = ["V1Handler"]

log = get_logger("proxy.forward")
_SLASHES = re.compile(r"/{2,}")
_UNAUTHORIZED = ProxyFailure(
    401,
    "a valid proxy key is required (Authorization: Bearer ...)",
    "invalid_request_error",
    "invalid_api_key",
    "client_auth",
)
_ALLOW_POST = [(b"allow", b"POST")]
_TOO_LARGE = ProxyFailure(
    413,
    "the request body is larger than this proxy accepts (max_body_bytes)",
    "invalid_request_error",
    "request_too_large",
    "client_body",
)


class V1Handler:
    """ASGI callable for every path under /v1."""

    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        ctx = self.ctx
        started = time.perf_counter()
        now = time.time()
        ctx.stats.last_request_at = now
        path = scope["path"]
        if "//" in path:
            path = _SLASHES.sub("/", path)
        route = path[4:].strip("/")
        out = Responder(send)
        waited = [0.0]
        ctx.metrics.in_flight.inc()
        try:
            await self._handle(scope, receive, out, path, route, waited)
        except asyncio.CancelledError:
            if not out.disconnected:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            out.status = 499
        except Exception:
            log.exception("request_failed", route=route)
            if not out.started:
                await out.fail(errors.INTERNAL)
        finally:
            out.stop_watch()
            ctx.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            ctx.metrics.count_request(route, out.status)
            ctx.metrics.overhead.observe(max(0.0, elapsed - waited[0]))
            ctx.stats.record(now, elapsed)
            if out.status >= 400:
                ctx.stats.record_error(now, route, out.status, _error_text(out))

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        out: Responder,
        path: str,
        route: str,
        waited: list[float],
    ) -> None:
        ctx = self.ctx
        rejected = checks.check_target(scope, path)
        if rejected is not None:
            await out.fail(rejected)
            return
        if ctx.api_keys and not self._authorized(scope):
            await out.fail(_UNAUTHORIZED)
            return
        method = scope["method"]
        cacheable = route in CACHEABLE_ROUTES
        if cacheable:
            rejected = checks.check_method(method) or checks.check_content_type(scope)
            if rejected is not None:
                await out.fail(rejected, _ALLOW_POST if rejected.status == 405 else None)
                return
        try:
            raw = await read_body(scope, receive, ctx.config.max_body_bytes)
        except BodyTooLarge:
            await out.fail(_TOO_LARGE)
            return
        if cacheable:
            body = checks.parse_object(raw)
            if isinstance(body, ProxyFailure):
                await out.fail(body)
                return
            rejected = checks.check_body(body)
            if rejected is not None:
                await out.fail(rejected)
                return
            await self._cacheable(scope, receive, out, route, body, waited)
            return
        upstream = ctx.resolver.current
        if upstream.base_url is None:
            await out.fail(upstream.failure or errors.UNREACHABLE)
            return
        query = scope.get("query_string") or b""
        url = upstream.base_url + path + (("?" + query.decode("latin-1")) if query else "")
        begin = time.perf_counter()
        headers = upstream_headers(scope, upstream)
        await pass_through(ctx, out, receive, method, url, raw, headers)
        waited[0] = time.perf_counter() - begin

    async def _cacheable(
        self,
        scope: Scope,
        receive: Receive,
        out: Responder,
        route: str,
        body: dict[str, Any],
        waited: list[float],
    ) -> None:
        ctx = self.ctx
        cache_control = header(scope, b"cache-control")
        decision = decide(
            route,
            body,
            cache_control.decode("latin-1") if cache_control else None,
            ctx.config.cache_mode,
        )
        client_stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = (
            client_stream and isinstance(options, dict) and bool(options.get("include_usage"))
        )
        key_header = (b"x-cache-key", decision.key.encode())
        if decision.lookup:
            answer = ctx.cache.get_hot(decision.key)
            if answer is None and decision.key in ctx.cache:
                answer = await ctx.cache.get(decision.key)
            reply = _hit_reply(answer, client_stream, include_usage) if answer else None
            if reply is not None:
                ctx.metrics.hit.inc()
                ctx.stats.hits += 1
                headers = SSE_HEADERS if client_stream else JSON_HEADERS
                await out.complete(200, reply, [*headers, (b"x-cache", b"HIT"), key_header])
                return
        flight = ctx.flights.get(decision.key) if decision.lookup else None
        if flight is not None and flight.complete:
            # Answered and being written to the cache right now: as good as a hit.
            ctx.metrics.hit.inc()
            ctx.stats.hits += 1
            extra = [(b"x-cache", b"HIT"), key_header]
        elif decision.lookup:
            ctx.metrics.miss.inc()
            ctx.stats.misses += 1
            extra = [(b"x-cache", b"MISS"), key_header]
        else:
            ctx.metrics.bypass.inc()
            ctx.stats.bypasses += 1
            extra = [(b"x-cache", b"BYPASS"), key_header]
        if flight is not None:
            if not flight.complete:
                ctx.metrics.coalesced.inc()
        else:
            upstream = ctx.resolver.current
            if upstream.failure is not None:
                await out.fail(upstream.failure, extra)
                return
            flight = self._start_flight(scope, upstream, route, body, decision)
        begin = time.perf_counter()
        flight.join()
        try:
            out.watch_disconnect(receive)
            await serve_flight(flight, out, client_stream, include_usage, extra)
        finally:
            flight.leave()
            waited[0] = time.perf_counter() - begin

    def _start_flight(
        self,
        scope: Scope,
        upstream: Upstream,
        route: str,
        body: dict[str, Any],
        decision: CacheDecision,
    ) -> Flight:
        headers = upstream_headers(scope, upstream)
        headers["content-type"] = "application/json"
        url = f"{upstream.base_url}/v1/{route}"
        store = decision if decision.store else None
        flight = Flight(
            self.ctx,
            route,
            url,
            upstream_body(route, body, upstream.edge_limited),
            headers,
            store,
        )
        if decision.lookup:
            self.ctx.flights[decision.key] = flight
        return flight

    def _authorized(self, scope: Scope) -> bool:
        value = header(scope, b"authorization") or b""
        token = value[7:].strip() if value[:7].lower() == b"bearer " else b""
        # Compare against every key so the time taken does not tell which one matched.
        matched = False
        for key in self.ctx.api_keys:
            matched |= hmac.compare_digest(token, key)
        return matched


def _hit_reply(answer: CachedAnswer, client_stream: bool, include_usage: bool) -> bytes | None:
    """The cached answer in the form the client asked for; None if it cannot be had."""
    if not client_stream:
        return answer.json
    replay = answer.sse_body(include_usage)
    return replay if replay is not None else stream_from_json(answer.json, include_usage)


def _error_text(out: Responder) -> str:
    if out.status == 499:
        return "client disconnected"
    failure = out.failure
    if failure is None:
        return f"HTTP {out.status}"
    if failure.message:
        return failure.message
    try:
        return str(orjson.loads(failure.body)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"HTTP {out.status}"
