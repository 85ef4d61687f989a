"""The `/v1` handler: a raw ASGI callable mounted at /v1, the proxy's hot path.

It carries out each request in three steps: intake (`intake.read_request` reads and
checks the scope and body once), plan (`plan.plan`, pure: which upstreams to try with
which body, the cache's decision, whether to wake the pod), and the effects here: wake,
answer a cache hit, join or start a flight through the coalescer (which stores its
complete answer) and fail over while nothing has reached the client, or pass any other
request through as it is. Non-streaming completions are sent upstream as streams (RunPod's
edge cuts responses that take more than 100 s to start; a stream keeps the connection
alive) and the JSON answer is assembled here. A request refused anywhere raises `Refused`
and is answered in one place (`__call__`); nothing here answers 500 on purpose. When the
request is over, its one `Outcome` is recorded (observe.outcome).
"""

from __future__ import annotations

import asyncio
import re
import time

from starlette.types import Receive, Scope, Send

from podmgr.logs import get_logger
from podmgr.proxy import openai_errors as errors
from podmgr.proxy.cache.entry import CachedAnswer
from podmgr.proxy.cache.key import CacheDecision, CacheMode
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.forward.asgi import Responder
from podmgr.proxy.forward.coalescer import Coalescer
from podmgr.proxy.forward.flight import Flight, FlightState, UpstreamCall
from podmgr.proxy.forward.intake import IntakeRules, ProxyRequest, read_request
from podmgr.proxy.forward.plan import Attempt, Plan, Snapshot, plan
from podmgr.proxy.forward.relay import JSON_HEADERS, SSE_HEADERS, pass_through, serve_flight
from podmgr.proxy.forward.routing import models_union
from podmgr.proxy.forward.sse import stream_from_json
from podmgr.proxy.observe.outcome import CacheResult, Outcome, Recorder
from podmgr.proxy.openai_errors import ProxyFailure, Refused
from podmgr.proxy.upstream.outgoing import upstream_body, upstream_headers
from podmgr.proxy.upstream.router import Route, Router, retryable
from podmgr.proxy.wake import Waker

__all__ = ["V1Handler"]

