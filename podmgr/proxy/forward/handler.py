"""The `/v1/*` handler: a raw ASGI callable mounted at /v1, the proxy's hot path.

For each request: check the target and headers (checks), the client's key (auth), read
the body within `max_body_bytes`, and then either
- cacheable route: POST with a JSON object body (else a 4xx, nothing forwarded); decide
  (cache.key.decide), serve a hit from the cache, or join/start a flight through the
  coalescer (which stores its complete answer);
- anything else: pass it through as it is.
Non-streaming completions are sent upstream as streams (RunPod's edge cuts responses that
take more than 100 s to start; a stream keeps the connection alive) and the JSON answer is
assembled here. Every failure is an OpenAI-shaped error; nothing here answers 500. When
the request is over, its one `Outcome` is recorded (observe.outcome).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from starlette.types import Receive, Scope, Send

from podmgr.logs import get_logger
from podmgr.proxy import openai_errors as errors
from podmgr.proxy.cache.entry import CachedAnswer
from podmgr.proxy.cache.key import CACHEABLE_ROUTES, CacheDecision, CacheMode, decide
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.forward import checks
from podmgr.proxy.forward.asgi import BodyTooLarge, Responder, header, read_body
from podmgr.proxy.forward.auth import UNAUTHORIZED, authorize
from podmgr.proxy.forward.coalescer import Coalescer
from podmgr.proxy.forward.flight import Flight, FlightState, UpstreamCall
from podmgr.proxy.forward.relay import JSON_HEADERS, SSE_HEADERS, pass_through, serve_flight
from podmgr.proxy.forward.routing import models_union
from podmgr.proxy.forward.sse import stream_from_json
from podmgr.proxy.observe.outcome import CacheResult, Outcome, Recorder
from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.upstream.outgoing import upstream_body, upstream_headers
from podmgr.proxy.upstream.resolver import Upstream
from podmgr.proxy.upstream.router import Route, Router, retryable
from podmgr.proxy.wake import Waker

__all__ = ["V1Handler"]

log = get_logger("proxy.forward")
_SLASHES = re.compile(r"/{2,}")
_ALLOW_POST = [(b"allow", b"POST")]
_TOO_LARGE = ProxyFailure(
    413,
    "the request body is larger than this proxy accepts (max_body_bytes)",
    "invalid_request_error",
    "request_too_large",
    "client_body",
)


class V1Handler:
    """ASGI callable for every path under /v1 (mounted there; `scope["path"]` is whole)."""

    def __init__(
        self,
        *,
        router: Router,
        cache: CacheStore,
        coalescer: Coalescer,
        recorder: Recorder,
        api_keys: tuple[bytes, ...],
        max_body_bytes: int,
        cache_mode: CacheMode,
        cache_fallbacks: bool = True,
        waker: Waker | None = None,
    ) -> None:
        self.router = router
        self.waker = waker if waker is not None and waker.enabled else None
        self.cache_fallbacks = cache_fallbacks
        self.cache = cache
        self.coalescer = coalescer
        self.recorder = recorder
        self.api_keys = api_keys
        self.max_body_bytes = max_body_bytes
        self.cache_mode = cache_mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if "//" in path:
            path = _SLASHES.sub("/", path)
        route = path[4:].strip("/")
        outcome = self.recorder.begin(route)
        out = Responder(send)
        try:
            await self._handle(scope, receive, out, path, outcome)
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
            outcome.status = out.status
            outcome.failure = out.failure
            self.recorder.record(outcome)

    async def _handle(
        self, scope: Scope, receive: Receive, out: Responder, path: str, outcome: Outcome
    ) -> None:
        rejected = checks.check_target(scope, path)
        if rejected is not None:
            await out.fail(rejected)
            return
        if self.api_keys and not authorize(self.api_keys, header(scope, b"authorization")):
            await out.fail(UNAUTHORIZED)
            return
        method = scope["method"]
        cacheable = outcome.route in CACHEABLE_ROUTES
        if cacheable:
            rejected = checks.check_method(method) or checks.check_content_type(scope)
            if rejected is not None:
                await out.fail(rejected, _ALLOW_POST if rejected.status == 405 else None)
                return
        try:
            raw = await read_body(scope, receive, self.max_body_bytes)
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
            await self._cacheable(scope, receive, out, body, outcome)
            return
        await self._pass_through(scope, receive, out, path, raw, outcome)

    async def _pass_through(
        self,
        scope: Scope,
        receive: Receive,
        out: Responder,
        path: str,
        raw: bytes,
        outcome: Outcome,
    ) -> None:
        """Any other request goes as it is to the first available upstream; with several
        upstreams, `GET /v1/models` is the union of theirs (routing.models_union)."""
        method = scope["method"]
        if len(self.router.routes) > 1 and method == "GET" and path.rstrip("/") == "/v1/models":
            await models_union(self.router, scope, out)
            return
        blocked = self._wake(None)
        candidates = self.router.candidates(None)
        if not candidates:
            await out.fail(self._nowhere(None, blocked))
            return
        route, upstream = candidates[0]
        if upstream.base_url is None:
            await out.fail(upstream.failure or errors.UNREACHABLE)
            return
        query = scope.get("query_string") or b""
        url = upstream.base_url + path + (("?" + query.decode("latin-1")) if query else "")
        begin = time.perf_counter()
        headers = route.headers(upstream_headers(scope, upstream))
        failure = await pass_through(
            route.client, out, receive, method, url, raw, headers, self._named(route)
        )
        outcome.upstream_failure = failure
        outcome.waited = time.perf_counter() - begin
        outcome.upstream = route.name
        self._settle(route, failure, outcome.waited)

    async def _cacheable(
        self,
        scope: Scope,
        receive: Receive,
        out: Responder,
        body: dict[str, Any],
        outcome: Outcome,
    ) -> None:
        model = body.get("model")
        model = model if isinstance(model, str) else None
        blocked = self._wake(model)
        candidates = self.router.candidates(model)
        if not candidates:
            await out.fail(self._nowhere(model, blocked))
            return
        out.watch_disconnect(receive)
        last = len(candidates) - 1
        for index, (route, upstream) in enumerate(candidates):
            if await self._try(scope, out, body, outcome, route, upstream, index == last):
                return

    async def _try(
        self,
        scope: Scope,
        out: Responder,
        body: dict[str, Any],
        outcome: Outcome,
        upstream_route: Route,
        upstream: Upstream,
        final: bool,
    ) -> bool:
        """Answer from one upstream; False (nothing sent) to try the next one instead."""
        route = outcome.route
        cache_control = header(scope, b"cache-control")
        model = body.get("model")
        decision = decide(
            route,
            body,
            cache_control.decode("latin-1") if cache_control else None,
            self.cache_mode,
            upstream_route.cache_scope(model if isinstance(model, str) else None),
        )
        if decision.store and not (upstream_route.is_pod or self.cache_fallbacks):
            decision = CacheDecision(decision.key, decision.lookup, store=False)
        client_stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = (
            client_stream and isinstance(options, dict) and bool(options.get("include_usage"))
        )
        key_header = (b"x-cache-key", decision.key.encode())
        named = self._named(upstream_route)
        if decision.lookup:
            answer = self.cache.get_hot(decision.key)
            if answer is None and decision.key in self.cache:
                answer = await self.cache.get(decision.key)
            reply = _hit_reply(answer, client_stream, include_usage) if answer else None
            if reply is not None:
                outcome.cache = CacheResult.HIT
                headers = SSE_HEADERS if client_stream else JSON_HEADERS
                await out.complete(200, reply, [*headers, (b"x-cache", b"HIT"), key_header, *named])
                return True
        flight = self.coalescer.get(decision.key) if decision.lookup else None
        if flight is not None and flight.state is FlightState.COMPLETE:
            # Answered and being written to the cache right now: as good as a hit.
            outcome.cache = CacheResult.HIT
        elif decision.lookup:
            outcome.cache = CacheResult.MISS
            outcome.coalesced = flight is not None
        else:
            outcome.cache = CacheResult.BYPASS
        extra = [(b"x-cache", outcome.cache.value.encode()), key_header, *named]
        if flight is None:
            if upstream.failure is not None:
                await out.fail(upstream.failure, extra)
                return True
            flight = self._start_flight(scope, upstream_route, upstream, route, body, decision)
        begin = time.perf_counter()
        self.coalescer.join(flight)
        try:
            if not final:
                await flight.wait_started()
                failure = flight.failure
                if _failed_unstarted(flight) and failure is not None and retryable(failure):
                    self.router.failed(upstream_route, failure, time.perf_counter() - begin)
                    log.info(
                        "upstream_failover", upstream=upstream_route.name, failure=failure.kind
                    )
                    return False
            await serve_flight(flight, out, client_stream, include_usage, extra)
        finally:
            self.coalescer.leave(flight)
            outcome.waited = time.perf_counter() - begin
        outcome.upstream = upstream_route.name
        if client_stream:
            outcome.ttft = flight.first_event_seconds
        # A stream that broke off answered 200 and still counts as this upstream's failure.
        self._settle(upstream_route, flight.failure, outcome.waited)
        return True

    def _wake(self, model: str | None) -> str | None:
        """With wake on request: start a session if none is active and the pod serves
        `model` (wake.py); returns why a wake is blocked, if it is."""
        if self.waker is None or self.router.resolver.current.ready:
            return None
        pod = self.router.pod_route
        if pod is None or not pod.spec.serves(model):
            return None
        return self.waker.on_request()

    def _nowhere(self, model: str | None, blocked: str | None) -> ProxyFailure:
        """The answer when no upstream can take the request now."""
        failure = self.router.unavailable(model)
        if self.waker is not None and failure.status == 503:
            return self.waker.starting_failure(blocked) or failure
        return failure

    def _named(self, route: Route) -> list[tuple[bytes, bytes]]:
        return [(b"x-upstream", route.name.encode())]

    def _settle(self, route: Route, failure: ProxyFailure | None, seconds: float) -> None:
        if failure is None:
            self.router.succeeded(route, seconds)
        else:
            self.router.failed(route, failure, seconds)

    def _start_flight(
        self,
        scope: Scope,
        upstream_route: Route,
        upstream: Upstream,
        route: str,
        body: dict[str, Any],
        decision: CacheDecision,
    ) -> Flight:
        headers = upstream_route.headers(upstream_headers(scope, upstream))
        headers["content-type"] = "application/json"
        model = body.get("model")
        if isinstance(model, str) and upstream_route.spec.model_map:
            body = {**body, "model": upstream_route.spec.upstream_model(model)}
        call = UpstreamCall(
            route,
            f"{upstream.base_url}/v1/{route}",
            upstream_body(route, body, upstream.edge_limited),
            headers,
            upstream_route.name,
        )
        return self.coalescer.start(
            call, decision, share=decision.lookup, client=upstream_route.client
        )


def _failed_unstarted(flight: Flight) -> bool:
    """The flight failed before any of an answer arrived (a stream that began is never
    retried elsewhere: its clients get an error event instead)."""
    return flight.state is FlightState.FAILED and not flight.sse


def _hit_reply(answer: CachedAnswer, client_stream: bool, include_usage: bool) -> bytes | None:
    """The cached answer in the form the client asked for; None if it cannot be had."""
    if not client_stream:
        return answer.json
    replay = answer.sse_body(include_usage)
    return replay if replay is not None else stream_from_json(answer.json, include_usage)
