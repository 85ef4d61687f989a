"""`/v2/network-volumes[/{id}]`: create, list, get and delete simulated network volumes.

RunPod REST API v2 (openapi.json): listNetworkVolumes -> ListNetworkVolumesResponse
`{"networkVolumes": [...]}`; createNetworkVolume with CreateNetworkVolumeRequest (`name`,
`size` 10..4096 GB, `dataCenter`, optional `type` STANDARD|HIGH_PERFORMANCE,
`additionalProperties: false`) -> 201 NetworkVolume; getNetworkVolume -> NetworkVolume, 404
when unknown; deleteNetworkVolume -> 204. Deleting a volume a live pod mounts is refused
with 400 (undocumented). The volumes themselves: podmgr/sim/volumes.py.
"""

from __future__ import annotations

from typing import Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from podmgr.sim.operations import SimApiError
from podmgr.sim.v2.bodies import violations
from podmgr.sim.v2.intake import route
from podmgr.sim.v2.problems import json_answer, problem
from podmgr.sim.volumes import NETWORK_VOLUME_NOT_FOUND, SimVolume
from podmgr.sim.world import WORLD, SimWorld

__all__ = ["volume_routes"]

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class _CreateRequest(BaseModel):
    """CreateNetworkVolumeRequest."""

    model_config = ConfigDict(extra="forbid")
    name: StrictStr = Field(min_length=1)
    size: StrictInt = Field(ge=10, le=4096)
    dataCenter: StrictStr = Field(min_length=1)
    type: Literal["STANDARD", "HIGH_PERFORMANCE"] = "STANDARD"


def _find(world: SimWorld, volume_id: str) -> SimVolume:
    volume = world.volumes.get(volume_id)
    if volume is None:
        raise SimApiError("not_found", NETWORK_VOLUME_NOT_FOUND)
    return volume


def _new_id(world: SimWorld) -> str:
    while True:
        volume_id = "".join(world.rng.choice(_ID_ALPHABET) for _ in range(10))
        if volume_id not in world.volumes:
            return volume_id


async def create_volume(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    try:
        data = _CreateRequest.model_validate(orjson.loads(await request.read()))
    except orjson.JSONDecodeError:
        return problem(422, "Request validation failed.", errors=["$: the body is not JSON"])
    except ValidationError as error:
        return problem(422, "Request validation failed.", errors=violations(error))
    volume = SimVolume(_new_id(world), data.name, data.size, data.dataCenter, type=data.type)
    world.volumes[volume.id] = volume
    return json_answer(volume.to_rest(), 201)


async def list_volumes(request: web.Request) -> web.StreamResponse:
    volumes = request.app[WORLD].volumes.values()
    return json_answer({"networkVolumes": [v.to_rest() for v in volumes]})


async def get_volume(request: web.Request) -> web.StreamResponse:
    return json_answer(_find(request.app[WORLD], request.match_info["id"]).to_rest())


async def delete_volume(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    volume = _find(world, request.match_info["id"])
    if any(p.spec.network_volume_id == volume.id for p in world.fleet.live()):
        raise SimApiError("bad_request", "network volume is mounted by a pod")
    del world.volumes[volume.id]
    return web.Response(status=204)


def volume_routes() -> list[web.RouteDef]:
    path = "/v2/network-volumes"
    return [
        web.post(path, route("volume_create", True, create_volume)),
        web.get(path, route("volume_list", False, list_volumes)),
        web.get(path + "/{id}", route("volume_get", False, get_volume)),
        web.delete(path + "/{id}", route("volume_delete", True, delete_volume)),
    ]
