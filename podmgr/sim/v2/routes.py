"""The REST route table: every `/v2/...` route, and `/v1/...` answering 410 Gone.

REST API v1 "was retired on November 15, 2026" (RunPod docs api-reference/overview.mdx;
api-reference-v2/migrate-from-v1.mdx: "REST API v1 is deprecated and will be retired on
November 15, 2026"). What v1 answers since is undocumented: the simulator answers every
`/v1/...` path, any method, 410 with a problem body pointing at v2, without checking the
key, and counts it (`/_sim/requests` "v1") so a test can fail when a call leaves v2.
"""

from __future__ import annotations

from aiohttp import web

from podmgr.sim.v2.billing import billing_routes
from podmgr.sim.v2.catalog import catalog_routes
from podmgr.sim.v2.logs import log_routes
from podmgr.sim.v2.pods import pod_routes
from podmgr.sim.v2.problems import problem
from podmgr.sim.v2.volumes import volume_routes
from podmgr.sim.world import WORLD

__all__ = ["V1_GONE_DETAIL", "rest_routes"]

V1_GONE_DETAIL = (
    "REST API v1 was retired on November 15, 2026; use REST API v2 at https://api.runpod.io/v2"
)


async def v1_gone(request: web.Request) -> web.StreamResponse:
    request.app[WORLD].v1_requests += 1
    return problem(410, V1_GONE_DETAIL)


def rest_routes() -> list[web.RouteDef]:
    return [
        *pod_routes(),
        *log_routes(),
        *catalog_routes(),
        *billing_routes(),
        *volume_routes(),
        web.route("*", "/v1/{tail:.*}", v1_gone),
    ]
