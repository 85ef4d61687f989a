"""Effects: carrying out a request's plan (the only part of the `/v1` path that acts).

The plan (`plan.py`, pure) ends in one `Action`, a frozen dataclass that knows how to carry
itself out with the proxy's parts (`Effects`): `Refuse` answers a failure, `ListModels`
answers `GET /v1/models` from several upstreams, `PassThrough` forwards the request as it is
and `Answer` serves a cacheable request. `Answer` tries its attempts in order: a cache hit,
else join or start a flight through the coalescer (which stores its complete answer), or,
for a request nobody could join whose answer nothing stores and which goes upstream as it
is, a call made alone (`alone.py`); it moves to the next upstream only while nothing has
reached the client. A refusal, and an upstream's failure once it is counted, raises
`Refused`, which the handler answers; everything here records into the request's `Outcome`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from starlette.types import Receive

from podmgr.logs import get_logger
from podmgr.proxy import openai_errors as errors
from podmgr.proxy.cache.entry import CachedAnswer
from podmgr.proxy.cache.key import CacheDecision
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.forward.alone import call_alone
from podmgr.proxy.forward.asgi import Responder
from podmgr.proxy.forward.coalescer import Coalescer
from podmgr.proxy.forward.flight import Flight, FlightState, UpstreamCall
from podmgr.proxy.forward.intake import ProxyRequest
from podmgr.proxy.forward.relay import JSON_HEADERS, SSE_HEADERS, pass_through, serve_flight
from podmgr.proxy.forward.routing import models_union
from podmgr.proxy.forward.sse import stream_from_json
from podmgr.proxy.observe.outcome import CacheResult, Outcome
from podmgr.proxy.openai_errors import ProxyFailure, Refused
from podmgr.proxy.upstream.outgoing import upstream_body, upstream_headers
from podmgr.proxy.upstream.router import Route, Router, UpstreamState, retryable
from podmgr.proxy.wake import Waker

__all__ = [
    "Action",
    "Answer",
    "Attempt",
    "Effects",
    "Exchange",
    "ListModels",
    "PassThrough",
    "Refuse",
]

log = get_logger("proxy.forward")
_X_CACHE = {result: (b"x-cache", result.value.encode()) for result in CacheResult}


@dataclass(slots=True)
class Exchange:
    """One request under way: what was asked, how to answer, and what to record.
    `blocked` says why a wake the plan asked for could not start."""

    request: ProxyRequest
    receive: Receive
    out: Responder
    outcome: Outcome
    blocked: str | None = None


@dataclass(frozen=True, slots=True)
class Effects:
    """The proxy's parts an action acts on."""

    router: Router
    cache: CacheStore
    coalescer: Coalescer
    waker: Waker | None

    def wake(self, pod: str | None) -> str | None:
        """Start the pod `pod` for this request (wake.py); why not, if it is blocked."""
        return self.waker.on_request(pod) if self.waker is not None else None

    def settle(self, route: Route, failure: ProxyFailure | None, seconds: float) -> None:
        if failure is None:
            self.router.succeeded(route, seconds)
        else:
            self.router.failed(route, failure, seconds)


class Action(Protocol):
    """What the plan decided, carried out by `run`."""

    async def run(self, fx: Effects, ex: Exchange) -> None: ...


class Attempt(NamedTuple):
    """One upstream to try with the JSON body it gets and the cache's decision for it (a
    named tuple: made for every cacheable request)."""

    upstream: UpstreamState
    body: dict[str, Any]
    decision: CacheDecision


@dataclass(frozen=True, slots=True)
class Refuse:
    """No upstream can take the request for `model`: answer why the pod cannot
    (`pod_failure`, when the pod serves it) or that nothing serves it (`failure`); a 503
    becomes the wake's "starting" answer while a wake on request is under way, or says
    why it is blocked."""

    model: str | None
    pod_failure: ProxyFailure | None
    pod: str | None = None  # the pod serving `model` (config `pods`), named in the 503

    @property
    def failure(self) -> ProxyFailure:
        return self.pod_failure or errors.no_upstream_for(self.model)

    async def run(self, fx: Effects, ex: Exchange) -> None:
        failure = self.failure
        if fx.waker is not None and failure.status == 503:
            failure = fx.waker.starting_failure(ex.blocked, self.pod) or failure
        raise Refused(failure)


@dataclass(frozen=True, slots=True)
class ListModels:
    """`GET /v1/models` with several upstreams: the union of the available ones' lists."""

    upstreams: tuple[UpstreamState, ...]

    async def run(self, fx: Effects, ex: Exchange) -> None:
        await models_union(self.upstreams, ex.request.headers, ex.out)


@dataclass(frozen=True, slots=True)
class PassThrough:
    """Any request other than a cacheable one: as it is, to the first available upstream."""

    upstream: UpstreamState

    async def run(self, fx: Effects, ex: Exchange) -> None:
        request = ex.request
        route, target = self.upstream.route, self.upstream.target
        if target.base_url is None:
            raise Refused(target.failure or errors.UNREACHABLE)
        query = request.query
        url = target.base_url + request.path + (("?" + query.decode("latin-1")) if query else "")
        begin = time.perf_counter()
        headers = route.headers(upstream_headers(request.headers, target))
        named = _named(route)
        failure = await pass_through(
            route.client, ex.out, ex.receive, request.method, url, request.raw, headers, named
        )
        outcome = ex.outcome
        outcome.upstream_failure = failure
        outcome.waited = time.perf_counter() - begin
        outcome.upstream = route.name
        fx.settle(route, failure, outcome.waited)
        if failure is not None:
            raise Refused(failure, tuple(named))


