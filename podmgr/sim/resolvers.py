"""GraphQL resolvers: RunPod's queries and mutations acted out on the simulated world.

`RootResolvers` is the root value handed to graphql-core; its method names are the root
fields of the schema, so graphql-core's default resolver calls them with the arguments.
An exception raised here becomes a GraphQL error with the field's path, as RunPod reports
its own failures (HTTP 200, `data.<field>` null, `errors[0].message`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from podmgr.sim import operations
from podmgr.sim.catalog import GPU_TYPES, find_gpu_type, spot_price
from podmgr.sim.operations import (
    CAPACITY_MESSAGE,
    NOT_FOUND_TO_TERMINATE,
    RESUME_NO_GPUS_MESSAGE,
    CreateOrder,
)
from podmgr.sim.pods import PodSpec, PortSpec, SimPod, Timings
from podmgr.sim.world import SimWorld

__all__ = [
    "CAPACITY_MESSAGE",
    "NOT_FOUND_TO_TERMINATE",
    "RESUME_NO_GPUS_MESSAGE",
    "RootResolvers",
    "RunPodError",
    "pod_to_graphql",
]


class RunPodError(Exception):
    """A failure RunPod reports as a GraphQL error with this message."""


def _status_change_text(at: float, status: str) -> str:
    stamp = time.strftime(
        "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", time.gmtime(at)
    )
    verb = "Rented by User" if status == "RUNNING" else "Exited by User"
    return f"{verb}: {stamp}"


def _runtime(pod: SimPod, now: float, timings: Timings) -> dict[str, Any] | None:
    uptime = pod.uptime(now, timings)
    if uptime is None:
        return None
    ports = []
    for index, port in enumerate(pod.spec.ports):
        public = port.type != "http"
        ports.append(
            {
                "ip": f"100.65.{index}.{sum(map(ord, pod.id)) % 250 + 2}",
                "isIpPublic": public,
                "privatePort": port.number,
                "publicPort": 10000 + port.number % 10000 if public else port.number,
                "type": port.type,
            }
        )
    gpus = [
        {"id": f"GPU-{pod.machine_id}-{i}", "gpuUtilPercent": 0, "memoryUtilPercent": 0}
        for i in range(pod.gpu_count)
    ]
    return {
        "uptimeInSeconds": int(uptime),
        "ports": ports,
        "gpus": gpus,
        "container": {"cpuPercent": 1, "memoryPercent": 3},
    }


def pod_to_graphql(pod: SimPod, now: float, timings: Timings) -> dict[str, Any]:
    """The `Pod` object as RunPod returns it."""
    spec = pod.spec
    status = pod.shown_status(now)
    runtime = _runtime(pod, now, timings)
    return {
        "id": pod.id,
        "name": spec.name,
        "runtime": runtime,
        "machine": {
            "id": pod.machine_id,
            "podHostId": f"{pod.id}-{pod.machine_id[:8]}",
            "gpuDisplayName": spec.gpu_display_name,
            "gpuTypeId": spec.gpu_type_id,
            "location": "SIM",
            "secureCloud": spec.cloud_type == "SECURE",
        },
        "machineId": pod.machine_id,
        "containerDiskInGb": spec.container_disk_in_gb,
        "costPerHr": pod.cost_per_hr,
        "adjustedCostPerHr": pod.cost_per_hr,
        "desiredStatus": status,
        "dockerArgs": spec.docker_args,
        "dockerId": None,
        "env": [f"{key}={value}" for key, value in spec.env.items()],
        "gpuCount": pod.gpu_count,
        "gpuTypeId": spec.gpu_type_id,
        "imageName": spec.image_name,
        "lastStatusChange": _status_change_text(pod.last_status_change, pod.status),
        "locked": False,
        "memoryInGb": spec.memory_in_gb,
        "podType": "RESERVED",
        "port": None,
        "ports": ",".join(f"{p.number}/{p.type}" for p in spec.ports),
        "templateId": spec.template_id,
        "uptimeSeconds": 0 if runtime is None else runtime["uptimeInSeconds"],
        "vcpuCount": spec.vcpu_count,
        "volumeInGb": spec.volume_in_gb,
        "volumeMountPath": spec.volume_mount_path,
        "lastStartedAt": None,
    }


class RootResolvers:
    """Root fields of Query and Mutation; each method is one field."""

    def __init__(self, world: SimWorld, log: Any) -> None:
        self.world = world
        self.log = log

    def _pod_json(self, pod: SimPod) -> dict[str, Any]:
        return pod_to_graphql(pod, self.world.now(), self.world.settings.timings)

    # --- queries ------------------------------------------------------------------------
    def gpuTypes(self, _info: Any, input: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        filters = input or {}
        wanted = set(filters.get("ids") or [])
        if filters.get("id"):
            wanted.add(filters["id"])
        return [gpu.to_graphql() for gpu in GPU_TYPES if not wanted or gpu.id in wanted]

    def pod(self, _info: Any, input: dict[str, Any] | None = None) -> dict[str, Any] | None:
        pod = self.world.fleet.get((input or {}).get("podId", ""))
        return None if pod is None else self._pod_json(pod)

    def myself(self, _info: Any) -> dict[str, Any]:
        pods = operations.list_pods(self.world)
        running = [p for p in self.world.fleet.live() if p.status == "RUNNING"]
        return {
            "id": "user_sim",
            "email": "sim@example.invalid",
            "pubKey": "",
            "clientBalance": 100.0,
            "currentSpendPerHr": sum(p.cost_per_hr for p in running),
            "networkVolumes": [],
            "pods": [self._pod_json(pod) for pod in pods],
        }

    # --- mutations ----------------------------------------------------------------------
    def podFindAndDeployOnDemand(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        pod = operations.create(self.world, _deploy_order(input or {}))
        return self._pod_json(pod)

    def podRentInterruptable(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        """A spot pod: the only create REST v2 lacks (SkyPilot's RunPod backend: "Spot pods
        have no v2 endpoint yet"); fields as SkyPilot's generate_spot_pod_deployment_mutation
        sends them (sky/provision/runpod/api/pods.py). Priced at the spot price, preemptible
        (runpod_stops.py `preempt`); a bid under the spot price gets RunPod's capacity
        wording (the pod would not be placed)."""
        order = _deploy_order(input)
        spec = dataclasses.replace(
            order.spec,
            interruptible=True,
            allowed_cuda_versions=tuple(input.get("allowedCudaVersions") or ()),
            **_start(input, self.world),
        )
        gpu = find_gpu_type(order.gpu_type_ids[0])
        price = spot_price(gpu, spec.cloud_type) if gpu is not None else None
        if price is not None and float(input["bidPerGpu"]) < price:
            raise RunPodError(CAPACITY_MESSAGE)
        pod = operations.create(self.world, dataclasses.replace(order, spec=spec))
        return self._pod_json(pod)

    def podStop(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        return self._pod_json(operations.stop(self.world, input["podId"]))

    def podResume(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        pod = operations.start(self.world, input["podId"], int(input["gpuCount"]))
        return self._pod_json(pod)

    def podTerminate(self, _info: Any, input: dict[str, Any]) -> None:
        operations.terminate(self.world, input["podId"], NOT_FOUND_TO_TERMINATE)


def _start(data: dict[str, Any], world: SimWorld) -> dict[str, Any]:
    """dockerArgs is RunPod's container start command: the start-command JSON applies to it
    as to v2's `args` (RunPod docs, pods/templates/manage-templates.mdx; sim/v2/create.py)."""
    from podmgr.sim.v2.create import start_command_fields

    return start_command_fields(data.get("dockerArgs") or "", world.settings.start_command_json)


def _deploy_order(data: dict[str, Any]) -> CreateOrder:
    """podFindAndDeployOnDemand's input as a create order (one GPU type, or a list)."""
    gpu_type_id = data.get("gpuTypeId") or next(iter(data.get("gpuTypeIdList") or []), None)
    try:
        ports = tuple(PortSpec.parse_list(data.get("ports")))
    except ValueError:
        raise RunPodError(f"Invalid ports: {data.get('ports')}") from None
    spec = PodSpec(
        name=data.get("name") or "",
        image_name=data.get("imageName") or "",
        gpu_type_id="",
        gpu_display_name="",
        gpu_count=int(data.get("gpuCount") or 1),
        cloud_type=data.get("cloudType") or "ALL",
        cost_per_hr=0.0,
        docker_args=data.get("dockerArgs") or "",
        env={item["key"]: item["value"] for item in data.get("env") or [] if item},
        ports=ports,
        container_disk_in_gb=int(data.get("containerDiskInGb") or 10),
        volume_in_gb=int(data.get("volumeInGb") or 0),
        volume_mount_path=data.get("volumeMountPath") or "/runpod-volume",
        template_id=data.get("templateId"),
        support_public_ip=bool(data.get("supportPublicIp")),
        start_ssh=bool(data.get("startSsh")),
    )
    return CreateOrder(
        spec,
        (gpu_type_id or "",),
        min_memory_in_gb=int(data.get("minMemoryInGb") or 0),
        min_vcpu_count=int(data.get("minVcpuCount") or 0),
    )
