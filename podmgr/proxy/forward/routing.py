"""`GET /v1/models` with several upstreams: the union of what each available one serves.

Each available upstream is asked at once (through its own transport, with its key); a
managed pod with its own model list (from `pods`) is not asked: its model is listed even
while the pod is cold. An upstream with an explicit `models` list contributes those
names (what a client may ask for), one with `models: "*"` the ids it lists itself. The
first upstream to name a model wins; an upstream that fails is left out, and only when
every one fails is the first failure raised (`Refused`, answered by the handler).
`X-Upstream` names the upstreams that answered, comma-separated.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from podmgr.proxy import openai_errors as errors
from podmgr.proxy.forward.asgi import Responder
from podmgr.proxy.forward.relay import JSON_HEADERS
from podmgr.proxy.openai_errors import ProxyFailure, Refused
from podmgr.proxy.upstream.outgoing import upstream_headers
from podmgr.proxy.upstream.resolver import Upstream
from podmgr.proxy.upstream.router import Route, UpstreamState

__all__ = ["models_union"]

_LIMIT = 8 * 1024 * 1024


async def _listed(
    route: Route, upstream: Upstream, client_headers: list[tuple[bytes, bytes]]
) -> list[dict[str, Any]] | ProxyFailure:
    """The models `route` offers, or why it could not say. A managed pod with its own model
    list names it without a call, cold or not (the issue's "every configured model")."""
    if route.is_pod and route.spec.models != "*":
        return _named(route)
    if upstream.base_url is None:
        return upstream.failure or errors.UNREACHABLE
    headers = route.headers(upstream_headers(client_headers, upstream))
    try:
        async with route.client.request(
            "GET", f"{upstream.base_url}/v1/models", b"", headers
        ) as response:
            data = await response.read(_LIMIT)
            if response.status != 200:
                return errors.failure_of(errors.UpstreamStatus(response.status, data))
    except errors.UPSTREAM_FAILURES as error:
        return errors.failure_of(error)
    try:
        listed = orjson.loads(data).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        listed = None
    if not isinstance(listed, list):
        return errors.DROPPED
    entries = [item for item in listed if isinstance(item, dict) and "id" in item]
    if route.spec.models == "*":
        return entries
    return _named(route)


def _named(route: Route) -> list[dict[str, Any]]:
    """The entries of `route`'s own `models` list, as /v1/models shows a model."""
    models = route.spec.models if route.spec.models != "*" else []
    return [{"id": name, "object": "model", "owned_by": route.name} for name in models]


async def models_union(
    upstreams: tuple[UpstreamState, ...], client_headers: list[tuple[bytes, bytes]], out: Responder
) -> None:
    """Answer `GET /v1/models` from `upstreams`, the available ones (module docstring)."""
    results = await asyncio.gather(*(_listed(u.route, u.target, client_headers) for u in upstreams))
    seen: set[str] = set()
    merged: list[dict[str, Any]] = []
    answered: list[str] = []
    first_failure: ProxyFailure | None = None
    for route, result in zip((u.route for u in upstreams), results, strict=True):
        if isinstance(result, ProxyFailure):
            first_failure = first_failure or result
            continue
        answered.append(route.name)
        for entry in result:
            if entry["id"] not in seen:
                seen.add(entry["id"])
                merged.append(entry)
    if not answered:
        raise Refused(first_failure or errors.UNREACHABLE)
    body = orjson.dumps({"object": "list", "data": merged})
    await out.complete(200, body, [*JSON_HEADERS, (b"x-upstream", ",".join(answered).encode())])