@dataclass(frozen=True, slots=True)
class Answer:
    """A cacheable request: each attempt in turn until one answers (module docstring)."""

    attempts: tuple[Attempt, ...]

    async def run(self, fx: Effects, ex: Exchange) -> None:
        last = len(self.attempts) - 1
        for index, attempt in enumerate(self.attempts):
            if await _try(fx, ex, attempt, index == last):
                return


async def _try(fx: Effects, ex: Exchange, attempt: Attempt, final: bool) -> bool:
    """Answer from one upstream; False (nothing sent) to try the next one instead."""
    request, outcome, decision = ex.request, ex.outcome, attempt.decision
    route = attempt.upstream.route
    extra = _named(route)
    if decision.key:  # none with the cache off
        extra.insert(0, (b"x-cache-key", decision.key.encode()))
    if decision.lookup and await _hit(fx.cache, ex, decision.key, extra):
        return True
    if ex.out.watch is None:
        # Watched only once a wait on an upstream is ahead: a hit is answered before a
        # client could leave, and the watch's timer was a tenth of a hit's CPU time.
        ex.out.watch_disconnect(ex.receive)
    flight = fx.coalescer.get(decision.key) if decision.lookup else None
    if flight is not None and flight.state is FlightState.COMPLETE:
        # Answered and being written to the cache right now: as good as a hit.
        outcome.cache = CacheResult.HIT
    elif decision.lookup:
        outcome.cache = CacheResult.MISS
        outcome.coalesced = flight is not None
    else:
        outcome.cache = CacheResult.BYPASS
    extra.insert(0, _X_CACHE[outcome.cache])
    here = False
    if flight is None:
        target = attempt.upstream.target
        if target.failure is not None:
            raise Refused(target.failure, tuple(extra))
        # Nobody can join it and nothing is stored after it: this task runs it, and with
        # the body going as it is, its answer is what the client gets (alone.py).
        here = not (decision.lookup or decision.store or request.stream)
        if here and not target.edge_limited:
            return await _try_alone(fx, ex, attempt, extra, final)
        flight = _start_flight(fx.coalescer, request, attempt, in_task=not here)
    begin = time.perf_counter()
    fx.coalescer.join(flight)
    try:
        if here:
            await flight.run_here()
        if not final:
            await flight.wait_started()
            failure = flight.failure
            if _failed_unstarted(flight) and failure is not None and retryable(failure):
                fx.router.failed(route, failure, time.perf_counter() - begin)
                log.info("upstream_failover", upstream=route.name, failure=failure.kind)
                return False
        failure = await serve_flight(flight, ex.out, request.stream, request.include_usage, extra)
    finally:
        fx.coalescer.leave(flight)
        outcome.waited = time.perf_counter() - begin
    outcome.upstream = route.name
    if request.stream:
        outcome.ttft = flight.first_event_seconds
    # A stream that broke off answered 200 and still counts as this upstream's failure.
    fx.settle(route, flight.failure, outcome.waited)
    if failure is not None:
        raise Refused(failure, tuple(extra))
    return True


async def _try_alone(
    fx: Effects, ex: Exchange, attempt: Attempt, extra: list[tuple[bytes, bytes]], final: bool
) -> bool:
    """`_try` for a call made alone (alone.py): nothing is sent before the answer is in
    whole, so any retryable failure may move on to the next upstream."""
    route = attempt.upstream.route
    done = await call_alone(route.client, _upstream_call(ex.request, attempt))
    fx.coalescer.count(done)
    failure, outcome = done.failure, ex.outcome
    outcome.waited = done.upstream_seconds
    if failure is not None and not final and retryable(failure):
        fx.router.failed(route, failure, done.upstream_seconds)
        log.info("upstream_failover", upstream=route.name, failure=failure.kind)
        return False
    outcome.upstream = route.name
    fx.settle(route, failure, done.upstream_seconds)
    if failure is not None:
        raise Refused(failure, tuple(extra))
    await ex.out.complete(200, done.body, [(b"content-type", done.content_type), *extra])
    return True


async def _hit(cache: CacheStore, ex: Exchange, key: str, extra: list[tuple[bytes, bytes]]) -> bool:
    """Answer from the cache if it holds the answer (in the form asked for)."""
    answer = cache.get_hot(key)
    if answer is None and key in cache:
        answer = await cache.get(key)
    request = ex.request
    reply = _hit_reply(answer, request.stream, request.include_usage) if answer else None
    if reply is None:
        return False
    ex.outcome.cache = CacheResult.HIT
    headers = SSE_HEADERS if request.stream else JSON_HEADERS
    await ex.out.complete(200, reply, [*headers, (b"x-cache", b"HIT"), *extra])
    return True


def _start_flight(
    coalescer: Coalescer, request: ProxyRequest, attempt: Attempt, in_task: bool
) -> Flight:
    decision = attempt.decision
    return coalescer.start(
        _upstream_call(request, attempt),
        decision,
        share=decision.lookup,
        client=attempt.upstream.route.client,
        in_task=in_task,
    )


def _upstream_call(request: ProxyRequest, attempt: Attempt) -> UpstreamCall:
    """What `attempt`'s upstream is sent for `request`."""
    route, target = attempt.upstream.route, attempt.upstream.target
    headers = route.headers(upstream_headers(request.headers, target))
    headers["content-type"] = "application/json"
    return UpstreamCall(
        request.route,
        f"{target.base_url}/v1/{request.route}",
        upstream_body(request.route, attempt.body, target.edge_limited),
        headers,
        route.name,
    )


def _named(route: Route) -> list[tuple[bytes, bytes]]:
    return [(b"x-upstream", route.name_bytes)]


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
