"""`/_sim/*`: the simulator's own control routes (no auth; loopback tooling only).

GET    /_sim/ledger                 {"pods": [...], "total_cost_usd": x}
GET    /_sim/faults                 the faults in force, with remaining and fired counts
POST   /_sim/faults                 add one: {"fault": NAME, "probability"|"count", params}
DELETE /_sim/faults                 clear all
GET    /_sim/pods/{id}              {"id", "status", "phase", "download_seconds",
                                    "weights_on_volume", "volume_has_weights"}
POST   /_sim/pods/{id}/crash        RunPod stops the pod: EXITED, billing stops, ended_by runpod
POST   /_sim/pods/{id}/crash-container  the container dies: REST v2 ERROR (GraphQL RUNNING),
                                    no runtime, URL 502
POST   /_sim/pods/{id}/kill-vllm    the pod's vLLM server dies (/health 503) until the pod
                                    gets a new container (fault `vllm_die` plays vLLM v0.8.5's
                                    V1 engine instead: podmgr/sim/edge.py)
GET    /_sim/pods/{id}/requests     what reached the pod's URL (podmgr/sim/traffic.py)
GET    /_sim/pods/{id}/metrics      the pod's vLLM /metrics text (podmgr/sim/vllm_metrics.py)
GET    /_sim/pods/{id}/process      {"running", "starts", "pid"} of its real process (--run-guards)
GET    /_sim/pods/{id}/log          its real process's output (--run-guards)
GET    /_sim/health                 {"ok": true}
GET    /_sim/requests               {"graphql": n, "rest": m, "v1": k, "v2": m}: API requests
                                    received so far ("rest" and "v2" both count /v2; "v1"
                                    the retired /v1 paths, all answered 410)
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from podmgr.logs import get_logger
from podmgr.sim.faults import fault_from_json
from podmgr.sim.podproc import PROCESSES
from podmgr.sim.pods import SimPod
from podmgr.sim.vllm_metrics import render_metrics
from podmgr.sim.world import WORLD

__all__ = ["control_routes"]

_log = get_logger("sim.control")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def ledger(request: web.Request) -> web.Response:
    return _json(request.app[WORLD].fleet.ledger())


async def list_faults(request: web.Request) -> web.Response:
    return _json({"faults": request.app[WORLD].faults.to_json()})


async def add_fault(request: web.Request) -> web.Response:
    try:
        spec = fault_from_json(orjson.loads(await request.read()))
    except (orjson.JSONDecodeError, ValueError) as error:
        return _json({"error": str(error)}, status=400)
    fault = request.app[WORLD].faults.add(spec)
    _log.info("fault_added", fault=spec.name, probability=spec.probability, count=spec.count)
    return _json(fault.to_json(), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    request.app[WORLD].faults.clear()
    return _json({"faults": []})


def _pod_or_404(request: web.Request) -> SimPod:
    pod = request.app[WORLD].fleet.get(request.match_info["pod_id"])
    if pod is None:
        raise web.HTTPNotFound(
            text='{"error": "no such live pod"}', content_type="application/json"
        )
    return pod


async def crash_pod(request: web.Request) -> web.Response:
    pod = _pod_or_404(request)
    request.app[WORLD].fleet.stop(pod, by="runpod")
    _log.info("pod_crashed", pod_id=pod.id)
    return _json({"id": pod.id, "status": pod.status})


async def pod_phase(request: web.Request) -> web.Response:
    pod = _pod_or_404(request)
    world = request.app[WORLD]
    return _json(
        {
            "id": pod.id,
            "status": pod.status,
            "phase": pod.phase(world.now(), world.settings.timings),
            "download_seconds": pod.download_seconds,
            "weights_on_volume": pod.weights_on_volume,
            "volume_has_weights": pod.volume_has_weights,
        }
    )


async def crash_container(request: web.Request) -> web.Response:
    pod = _pod_or_404(request)
    if pod.status == "RUNNING":
        pod.container_crashed = True
    _log.info("container_crashed", pod_id=pod.id)
    return _json({"id": pod.id, "status": pod.status, "container_crashed": pod.container_crashed})


async def kill_vllm(request: web.Request) -> web.Response:
    pod = _pod_or_404(request)
    pod.vllm_dead = True
    _log.info("vllm_killed", pod_id=pod.id)
    return _json({"id": pod.id, "vllm_dead": True})


async def pod_requests(request: web.Request) -> web.Response:
    """A live pod, or one that got requests before it went: traffic outlives the pod."""
    world = request.app[WORLD]
    pod_id = request.match_info["pod_id"]
    if world.fleet.get(pod_id) is None and pod_id not in world.traffic:
        return _json({"error": "no such pod"}, status=404)
    return _json(world.traffic_of(pod_id).to_json())


async def health(_request: web.Request) -> web.Response:
    return _json({"ok": True})


async def requests(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    return _json(
        {
            "graphql": world.graphql_requests,
            "rest": world.rest_requests,
            "v1": world.v1_requests,
            "v2": world.rest_requests,
        }
    )


def _any_pod(request: web.Request) -> SimPod | None:
    pod_id = request.match_info["pod_id"]
    return next((pod for pod in request.app[WORLD].fleet.all() if pod.id == pod_id), None)


async def pod_metrics(request: web.Request) -> web.Response:
    pod = _any_pod(request)
    if pod is None:
        return _json({"error": "no such pod"}, status=404)
    text = render_metrics(pod, request.app[WORLD].traffic_of(pod.id))
    return web.Response(text=text, content_type="text/plain")


async def pod_process(request: web.Request) -> web.Response:
    processes = request.app.get(PROCESSES)
    if processes is None:
        return _json({"error": "pods run no processes: start with --run-guards"}, status=404)
    return _json(processes.describe(request.match_info["pod_id"]))


async def pod_log(request: web.Request) -> web.Response:
    processes = request.app.get(PROCESSES)
    text = "" if processes is None else processes.log_text(request.match_info["pod_id"])
    return web.Response(text=text, content_type="text/plain")


def control_routes() -> list[web.RouteDef]:
    return [
        web.get("/_sim/ledger", ledger),
        web.get("/_sim/faults", list_faults),
        web.post("/_sim/faults", add_fault),
        web.delete("/_sim/faults", clear_faults),
        web.get("/_sim/pods/{pod_id}", pod_phase),
        web.post("/_sim/pods/{pod_id}/crash", crash_pod),
        web.post("/_sim/pods/{pod_id}/crash-container", crash_container),
        web.post("/_sim/pods/{pod_id}/kill-vllm", kill_vllm),
        web.get("/_sim/pods/{pod_id}/requests", pod_requests),
        web.get("/_sim/pods/{pod_id}/metrics", pod_metrics),
        web.get("/_sim/pods/{pod_id}/process", pod_process),
        web.get("/_sim/pods/{pod_id}/log", pod_log),
        web.get("/_sim/health", health),
        web.get("/_sim/requests", requests),
    ]
