"""RunPod's REST API v1 under `/v1`, on the same world as the GraphQL API.

Field names, enums, status codes and the error body follow RunPod's published OpenAPI
document (RunPod OpenAPI v1: PodCreateInput, Pod, Pods, BillingRecords, and the responses
of each path); errors are `{"message": "..."}` ("In v1, errors return a simple
{"message":"..."} object", RunPod docs api-reference-v2/migrate-from-v1.mdx).

    POST   /v1/pods                      create (PodCreateInput) -> 201 Pod
    GET    /v1/pods                      list (filters: id, name, desiredStatus, imageName,
                                         gpuTypeId, templateId, networkVolumeId) -> [Pod]
    GET    /v1/pods/{podId}              -> Pod; 404 when unknown or terminated
    DELETE /v1/pods/{podId}              terminate -> 204
    POST   /v1/pods/{podId}/start|stop|restart|reset  -> 200 Pod
    GET    /v1/billing/pods              -> BillingRecords (podmgr/sim/billing.py)

Statuses: 401 unknown key (UnauthorizedError), 403 read-only key on a mutation (RunPod
answers 403 when a valid key lacks access: migrate-from-v1.mdx), 404 unknown pod on the
/pods/{podId} paths, 400 malformed input (the document's "Invalid input."), 400 for no
capacity (v1 documents no status for it; RunPod's v2 create documents capacity as 400,
api-reference-v2 CreatePod, and v1's create lists only 201 and 400), 500 for RunPod's
"Something went wrong" (the document names no status; the generic error body is used).
A REST `Pod` has no `runtime`: the document's Pod has none.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from podmgr.logs import get_logger
from podmgr.sim import operations, podkeys
from podmgr.sim.billing import billing_records
from podmgr.sim.catalog import find_gpu_type
from podmgr.sim.operations import CreateOrder, SimApiError
from podmgr.sim.pods import PodSpec, PortSpec, SimPod
from podmgr.sim.reply import cloudflare_page
from podmgr.sim.volume_routes import network_volume_routes
from podmgr.sim.world import WORLD, SimWorld

__all__ = ["pod_to_rest", "rest_routes"]

_log = get_logger("sim.rest")

_STATUS_OF_KIND: Mapping[str, int] = {
    "unauthorized": 401,
    "forbidden": 403,
    "bad_request": 400,
    "not_found": 404,
    "capacity": 400,
    "transient": 500,
}

Handler = Callable[[web.Request], Awaitable[web.Response]]


class PodCreateInput(BaseModel):
    """RunPod OpenAPI v1, PodCreateInput: the fields the simulator reads, typed strictly.

    Other fields of the document are accepted and ignored (`extra="allow"`).
    """

    model_config = ConfigDict(extra="allow")

    name: str = Field(default="my pod", max_length=191)
    imageName: str | None = None
    templateId: str | None = None
    gpuTypeIds: list[str] | None = None
    gpuTypePriority: Literal["availability", "custom"] = "availability"
    gpuCount: StrictInt = Field(default=1, ge=1)
    cloudType: Literal["SECURE", "COMMUNITY"] = "SECURE"
    computeType: Literal["GPU", "CPU"] = "GPU"
    containerDiskInGb: StrictInt = Field(default=50, ge=0)
    volumeInGb: StrictInt = Field(default=20, ge=0)
    volumeMountPath: str = "/workspace"
    ports: list[str] = Field(default_factory=lambda: ["8888/http", "22/tcp"])
    env: dict[str, str] = Field(default_factory=dict)
    dockerStartCmd: list[str] = Field(default_factory=list)
    dockerEntrypoint: list[str] = Field(default_factory=list)
    supportPublicIp: StrictBool | None = None
    interruptible: StrictBool = False
    allowedCudaVersions: list[str] = Field(default_factory=list)
    dataCenterIds: list[str] = Field(default_factory=list)
    networkVolumeId: str | None = None
    minRAMPerGPU: StrictInt = 8
    minVCPUPerGPU: StrictInt = 2


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(error: SimApiError) -> web.Response:
    if error.page_status is not None:
        return web.Response(
            text=cloudflare_page(error.page_status),
            status=error.page_status,
            content_type="text/html",
        )
    status = error.rest_status or _STATUS_OF_KIND[error.kind]
    return _json({"message": error.message}, status)


def _iso(at: float | None) -> str | None:
    if not at:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


def _status_change_text(at: float, status: str) -> str:
    stamp = time.strftime(
        "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", time.gmtime(at)
    )
    verb = "Rented by User" if status == "RUNNING" else "Exited by User"
    return f"{verb}: {stamp}"


def _port_mappings(pod: SimPod, now: float, world: SimWorld) -> dict[str, int]:
    """Public ports of tcp ports; empty while the pod initialises (the document says so)."""
    if pod.uptime(now, world.settings.timings) is None:
        return {}
    return {
        str(port.number): 10000 + port.number % 10000
        for port in pod.spec.ports
        if port.type != "http" and pod.spec.support_public_ip
    }


def pod_to_rest(pod: SimPod, world: SimWorld) -> dict[str, Any]:
    """The REST `Pod` (RunPod OpenAPI v1, Pod): no `runtime`."""
    now = world.now()
    spec = pod.spec
    gpu = find_gpu_type(spec.gpu_type_id)
    mappings = _port_mappings(pod, now, world)
    return {
        "id": pod.id,
        "name": spec.name,
        "desiredStatus": pod.shown_status(now),
        "costPerHr": pod.cost_per_hr,
        "adjustedCostPerHr": pod.cost_per_hr,
        "consumerUserId": "user_sim",
        "containerDiskInGb": spec.container_disk_in_gb,
        "dockerEntrypoint": list(spec.docker_entrypoint),
        "dockerStartCmd": list(spec.docker_start_cmd),
        "env": dict(spec.env),
        "gpu": {
            "id": spec.gpu_type_id,
            "count": pod.gpu_count,
            "displayName": spec.gpu_display_name,
            "securePrice": gpu.secure_price if gpu else None,
            "communityPrice": gpu.community_price if gpu else None,
        },
        "image": spec.image_name,
        "interruptible": spec.interruptible,
        "lastStartedAt": _iso(pod.last_started_at),
        "lastStatusChange": _status_change_text(pod.last_status_change, pod.status),
        "locked": False,
        "machine": {
            "gpuTypeId": spec.gpu_type_id,
            "gpuDisplayName": spec.gpu_display_name,
            "location": "SIM",
            "dataCenterId": spec.data_center_ids[0] if spec.data_center_ids else "SIM-1",
            "secureCloud": spec.cloud_type == "SECURE",
            "supportPublicIp": spec.support_public_ip,
            "costPerHr": pod.cost_per_hr,
        },
        "machineId": pod.machine_id,
        "memoryInGb": spec.memory_in_gb,
        "networkVolume": {"id": spec.network_volume_id} if spec.network_volume_id else None,
        "portMappings": mappings,
        "ports": [f"{p.number}/{p.type}" for p in spec.ports],
        "publicIp": f"100.65.0.{sum(map(ord, pod.id)) % 250 + 2}" if mappings else None,
        "templateId": spec.template_id,
        "vcpuCount": spec.vcpu_count,
        "volumeInGb": spec.volume_in_gb,
        "volumeMountPath": spec.volume_mount_path,
        "volumeEncrypted": False,
        "slsVersion": 0,
    }


# --- request plumbing -------------------------------------------------------------------
def _api_key(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _route(op: str, mutation: bool, work: Handler) -> Handler:
    """Auth, the call-level faults, then `work`; a SimApiError becomes its REST answer."""

    async def handle(request: web.Request) -> web.Response:
        world = request.app[WORLD]
        world.rest_requests += 1
        try:
            key = _api_key(request)
            if key is not None and key in world.pod_keys:
                podkeys.check_pod_key(world, key, op, request.match_info.get("pod_id"))
            else:
                operations.check_access(world, key, mutation)
            calls = operations.draw_call_faults(world, {op})
            if calls.error is not None:
                raise calls.error
            try:
                answer = await work(request)
            finally:
                if calls.slow_seconds:
                    await asyncio.sleep(calls.slow_seconds)
        except SimApiError as error:
            _log.info("rest_error", op=op, kind=error.kind, message=error.message)
            return _error(error)
        return answer

    return handle


def _bad_input(error: ValidationError) -> SimApiError:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return SimApiError("bad_request", f"Invalid input: {where}: {first['msg']}")


def _ports(items: list[str]) -> tuple[PortSpec, ...]:
    try:
        specs = PortSpec.parse_list(",".join(items)) if items else []
    except ValueError:
        raise SimApiError("bad_request", f"Invalid input: ports: {items}") from None
    if any(spec.type not in ("http", "tcp") for spec in specs):
        raise SimApiError("bad_request", f"Invalid input: ports: {items}")
    return tuple(specs)


def create_order(data: PodCreateInput) -> CreateOrder:
    """A REST create as a create order for the world."""
    if data.computeType != "GPU":
        raise SimApiError("bad_request", "Invalid input: the simulator has no CPU pods")
    spec = PodSpec(
        name=data.name,
        image_name=data.imageName or "",
        gpu_type_id="",
        gpu_display_name="",
        gpu_count=data.gpuCount,
        cloud_type=data.cloudType,
        cost_per_hr=0.0,
        # vLLM's image takes its arguments as the start command: `--model X ...`.
        docker_args=shlex.join(data.dockerStartCmd),
        env=dict(data.env),
        ports=_ports(data.ports),
        container_disk_in_gb=data.containerDiskInGb,
        volume_in_gb=data.volumeInGb,
        volume_mount_path=data.volumeMountPath,
        template_id=data.templateId,
        support_public_ip=bool(data.supportPublicIp),
        interruptible=data.interruptible,
        docker_entrypoint=tuple(data.dockerEntrypoint),
        docker_start_cmd=tuple(data.dockerStartCmd),
        allowed_cuda_versions=tuple(data.allowedCudaVersions),
        data_center_ids=tuple(data.dataCenterIds),
        network_volume_id=data.networkVolumeId,
        gpu_type_priority=data.gpuTypePriority,
    )
    return CreateOrder(
        spec,
        tuple(data.gpuTypeIds or ()),
        min_memory_in_gb=data.minRAMPerGPU * data.gpuCount,
        min_vcpu_count=data.minVCPUPerGPU * data.gpuCount,
    )


async def _read_create(request: web.Request) -> PodCreateInput:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise SimApiError("bad_request", "Invalid input: the body is not JSON") from None
    if not isinstance(body, dict):
        raise SimApiError("bad_request", "Invalid input: the body must be a JSON object")
    try:
        return PodCreateInput.model_validate(body)
    except ValidationError as error:
        raise _bad_input(error) from None


# --- handlers ---------------------------------------------------------------------------
async def create_pod(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    order = create_order(await _read_create(request))
    return _json(pod_to_rest(operations.create(world, order), world), 201)


_LIST_FILTERS: Mapping[str, Callable[[SimPod, SimWorld], str | None]] = {
    "id": lambda pod, _world: pod.id,
    "name": lambda pod, _world: pod.spec.name,
    "desiredStatus": lambda pod, world: pod.shown_status(world.now()),
    "imageName": lambda pod, _world: pod.spec.image_name,
    "gpuTypeId": lambda pod, _world: pod.spec.gpu_type_id,
    "templateId": lambda pod, _world: pod.spec.template_id,
    "networkVolumeId": lambda pod, _world: pod.spec.network_volume_id,
}


def _matches(pod: SimPod, world: SimWorld, query: Any) -> bool:
    """Every filter given matches (a filter given twice matches either value)."""
    for name, value_of in _LIST_FILTERS.items():
        wanted = query.getall(name, [])
        if wanted and value_of(pod, world) not in wanted:
            return False
    return True


async def list_pods(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    status = request.query.get("desiredStatus")
    if status is not None and status not in ("RUNNING", "EXITED", "TERMINATED"):
        raise SimApiError("bad_request", f"Invalid input: desiredStatus: {status}")
    pods = operations.list_pods(world)
    chosen = [p for p in pods if _matches(p, world, request.query)]
    return _json([pod_to_rest(pod, world) for pod in chosen])


async def get_pod(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    return _json(pod_to_rest(operations.get(world, request.match_info["pod_id"]), world))


async def delete_pod(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    by = podkeys.ended_by(world, _api_key(request))
    operations.terminate(world, request.match_info["pod_id"], by=by)
    return web.Response(status=204)


async def start_pod(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    return _json(pod_to_rest(operations.start(world, request.match_info["pod_id"]), world))


async def stop_pod(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    by = podkeys.ended_by(world, _api_key(request))
    return _json(pod_to_rest(operations.stop(world, request.match_info["pod_id"], by), world))


async def restart_pod(request: web.Request) -> web.Response:
    """`POST /pods/{podId}/restart` reportedly does nothing (runpod-python#450): 200, no change.

    The document lists no 200 for it (only 400 and 401); the simulator answers 200 with the
    unchanged pod, as the report describes a call that "succeeds" without effect.
    """
    world = request.app[WORLD]
    return _json(pod_to_rest(operations.get(world, request.match_info["pod_id"]), world))


async def reset_pod(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    return _json(pod_to_rest(operations.reset(world, request.match_info["pod_id"]), world))


async def billing_pods(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    return _json(billing_records(world, request.query))


def rest_routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/pods", _route("create", True, create_pod)),
        web.get("/v1/pods", _route("list", False, list_pods)),
        web.get("/v1/pods/{pod_id}", _route("get", False, get_pod)),
        web.delete("/v1/pods/{pod_id}", _route("terminate", True, delete_pod)),
        web.post("/v1/pods/{pod_id}/start", _route("start", True, start_pod)),
        web.post("/v1/pods/{pod_id}/stop", _route("stop", True, stop_pod)),
        web.post("/v1/pods/{pod_id}/restart", _route("restart", True, restart_pod)),
        web.post("/v1/pods/{pod_id}/reset", _route("reset", True, reset_pod)),
        web.get("/v1/billing/pods", _route("billing", False, billing_pods)),
        *network_volume_routes(_route),
    ]