log = get_logger("proxy.forward")
_SLASHES = re.compile(r"/{2,}")


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
        self.rules = IntakeRules(api_keys, max_body_bytes)
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
            request = await read_request(scope, receive, path, route, self.rules)
            await self._carry_out(request, plan(request, self._snapshot()), receive, out, outcome)
        except Refused as refused:
            await out.fail(refused.failure, list(refused.headers))
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

    def _snapshot(self) -> Snapshot:
        """The upstreams and cache settings as they are now, for `plan`."""
        router = self.router
        return Snapshot(
            upstreams=router.snapshot(),
            pod_failure=router.resolver.current.failure,
            can_wake=self.waker is not None and not router.resolver.current.ready,
            cache_mode=self.cache_mode,
            cache_fallbacks=self.cache_fallbacks,
            several=not router.legacy,
        )

    async def _carry_out(
        self, request: ProxyRequest, plan: Plan, receive: Receive, out: Responder, outcome: Outcome
    ) -> None:
        """Do what `plan` says (module docstring)."""
        blocked = self.waker.on_request() if plan.wake and self.waker is not None else None
        if plan.nowhere is not None:
            raise Refused(self._nowhere(plan.nowhere, blocked))
        if plan.models_union:
            await models_union(tuple(a.upstream for a in plan.attempts), request.headers, out)
            return
        if request.body is None:
            await self._pass_through(request, plan.attempts[0], receive, out, outcome)
            return
        out.watch_disconnect(receive)
        last = len(plan.attempts) - 1
        for index, attempt in enumerate(plan.attempts):
            if await self._try(request, attempt, out, outcome, index == last):
                return

    async def _pass_through(
        self,
        request: ProxyRequest,
        attempt: Attempt,
        receive: Receive,
        out: Responder,
        outcome: Outcome,
    ) -> None:
        """Any other request goes as it is to the first available upstream."""
        route, upstream = attempt.upstream.route, attempt.upstream.target
        if upstream.base_url is None:
            raise Refused(upstream.failure or errors.UNREACHABLE)
        query = request.query
        url = upstream.base_url + request.path + (("?" + query.decode("latin-1")) if query else "")
        begin = time.perf_counter()
        headers = route.headers(upstream_headers(request.headers, upstream))
        failure = await pass_through(
            route.client, out, receive, request.method, url, request.raw, headers, _named(route)
        )
        outcome.upstream_failure = failure
        outcome.waited = time.perf_counter() - begin
        outcome.upstream = route.name
        self._settle(route, failure, outcome.waited)

    async def _try(
        self,
        request: ProxyRequest,
        attempt: Attempt,
        out: Responder,
        outcome: Outcome,
        final: bool,
    ) -> bool:
        """Answer from one upstream; False (nothing sent) to try the next one instead."""
        decision = attempt.decision
        assert decision is not None  # the plan decides for every cacheable attempt
        route = attempt.upstream.route
        key_header = (b"x-cache-key", decision.key.encode())
        if decision.lookup and await self._hit(request, decision, out, outcome, key_header, route):
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
        extra = [(b"x-cache", outcome.cache.value.encode()), key_header, *_named(route)]
        if flight is None:
            failure = attempt.upstream.target.failure
            if failure is not None:
                raise Refused(failure, tuple(extra))
            flight = self._start_flight(request, attempt, decision)
        begin = time.perf_counter()
        self.coalescer.join(flight)
        try:
            if not final:
                await flight.wait_started()
                failure = flight.failure
                if _failed_unstarted(flight) and failure is not None and retryable(failure):
                    self.router.failed(route, failure, time.perf_counter() - begin)
                    log.info("upstream_failover", upstream=route.name, failure=failure.kind)
                    return False
            await serve_flight(flight, out, request.stream, request.include_usage, extra)
        finally:
            self.coalescer.leave(flight)
            outcome.waited = time.perf_counter() - begin
        outcome.upstream = route.name
        if request.stream:
            outcome.ttft = flight.first_event_seconds
        # A stream that broke off answered 200 and still counts as this upstream's failure.
        self._settle(route, flight.failure, outcome.waited)
        return True

    async def _hit(
        self,
        request: ProxyRequest,
        decision: CacheDecision,
        out: Responder,
        outcome: Outcome,
        key_header: tuple[bytes, bytes],
        route: Route,
    ) -> bool:
        """Answer from the cache if it holds the answer (in the form asked for)."""
        answer = self.cache.get_hot(decision.key)
        if answer is None and decision.key in self.cache:
            answer = await self.cache.get(decision.key)
        reply = _hit_reply(answer, request.stream, request.include_usage) if answer else None
        if reply is None:
            return False
        outcome.cache = CacheResult.HIT
        headers = SSE_HEADERS if request.stream else JSON_HEADERS
        await out.complete(200, reply, [*headers, (b"x-cache", b"HIT"), key_header, *_named(route)])
        return True

    def _nowhere(self, failure: ProxyFailure, blocked: str | None) -> ProxyFailure:
        """The answer when no upstream can take the request now (a wake may be starting)."""
        if self.waker is not None and failure.status == 503:
            return self.waker.starting_failure(blocked) or failure
        return failure

    def _settle(self, route: Route, failure: ProxyFailure | None, seconds: float) -> None:
        if failure is None:
            self.router.succeeded(route, seconds)
        else:
            self.router.failed(route, failure, seconds)

    def _start_flight(
        self, request: ProxyRequest, attempt: Attempt, decision: CacheDecision
    ) -> Flight:
        route, upstream = attempt.upstream.route, attempt.upstream.target
        headers = route.headers(upstream_headers(request.headers, upstream))
        headers["content-type"] = "application/json"
        call = UpstreamCall(
            request.route,
            f"{upstream.base_url}/v1/{request.route}",
            upstream_body(request.route, attempt.body or {}, upstream.edge_limited),
            headers,
            route.name,
        )
        return self.coalescer.start(call, decision, share=decision.lookup, client=route.client)


def _named(route: Route) -> list[tuple[bytes, bytes]]:
    return [(b"x-upstream", route.name.encode())]


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
