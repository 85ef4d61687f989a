"""`/v1/networkvolumes`: create, list, get and delete simulated network volumes.

RunPod OpenAPI v1: POST /networkvolumes (NetworkVolumeCreateInput: name, size 0..4000 GB,
dataCenterId) answers 200 with the NetworkVolume; GET lists them; GET and DELETE
/networkvolumes/{networkVolumeId} (DELETE answers 204); an unknown id is 404. The volumes
themselves: podmgr/sim/volumes.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from pydantic import BaseModel, Field, StrictInt, ValidationError

from podmgr.sim.operations import SimApiError
from podmgr.sim.volumes import NETWORK_VOLUME_NOT_FOUND, SimVolume
from podmgr.sim.world import WORLD, SimWorld

__all__ = ["network_volume_routes"]

Handler = Callable[[web.Request], Awaitable[web.Response]]
RouteWrapper = Callable[[str, bool, Handler], Handler]
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class _CreateInput(BaseModel):
    """RunPod OpenAPI v1, NetworkVolumeCreateInput."""

    name: str = Field(min_length=1)
    size: StrictInt = Field(ge=0, le=4000)
    dataCenterId: str = Field(min_length=1)


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


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def create_volume(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    try:
        data = _CreateInput.model_validate(orjson.loads(await request.read()))
    except (orjson.JSONDecodeError, ValidationError) as error:
        raise SimApiError("bad_request", f"Invalid input: {error}") from None
    volume = SimVolume(_new_id(world), data.name, data.size, data.dataCenterId)
    world.volumes[volume.id] = volume
    return _json(volume.to_rest())


async def list_volumes(request: web.Request) -> web.Response:
    return _json([v.to_rest() for v in request.app[WORLD].volumes.values()])


async def get_volume(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    return _json(_find(world, request.match_info["volume_id"]).to_rest())


async def delete_volume(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    volume = _find(world, request.match_info["volume_id"])
    if any(p.spec.network_volume_id == volume.id for p in world.fleet.live()):
        raise SimApiError("bad_request", "Network volume is attached to a pod")
    del world.volumes[volume.id]
    return web.Response(status=204)


def network_volume_routes(route: RouteWrapper) -> list[web.RouteDef]:
    """The routes, each wrapped by the REST API's auth and fault handling (`route`)."""
    path = "/v1/networkvolumes"
    return [
        web.post(path, route("volume_create", True, create_volume)),
        web.get(path, route("volume_list", False, list_volumes)),
        web.get(path + "/{volume_id}", route("volume_get", False, get_volume)),
        web.delete(path + "/{volume_id}", route("volume_delete", True, delete_volume)),
    ]
