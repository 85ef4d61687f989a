"""`/v2/pods`, `/v2/pods/{id}` and `/v2/pods/{id}/action`: pods over REST v2.

RunPod REST API v2 (openapi.json): listPods `GET /v2/pods` -> ListPodsResponse `{"pods":
[...]}` (no name filter; `includeClusterPods` accepted and ignored: the simulator has no
clusters); createPod `POST /v2/pods` -> 201 Pod (errors: podmgr/sim/v2/create.py and
problems.py); getPod -> Pod, 404 for an unknown or terminated pod (deletePod: a
terminated pod "no longer appears"); deletePod -> 204; podAction `POST .../action` with
PodActionRequest -> 200 Pod, 204 for terminate, 409 when the action is not in the pod's
`actions` (podview.py ACTIONS).

Actions: `start` boots an EXITED pod (operations.start: balance and `resume_no_gpus`
apply) or gives an ERROR pod a fresh container; the fault `zero_gpus` makes a start come
back with zero GPUs. `stop` -> EXITED. `restart` restarts the RUNNING container in place
(operations.restart). `terminate` as DELETE.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from podmgr.logs import get_logger
from podmgr.sim import operations, podkeys
from podmgr.sim.operations import SimApiError
from podmgr.sim.pods import SimPod
from podmgr.sim.runpod_stops import BALANCE_MESSAGE, PAYMENT_REQUIRED, balance_at_zero
from podmgr.sim.v2.bodies import PodActionRequest, violations
from podmgr.sim.v2.create import Unprocessable, create_order, read_create
from podmgr.sim.v2.intake import action_op, api_key, route
from podmgr.sim.v2.podview import ACTIONS, pod_body, pod_status
from podmgr.sim.v2.problems import json_answer, problem
from podmgr.sim.world import WORLD, SimWorld

__all__ = ["pod_routes"]

_log = get_logger("sim.v2.pods")


async def _json_body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise Unprocessable(["$: the body is not JSON"]) from None


async def create_pod(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    try:
        data = read_create(await _json_body(request))
    except Unprocessable as error:
        return problem(422, "Request validation failed.", errors=error.errors)
    order = create_order(data, world.settings.start_command_json)
    return json_answer(pod_body(operations.create(world, order), world), 201)


async def list_pods(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    return json_answer({"pods": [pod_body(pod, world) for pod in operations.list_pods(world)]})


async def get_pod(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    return json_answer(pod_body(operations.get(world, request.match_info["id"]), world))


async def delete_pod(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    by = podkeys.ended_by(world, api_key(request))
    operations.terminate(world, request.match_info["id"], by=by)
    return web.Response(status=204)


def _start(world: SimWorld, pod: SimPod, status: str) -> SimPod:
    if status == "ERROR":  # a fresh container on the same host, billing on
        if balance_at_zero(world):
            raise SimApiError("bad_request", BALANCE_MESSAGE, rest_status=PAYMENT_REQUIRED)
        world.fleet.reset(pod)
        operations.after_apply(world, "start", pod)  # runpodctl#45: applied, then an error
        return pod
    pod = operations.start(world, pod.id)
    fault = world.faults.draw("zero_gpus", lambda p: p.get("pod_id") in (None, "", pod.id))
    if fault is not None:
        pod.zero_gpus = True
        _log.info("fault_fired", fault="zero_gpus", pod_id=pod.id)
    return pod


async def pod_action(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    try:
        action = PodActionRequest.model_validate(await _json_body(request)).action
    except ValidationError as error:
        return problem(422, "Request validation failed.", errors=violations(error))
    except Unprocessable as error:
        return problem(422, "Request validation failed.", errors=error.errors)
    pod = operations.get(world, request.match_info["id"])
    status = pod_status(pod, world)
    if action not in ACTIONS[status]:
        detail = f"action {action} is not valid for a pod in status {status}"
        raise SimApiError("bad_request", detail, rest_status=409)
    by = podkeys.ended_by(world, api_key(request))
    if action == "terminate":
        operations.terminate(world, pod.id, by=by)
        return web.Response(status=204)
    if action == "stop":
        pod = operations.stop(world, pod.id, by)
    elif action == "restart":
        pod = operations.restart(world, pod.id)
    else:
        pod = _start(world, pod, status)
    return json_answer(pod_body(pod, world))


def pod_routes() -> list[web.RouteDef]:
    return [
        web.post("/v2/pods", route("create", True, create_pod)),
        web.get("/v2/pods", route("list", False, list_pods)),
        web.get("/v2/pods/{id}", route("get", False, get_pod)),
        web.delete("/v2/pods/{id}", route("terminate", True, delete_pod)),
        web.post("/v2/pods/{id}/action", route(action_op, True, pod_action)),
    ]
