"""Which upstream answers a request: the ordered `upstreams`, their availability and cool-downs.

A `Router` holds one `Route` per configured upstream, each with its own `Transport` (so
its timeouts are its own) and its own counters. `snapshot()` says, in config order, where
each route sends now and whether it is available: the pod when the watchdog's state file
names a ready pod, any other upstream unless it is cooling down. The request's plan
(`forward/plan.py`) picks the routes serving its model from it; the handler tries them in
that order and moves on only while nothing has reached the client.

Cool-down (LiteLLM's `allowed_fails` / `cooldown_time` are the anchor): an upstream that
failed `allowed_fails` times within `cooldown_seconds` is skipped for `cooldown_seconds`.
The config always names at least one upstream (an old `upstream_url` is read as one
`openai` entry, a config with neither as the pod), so a lone upstream is a route like any
other: its cache keys name it, and it may cool down (the plan still tries it when it is
the only one).

No key appears in anything this module shows (`view()` is what /health prints).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from podmgr.config.upstreams import UpstreamSpec
from podmgr.proxy.cache.key import cache_scope
from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.upstream.kinds import kind_of
from podmgr.proxy.upstream.resolver import Upstream, UpstreamResolver
from podmgr.proxy.upstream.transport import Transport

__all__ = ["Route", "Router", "UpstreamState", "retryable"]

# Failures after which the next upstream may be tried (nothing has reached the client).
_RETRYABLE_KINDS = frozenset({"connect", "timeout", "dropped", "upstream_auth", "upstream_429"})


def retryable(failure: ProxyFailure) -> bool:
    """Connect error, timeout, a rejected key, 429 or any 5xx: another upstream may do."""
    kind = failure.kind
    return kind in _RETRYABLE_KINDS or kind.startswith("upstream_5")


@dataclass
class RouteStats:
    """What one upstream did: answers, errors, latency, tokens, and its cool-down."""

    requests: int = 0
    errors: int = 0
    latency_total: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_ok_at: float | None = None
    last_error_at: float | None = None
    last_error: str | None = None
    cooldown_until: float = 0.0
    recent_fails: deque[float] = field(default_factory=deque)


class Route:
    """One upstream: its spec, its transport, its key and its counters."""

    def __init__(self, spec: UpstreamSpec, client: Transport, key: str | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.name_bytes = spec.name.encode()  # as the X-Upstream header of every answer says it
        self.client = client
        self.stats = RouteStats()
        self.kind = kind_of(spec, key)
        self._extra_headers = dict(spec.headers)

    @property
    def is_pod(self) -> bool:
        """The watchdog's pod (kinds.ManagedPod)."""
        return self.kind.managed

    def target(self, resolver: UpstreamResolver) -> Upstream:
        """Where this route sends now (the pod's entry may say why it cannot)."""
        return self.kind.target(resolver)

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        """`headers` with this upstream's extra headers added."""
        if self._extra_headers:
            headers.update(self._extra_headers)
        return headers

    def cache_scope(self, model: str | None) -> str:
        """What the cache key adds so an answer is never replayed as another upstream's or
        another model's: the upstream's name and the model it was asked for."""
        return cache_scope(self.name, self.spec.upstream_model(model) if model else "")

    def price(self) -> float:
        """USD spent on tokens here so far (0 without prices)."""
        stats, spec = self.stats, self.spec
        cost = stats.prompt_tokens * (spec.price_input_per_million or 0.0)
        cost += stats.completion_tokens * (spec.price_output_per_million or 0.0)
        return cost / 1_000_000


@dataclass(frozen=True, slots=True)
class UpstreamState:
    """One route as a request sees it: where it sends now, and whether it is available."""

    route: Route
    target: Upstream
    available: bool


