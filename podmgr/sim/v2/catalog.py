"""`GET /v2/catalog/gpus` and `/v2/catalog/gpus/{id}`: GPU types, prices and stock.

RunPod REST API v2 (openapi.json, listGpuTypes / getGpuType, GpuType, ListGpuTypesResponse,
AvailabilityLevel, CudaVersionAvailability, DataCenterAvailability; parameters
CatalogIncludeParam, GpuProductFilter, GpuCountFilter, GpuCloudFilter, CudaVersionsFilter,
MinCudaVersionFilter): each type has `id name pool manufacturer memory secure community
price{secure, community} maxCount{secure, community}` from the simulator's catalog
(podmgr/sim/catalog.py). `pool` is null and `price.serverless` absent: the simulator has
no serverless pools ("Null if GPU is not in a serverless pool"). The document requires a
number for `price.community` even where the type is not in that cloud; the simulator sends
0.0 there (RunPod's value is undocumented).

With `include=AVAILABILITY` (`product` is "required with include=AVAILABILITY, and valid
only with it (400 either way)"; so are `count`, `cloud`, `cudaVersions`,
`minCudaVersion`): `availability` from `--gpu-stock` (HIGH when not given), NONE where the
scope rules the type out (not in that `cloud`, default SECURE; `count` above its
`maxCount`; no host CUDA version in the `cudaVersions` / `minCudaVersion` scope, which
are mutually exclusive: 400); `cudaVersions` lists the hosts' versions in scope, each
`available` when the type has stock; `dataCenters` "omitted entirely when the
configuration is unavailable everywhere". Malformed filter values are 422. The `capacity`
fault does not touch the catalog: "treat the catalog as a way to order your candidates,
not as a reservation" (createPod). An unknown id on the single-type path is 404.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from podmgr.cuda import cuda_key
from podmgr.sim.catalog import GPU_TYPES, GpuType, find_gpu_type, stock_of
from podmgr.sim.hosts import host_versions
from podmgr.sim.operations import SimApiError
from podmgr.sim.v2.intake import route
from podmgr.sim.v2.problems import json_answer, problem
from podmgr.sim.world import WORLD, SimSettings

__all__ = ["catalog_routes"]

_FILTERS = ("product", "count", "cloud", "cudaVersions", "minCudaVersion", "countryCodes")
_VERSION = re.compile(r"^\d+\.\d+$")
_FLOOR = re.compile(r"^\d+(\.\d+)?$")


class _Malformed(Exception):
    """A filter value the document's pattern refuses: 422."""


def _base(gpu: GpuType) -> dict[str, Any]:
    max_count = gpu.max_gpu_count
    return {
        "id": gpu.id,
        "name": gpu.display_name,
        "pool": None,
        "manufacturer": "NVIDIA",
        "memory": gpu.memory_in_gb,
        "secure": gpu.secure_price is not None,
        "community": gpu.community_price is not None,
        "price": {"secure": gpu.secure_price or 0.0, "community": gpu.community_price or 0.0},
        "maxCount": {
            "secure": max_count if gpu.secure_price is not None else 0,
            "community": max_count if gpu.community_price is not None else 0,
        },
    }


def _scope(query: Mapping[str, str]) -> dict[str, Any] | None:
    """The availability scope asked for, or None when availability was not asked for."""
    include = query.get("include")
    if include is None:
        if any(name in query for name in _FILTERS):
            raise SimApiError("bad_request", "filters are valid only with include=AVAILABILITY")
        return None
    if include != "AVAILABILITY":
        raise _Malformed(f"$.include: value must be one of ['AVAILABILITY'], not {include!r}")
    products = [p for p in query.get("product", "").split(",") if p]
    if not products:
        raise SimApiError("bad_request", "product is required with include=AVAILABILITY")
    if any(p not in ("POD", "CLUSTER", "SERVERLESS") for p in products):
        raise _Malformed("$.product: value must be one of ['POD', 'CLUSTER', 'SERVERLESS']")
    count = query.get("count", "1")
    cloud = query.get("cloud", "SECURE")
    if not count.isdigit() or int(count) < 1:
        raise _Malformed("$.count: must be an integer >= 1")
    if cloud not in ("SECURE", "COMMUNITY"):
        raise _Malformed("$.cloud: value must be one of ['SECURE', 'COMMUNITY']")
    exact = [v for v in query.get("cudaVersions", "").split(",") if v]
    floor = query.get("minCudaVersion")
    if exact and floor is not None:
        raise SimApiError("bad_request", "cudaVersions and minCudaVersion are mutually exclusive")
    if any(not _VERSION.match(v) for v in exact) or (floor and not _FLOOR.match(floor)):
        raise _Malformed("$.cudaVersions: entries must look like 12.8; minCudaVersion like 12")
    return {"count": int(count), "cloud": cloud, "exact": exact, "floor": floor}


def _in_scope(version: str, scope: Mapping[str, Any]) -> bool:
    if scope["exact"]:
        return version in scope["exact"]
    floor = scope["floor"]
    if floor is None:
        return True
    return cuda_key(version) >= cuda_key(floor if "." in floor else floor + ".0")


def _availability(gpu: GpuType, settings: SimSettings, scope: Mapping[str, Any]) -> dict[str, Any]:
    body = _base(gpu)
    versions = [v for v in host_versions(settings.host_cuda) if _in_scope(v, scope)]
    level = stock_of(settings.gpu_stock, gpu.id)
    offered = body["maxCount"]["secure" if scope["cloud"] == "SECURE" else "community"]
    if not versions or scope["count"] > offered:
        level = "NONE"
    body["availability"] = level
    body["cudaVersions"] = [{"version": v, "available": level != "NONE"} for v in versions]
    if level != "NONE":
        body["dataCenters"] = [{"id": "SIM-1", "name": "Simulator 1", "availability": level}]
    return body


def _render(gpu: GpuType, settings: SimSettings, scope: Mapping[str, Any] | None) -> dict[str, Any]:
    return _base(gpu) if scope is None else _availability(gpu, settings, scope)


async def list_gpus(request: web.Request) -> web.StreamResponse:
    settings = request.app[WORLD].settings
    try:
        scope = _scope(request.query)
    except _Malformed as error:
        return problem(422, "Request validation failed.", errors=[str(error)])
    return json_answer({"gpus": [_render(gpu, settings, scope) for gpu in GPU_TYPES]})


async def get_gpu(request: web.Request) -> web.StreamResponse:
    settings = request.app[WORLD].settings
    try:
        scope = _scope(request.query)
    except _Malformed as error:
        return problem(422, "Request validation failed.", errors=[str(error)])
    gpu = find_gpu_type(request.match_info["id"])
    if gpu is None:
        raise SimApiError("not_found", "GPU type not found")
    return json_answer(_render(gpu, settings, scope))


def catalog_routes() -> list[web.RouteDef]:
    return [
        web.get("/v2/catalog/gpus", route("catalog", False, list_gpus)),
        web.get("/v2/catalog/gpus/{id}", route("catalog", False, get_gpu)),
    ]
