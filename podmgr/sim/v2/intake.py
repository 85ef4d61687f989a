"""One REST v2 request's way in: key, rate limit, permission, call faults, then the work.

Order of play, and why:
1. The bearer key must be one the simulator knows (an account key, a read-only key or a
   pod-scoped key, podmgr/sim/podkeys.py), else 401 with no rate-limit headers: the
   headers are "returned on responses to authenticated requests" (RunPod REST API v2,
   RateLimitHeader) and UnauthorizedError lists none.
2. The account's budget is spent (podmgr/sim/ratelimit.py); over it: 429 with
   `Retry-After`. Every later answer, errors included, carries `RateLimit` and
   `RateLimit-Policy` (the document puts them on every status of every path).
3. Permission: a read-only key may not change anything (403, "access denied": RunPod
   docs get-started/api-keys.mdx "Read access without write access", ForbiddenError's
   example); a pod-scoped key only what podkeys.py grants.
4. Call faults: `rate_limited` (429 whatever the counts), then the faults both APIs share
   (operations.draw_call_faults: `api_error` pages, `api_something_went_wrong` 500,
   `api_slow`, and the pod strikes).
5. The handler; a SimApiError it raises becomes its problem answer (problems.py).

`op` names the operation for the faults' `field` parameter; for `POST .../action` it is
the action asked for (start, stop, restart, terminate).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from podmgr.logs import get_logger
from podmgr.sim import operations, podkeys
from podmgr.sim.operations import SimApiError
from podmgr.sim.v2.problems import problem, problem_of
from podmgr.sim.world import WORLD, SimWorld

__all__ = ["RATE_HEADERS", "Handler", "api_key", "route"]

_log = get_logger("sim.v2")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OpOf = Callable[[web.Request], Awaitable[str]]
# Where the rate-limit headers wait for a handler that prepares its own response (SSE).
RATE_HEADERS = "podmgr_sim_rate_headers"
_ACTIONS = frozenset({"start", "stop", "restart", "terminate"})


def api_key(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _known(world: SimWorld, key: str | None) -> bool:
    settings = world.settings
    return key is not None and (
        key in settings.api_keys or key in settings.read_only_keys or key in world.pod_keys
    )


async def action_op(request: web.Request) -> str:
    """The action a `POST /v2/pods/{id}/action` body asks for ("action" if none)."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return "action"
    action = body.get("action") if isinstance(body, dict) else None
    return action if isinstance(action, str) and action in _ACTIONS else "action"


def _permit(world: SimWorld, key: str, op: str, mutation: bool, pod_id: str | None) -> None:
    if key in world.pod_keys:
        podkeys.check_pod_key(world, key, op, pod_id)
    elif mutation and key in world.settings.read_only_keys:
        raise SimApiError("forbidden", f"access denied: a read-only key may not {op}")


def _rate_limited(world: SimWorld, op: str) -> int | None:
    """Fault `rate_limited`: its Retry-After seconds when it fires for `op`."""
    fault = world.faults.draw(
        "rate_limited", lambda params: not params.get("field") or params["field"] == op
    )
    if fault is None:
        return None
    _log.info("fault_fired", fault="rate_limited", op=op)
    return max(1, math.ceil(float(fault.spec.params["seconds"])))


def _too_many(seconds: int, window: str, headers: dict[str, str]) -> web.Response:
    detail = f"rate limit exceeded for the {window} window"
    return problem(429, detail, headers={**headers, "Retry-After": str(seconds)})


def route(op: str | OpOf, mutation: bool, work: Handler) -> Handler:
    """`work` behind the steps of the module docstring."""

    async def handle(request: web.Request) -> web.StreamResponse:
        world = request.app[WORLD]
        world.rest_requests += 1
        key = api_key(request)
        if not _known(world, key):
            detail = "missing bearer token" if key is None else "invalid bearer token"
            return problem(401, detail)
        assert key is not None
        verdict = world.rate.admit(world.now())
        if not verdict.allowed:
            _log.info("rate_limited", window=verdict.window, retry_after=verdict.retry_after)
            return _too_many(verdict.retry_after, verdict.window, verdict.headers)
        request[RATE_HEADERS] = verdict.headers
        name = op if isinstance(op, str) else await op(request)
        answer = await _answer(request, world, key, name, mutation, work)
        if not answer.prepared:
            answer.headers.update(verdict.headers)
        return answer

    return handle


async def _answer(
    request: web.Request, world: SimWorld, key: str, op: str, mutation: bool, work: Handler
) -> web.StreamResponse:
    try:
        _permit(world, key, op, mutation, request.match_info.get("id"))
        seconds = _rate_limited(world, op)
        if seconds is not None:
            return _too_many(seconds, "minute", {})
        calls = operations.draw_call_faults(world, {op})
        if calls.error is not None:
            raise calls.error
        try:
            return await work(request)
        finally:
            if calls.slow_seconds:
                await asyncio.sleep(calls.slow_seconds)
    except SimApiError as error:
        _log.info("rest_error", op=op, kind=error.kind, message=error.message)
        return problem_of(error)
