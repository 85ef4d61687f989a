"""Plan: what to do with one `/v1` request, decided by a pure function (no I/O, no awaits).

`plan(request, snapshot)` turns the request (`intake.ProxyRequest`) and a `Snapshot` of the
upstreams and cache settings into a `Plan`: whether to wake the pod, and one action
(`effects.py`): `Answer` with the upstreams to try in order, each with the body it gets and
the cache's decision for it; `PassThrough` to one upstream; `ListModels` from several; or
`Refuse` when no upstream can take the request (why: the pod's failure, or no upstream
serving the model). The plan only builds
these values; the handler carries them out.

The rules, in order:
- the upstreams serving the request's model (any, for a request without one) that are
  available now, in config order; when every one of them is cooling down (and the pod is
  not ready), the first non-pod one anyway: a request with nowhere else to go gets a real
  attempt rather than failing without a call;
- a cacheable request (a JSON body) may try each of them in turn; any other request goes
  to the first only, except `GET /v1/models` with several upstreams, which asks them all;
- with wake on request, a request a pod serves wakes that pod (by its name) when it is
  not ready; no other pod is woken;
- the cache key of an attempt covers the upstream and the model asked of it (cache.key),
  and an answer from an upstream other than the pod is stored only with
  `cache_fallback_answers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from podmgr.proxy.cache.key import CacheDecision, CacheMode, decide
from podmgr.proxy.forward.effects import (
    Action,
    Answer,
    Attempt,
    ListModels,
    PassThrough,
    Refuse,
)
from podmgr.proxy.forward.intake import ProxyRequest
from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.upstream.router import UpstreamState

__all__ = ["ROUTINGS_KEPT", "Plan", "Routing", "Snapshot", "plan"]

ROUTINGS_KEPT = 256


class Routing(NamedTuple):
    """Where a request for one model can go under one snapshot (the first rule above):
    the upstreams serving it in config order, the pod among them, and the ones chosen to
    try."""

    serving: tuple[UpstreamState, ...]
    pod: UpstreamState | None
    chosen: tuple[UpstreamState, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the plan reads besides the request: the upstreams as they are now, why the pod
    cannot answer (if it cannot), and the cache settings.

    A snapshot never changes (the handler makes a new one when the router's upstreams
    change), so the `Routing` of each model is worked out once per snapshot and kept
    (`routing`); at most `ROUTINGS_KEPT` models, so clients naming many cannot grow it."""

    upstreams: tuple[UpstreamState, ...]
    pod_failure: ProxyFailure | None
    can_wake: bool
    cache_mode: CacheMode
    cache_fallbacks: bool
    several: bool
    _routings: dict[str | None, Routing] = field(default_factory=dict, compare=False, repr=False)

    def routing(self, model: str | None) -> Routing:
        """The `Routing` of a request for `model` (any upstream's, for None)."""
        known = self._routings.get(model)
        if known is None:
            if len(self._routings) >= ROUTINGS_KEPT:
                self._routings.clear()
            known = self._routings[model] = _routing(self.upstreams, model)
        return known


class Plan(NamedTuple):
    """What to do: wake the pod `wake_pod` first (or not: `wake`), then carry out
    `action`. (A named tuple: immutable, and made for every request at a third of a frozen
    dataclass's cost.)"""

    action: Action
    wake: bool
    wake_pod: str | None = None


def plan(request: ProxyRequest, snapshot: Snapshot) -> Plan:
    """The plan for `request` (module docstring)."""
    model = request.model
    serving, pod, chosen = snapshot.routing(model)
    union = (
        request.method == "GET" and snapshot.several and request.path.rstrip("/") == "/v1/models"
    )
    wake_pod = None
    if snapshot.can_wake and not union and pod is not None and not pod.target.ready:
        wake_pod = pod.route.spec.pod_name
    wake = wake_pod is not None
    listed = (_listed(serving) or chosen) if union else []
    if listed:
        return Plan(ListModels(tuple(listed)), False)
    if not chosen:
        failure = pod.target.failure if pod is not None else snapshot.pod_failure
        name = pod.route.spec.pod_name if pod is not None else None
        return Plan(Refuse(model, failure if serving else None, name), wake, wake_pod)
    body = request.body
    if body is None:
        return Plan(PassThrough(chosen[0]), wake, wake_pod)
    attempts = tuple([_attempt(request, body, state, snapshot) for state in chosen])
    return Plan(Answer(attempts), wake, wake_pod)


def _routing(upstreams: tuple[UpstreamState, ...], model: str | None) -> Routing:
    serving = tuple([state for state in upstreams if state.route.spec.serves(model)])
    pod = next((state for state in serving if state.route.is_pod), None)
    return Routing(serving, pod, _chosen(serving))


def _listed(serving: tuple[UpstreamState, ...]) -> list[UpstreamState]:
    """What `GET /v1/models` asks: the available routes and every managed pod with its own
    model list (a cold pod's model is listed too: a request for it wakes it). With none of
    them, `plan` asks what `_chosen` gives (a resting fallback), as before."""
    return [s for s in serving if s.available or (s.route.is_pod and s.route.spec.models != "*")]


def _chosen(serving: tuple[UpstreamState, ...]) -> tuple[UpstreamState, ...]:
    """The available routes; if none, the first resting non-pod one (module docstring)."""
    chosen = tuple([state for state in serving if state.available])
    if chosen:
        return chosen
    return tuple([state for state in serving if not state.route.is_pod][:1])


def _attempt(
    request: ProxyRequest, body: dict[str, Any], state: UpstreamState, snapshot: Snapshot
) -> Attempt:
    """One cacheable attempt: the body with the upstream's name for the model, and the
    cache's decision for this upstream."""
    route, model = state.route, request.model
    decision = decide(
        request.route,
        body,
        request.cache_control,
        snapshot.cache_mode,
        route.cache_scope(model),
    )
    if decision.store and not (route.is_pod or snapshot.cache_fallbacks):
        decision = CacheDecision(decision.key, decision.lookup, store=False)
    if model is not None and route.spec.model_map:
        body = {**body, "model": route.spec.upstream_model(model)}
    return Attempt(state, body, decision)