class Router:
    """The routes in order, and the rules of choosing among them (module docstring)."""

    def __init__(
        self,
        routes: list[Route],
        resolver: UpstreamResolver,
        allowed_fails: int = 3,
        cooldown_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routes = routes
        self.resolver = resolver
        self.allowed_fails = allowed_fails
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self.by_name = {route.name: route for route in routes}
        self._seen: dict[str, Upstream] | None = None
        self._states: tuple[UpstreamState, ...] = ()
        self._fresh_until = 0.0

    @property
    def pod_route(self) -> Route | None:
        """The managed pod's route, if there is one."""
        return next((route for route in self.routes if route.is_pod), None)

    @property
    def several(self) -> bool:
        """More than one route: `GET /v1/models` is a union, the dashboard lists each."""
        return len(self.routes) > 1

    def first_target(self) -> Upstream:
        """Where the pod's route sends now, or the first route's when no pod is among them
        (what /health shows as the upstream)."""
        route = self.pod_route or self.routes[0]
        return route.target(self.resolver)

    def available(self, route: Route, now: float | None = None) -> bool:
        return route.kind.available(
            route.target(self.resolver),
            route.stats.cooldown_until,
            self._clock() if now is None else now,
        )

    def snapshot(self) -> tuple[UpstreamState, ...]:
        """Each route, where it sends now and whether it is available (for `plan`).

        The same tuple is handed out until the resolver's upstream changes, a cool-down
        starts or one ends: building it for every request cost about a tenth of a cache
        hit's CPU time (measured in process with cProfile)."""
        now = self._clock()
        if self.resolver.targets is self._seen and now < self._fresh_until:
            return self._states
        self._seen = self.resolver.targets
        self._states = tuple(
            UpstreamState(route, route.target(self.resolver), self.available(route, now))
            for route in self.routes
        )
        resting = [r.stats.cooldown_until for r in self.routes if r.stats.cooldown_until > now]
        self._fresh_until = min(resting, default=math.inf)
        return self._states

    def succeeded(self, route: Route, seconds: float) -> None:
        stats = route.stats
        stats.requests += 1
        stats.latency_total += seconds
        stats.last_ok_at = time.time()
        stats.recent_fails.clear()

    def failed(self, route: Route, failure: ProxyFailure, seconds: float) -> None:
        """Count a failure; an upstream failing too often starts a cool-down."""
        stats = route.stats
        stats.requests += 1
        stats.errors += 1
        stats.latency_total += seconds
        stats.last_error_at = time.time()
        stats.last_error = failure.kind
        if route.is_pod or not retryable(failure):
            return
        now = self._clock()
        fails = stats.recent_fails
        fails.append(now)
        while fails and fails[0] < now - self.cooldown_seconds:
            fails.popleft()
        if len(fails) >= self.allowed_fails:
            stats.cooldown_until = now + self.cooldown_seconds
            fails.clear()
            self._fresh_until = 0.0  # the next snapshot shows the cool-down

    def count_usage(self, name: str, prompt: int, completion: int) -> None:
        route = self.by_name.get(name)
        if route is not None:
            route.stats.prompt_tokens += prompt
            route.stats.completion_tokens += completion

    def view(self) -> list[dict[str, Any]]:
        """Each upstream's state for /health and the dashboard (no keys, host only)."""
        now = self._clock()
        views = []
        for route in self.routes:
            stats = route.stats
            target = route.target(self.resolver)
            views.append(
                {
                    "name": route.name,
                    "kind": route.spec.kind,
                    "url_host": target.url_host,
                    "available": self.available(route, now),
                    "cooling_down_seconds": round(max(0.0, stats.cooldown_until - now), 1),
                    "requests": stats.requests,
                    "errors": stats.errors,
                    "mean_latency_seconds": (
                        round(stats.latency_total / stats.requests, 4) if stats.requests else None
                    ),
                    "prompt_tokens": stats.prompt_tokens,
                    "completion_tokens": stats.completion_tokens,
                    "cost_usd": round(route.price(), 6),
                    "last_ok_at": stats.last_ok_at,
                    "last_error_at": stats.last_error_at,
                    "last_error": stats.last_error,
                }
            )
        return views


def build_router(
    specs: list[UpstreamSpec],
    resolver: UpstreamResolver,
    make_transport: Callable[[UpstreamSpec], Transport],
    keys: dict[str, str | None],
    allowed_fails: int,
    cooldown_seconds: float,
) -> Router:
    """The router for a config's `upstreams` (never empty after load), in their order."""
    routes = [Route(spec, make_transport(spec), keys.get(spec.name)) for spec in specs]
    return Router(routes, resolver, allowed_fails, cooldown_seconds)
