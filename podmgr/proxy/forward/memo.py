"""Plans remembered: a repeated cacheable request is parsed and planned once.

Most of a cache hit's CPU time in the proxy's own code went to reading its body as JSON,
planning, and the cache key (BLAKE2b over the body's canonical JSON): `python -m
bench.profile hit --cprofile`. Yet `plan.plan` is a pure function of the request and the
`Snapshot`, and the router hands out the same snapshot object until an upstream changes
(a cool-down starts or ends, the pod's address moves). So a request whose raw body, route,
method, path and Cache-Control header are those of one planned before, under the same
snapshot object, gets that same plan back instead of a new one; its body is the same
parsed object (nothing downstream changes a parsed body: attempts and upstream bodies
are copies).

Only plans that look in the cache are remembered: a repeated body is what a cache hit is
made of, and a body sent once (or with the cache off) gains nothing from a memo. Bodies
up to `MAX_BODY_BYTES`, at most `SIZE` of them, the oldest out first. Headers other than
Cache-Control are not part of the key, because the plan does not read them (the caller's
key is checked before, on every request, by the intake).
"""

from __future__ import annotations

from typing import Any

from podmgr.proxy.forward.effects import Answer
from podmgr.proxy.forward.intake import ProxyRequest
from podmgr.proxy.forward.plan import Plan, Snapshot, plan

__all__ = ["PlanMemo"]

SIZE = 1024
MAX_BODY_BYTES = 64 * 1024

_Key = tuple[bytes, str, str, str, str | None]


class PlanMemo:
    """Parsed bodies and plans of cacheable requests seen lately (module docstring)."""

    def __init__(self, size: int = SIZE, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._size = size
        self._max_body_bytes = max_body_bytes
        self.bodies: dict[bytes, dict[str, Any]] = {}  # the intake's parsed JSON, by raw body
        self._plans: dict[_Key, tuple[Snapshot, Plan]] = {}

    def plan(self, request: ProxyRequest, snapshot: Snapshot) -> Plan:
        """`plan(request, snapshot)`, from the memo when it holds it for this snapshot."""
        if request.body is None or snapshot.cache_mode == "off":
            return plan(request, snapshot)  # nothing it plans would be remembered
        key = (request.raw, request.route, request.method, request.path, request.cache_control)
        known = self._plans.get(key)
        if known is not None and known[0] is snapshot:
            return known[1]
        decided = plan(request, snapshot)
        if _looks_in_cache(decided) and len(request.raw) <= self._max_body_bytes:
            self._remember(key, request.body, snapshot, decided)
        return decided

    def _remember(self, key: _Key, body: dict[str, Any], snapshot: Snapshot, decided: Plan) -> None:
        plans, bodies = self._plans, self.bodies
        if key not in plans and len(plans) >= self._size:
            oldest = next(iter(plans))
            del plans[oldest]
            bodies.pop(oldest[0], None)
        plans[key] = (snapshot, decided)
        bodies[key[0]] = body


def _looks_in_cache(decided: Plan) -> bool:
    action = decided.action
    return isinstance(action, Answer) and action.attempts[0].decision.lookup
