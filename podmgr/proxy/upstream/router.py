"""Which upstream answers a request: the ordered `upstreams`, their availability and cool-downs.

A `Router` holds one `Route` per configured upstream, each with its own `Transport` (so
its timeouts are its own) and its own counters. `candidates(model)` lists, in config
order, the routes that serve `model` and are available now: the pod when the watchdog's
state file names a ready pod, any other upstream unless it is cooling down. The handler
tries them in that order and moves on only while nothing has reached the client.

Cool-down (LiteLLM's `allowed_fails` / `cooldown_time` are the anchor): an upstream that
failed `allowed_fails` times within `cooldown_seconds` is skipped for `cooldown_seconds`.
When every upstream serving the model is cooling down (and the pod is not ready), the
first of them is tried anyway: a request with nowhere else to go gets a real attempt
rather than failing without a call.

A config without `upstreams` (today's) gets one route, `legacy`: the resolver's upstream
(the pod, or `upstream_url`), with no cool-down and cache keys exactly as before.

No key appears in anything this module shows (`view()` is what /health prints).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from podmgr.config.upstreams import UpstreamSpec
from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.upstream.resolver import Upstream, UpstreamResolver, _edge_limited, root_url
from podmgr.proxy.upstream.transport import Transport

__all__ = ["Route", "Router", "retryable"]

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

    def __init__(
        self, spec: UpstreamSpec, client: Transport, key: str | None, legacy: bool = False
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.client = client
        self.legacy = legacy
        self.stats = RouteStats()
        self._static: Upstream | None = None
        if spec.base_url is not None:
            auth = f"Bearer {key}".encode() if key else None
            url = spec.base_url
            self._static = Upstream(root_url(url), auth, None, None, _edge_limited(url))
        self._extra_headers = dict(spec.headers)

    @property
    def is_pod(self) -> bool:
        return self.spec.kind == "pod"

    def target(self, resolver: UpstreamResolver) -> Upstream:
        """Where this route sends now (the pod's entry may say why it cannot)."""
        if self._static is not None:
            return self._static
        return resolver.current

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        """`headers` with this upstream's extra headers added."""
        if self._extra_headers:
            headers.update(self._extra_headers)
        return headers

    def cache_scope(self, model: str | None) -> str | None:
        """What the cache key adds so an answer is never replayed as another upstream's or
        another model's: the upstream's name and the model it was asked for (legacy: none)."""
        if self.legacy:
            return None
        upstream_model = self.spec.upstream_model(model) if model else ""
        return f"{self.name}\0{upstream_model}"

    def price(self) -> float:
        """USD spent on tokens here so far (0 without prices)."""
        stats, spec = self.stats, self.spec
        cost = stats.prompt_tokens * (spec.price_input_per_million or 0.0)
        cost += stats.completion_tokens * (spec.price_output_per_million or 0.0)
        return cost / 1_000_000


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

    @property
    def pod_route(self) -> Route | None:
        """The managed pod's route (the legacy route too), if there is one."""
        return next((route for route in self.routes if route.is_pod), None)

    @property
    def legacy(self) -> bool:
        return len(self.routes) == 1 and self.routes[0].legacy

    def available(self, route: Route, now: float | None = None) -> bool:
        if route.is_pod or route.legacy:
            return route.target(self.resolver).ready
        return route.stats.cooldown_until <= (self._clock() if now is None else now)

    def candidates(self, model: str | None) -> list[tuple[Route, Upstream]]:
        """Routes serving `model` that are available now, in order (see module docstring)."""
        now = self._clock()
        serving = [route for route in self.routes if route.spec.serves(model)]
        chosen = [(r, r.target(self.resolver)) for r in serving if self.available(r, now)]
        if not chosen:
            # Every non-pod upstream cooling down: try the first rather than fail untried.
            resting = [r for r in serving if not r.is_pod and not r.legacy]
            if resting:
                chosen = [(resting[0], resting[0].target(self.resolver))]
        return chosen

    def unavailable(self, model: str | None) -> ProxyFailure:
        """The answer when no upstream can take a request for `model`."""
        if any(route.spec.serves(model) for route in self.routes):
            failure = self.resolver.current.failure
            if failure is not None:
                return failure
        return ProxyFailure(
            404,
            f"no configured upstream serves the model {model!r}",
            "invalid_request_error",
            "model_not_found",
            "no_upstream",
        )

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
        if route.legacy or route.is_pod or not retryable(failure):
            return
        now = self._clock()
        fails = stats.recent_fails
        fails.append(now)
        while fails and fails[0] < now - self.cooldown_seconds:
            fails.popleft()
        if len(fails) >= self.allowed_fails:
            stats.cooldown_until = now + self.cooldown_seconds
            fails.clear()

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
    specs: list[UpstreamSpec] | None,
    resolver: UpstreamResolver,
    make_transport: Callable[[UpstreamSpec | None], Transport],
    keys: dict[str, str | None],
    allowed_fails: int,
    cooldown_seconds: float,
    legacy_name: str = "pod",
) -> Router:
    """The router for a config: its `upstreams`, or the one legacy route without them."""
    if specs is None:
        spec = UpstreamSpec.model_validate({"name": legacy_name, "kind": "pod"})
        legacy = Route(spec, make_transport(None), None, True)
        return Router([legacy], resolver)
    routes = [Route(spec, make_transport(spec), keys.get(spec.name)) for spec in specs]
    return Router(routes, resolver, allowed_fails, cooldown_seconds)
