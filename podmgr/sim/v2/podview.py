"""The REST v2 `Pod` body of a simulated pod: status, actions, runtime, cost.

Exactly the fields of RunPod REST API v2's `Pod` (openapi.json; required: id name status
actions image args disk mounts ports env registry cloud dataCenterId cudaVersion ssh
template cost locked runtime createdAt startedAt globalNetworking; `gpu {id, count}`
"present for GPU pods"). Nothing the document lacks (no desiredStatus, costPerHr,
interruptible: a spot pod made through GraphQL shows as any other pod).

Status (PodStatus): the fault `transient_status` shows PROVISIONING (after a create) or
STARTING (after a start) for a while; then STARTING while the image is pulled, with no
container yet; RUNNING once the container runs ("container is healthy": vLLM may still be
loading, the pod URL answers 502 until it serves); ERROR when the container died
(`container_crash`: "an unrecoverable error state"); EXITED when stopped. A host whose
CUDA is too old for the image keeps the pod STARTING for as long as it lives, billing
(RUNPOD_FACTS.md "Host CUDA must be new enough").

`actions` (podAction): RUNNING stop/restart/terminate; EXITED and ERROR start/terminate;
PROVISIONING and STARTING stop/terminate.

`cost` is the USD/h billed now ("0.0 when EXITED or TERMINATED", Pod.cost). An ERROR pod
still holds its GPU and the document zeroes cost only for EXITED and TERMINATED, so it
bills at full rate until it is started again or terminated (ERROR allows no stop).

`runtime` ("Null when the pod is not RUNNING", Pod.runtime): uptime, one entry per GPU
(memoryUtil 90 once vLLM has loaded: vLLM's default `--gpu-memory-utilization` is 0.9,
vllm/engine/arg_utils.py), cpu, memory, and the ports (`public`/`ip` only for tcp ports).
`startedAt` is when the current container came up (the document's examples: two minutes
after createdAt, null in the 201); null while STARTING and when EXITED (undocumented).
`cudaVersion` is the host's, "retained while the pod is stopped" (Pod.cudaVersion).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from podmgr.sim.pods import SimPod
from podmgr.sim.world import SimWorld

__all__ = ["ACTIONS", "pod_body", "pod_status"]

ACTIONS: dict[str, list[str]] = {
    "RUNNING": ["stop", "restart", "terminate"],
    "EXITED": ["start", "terminate"],
    "ERROR": ["start", "terminate"],
    "PROVISIONING": ["stop", "terminate"],
    "STARTING": ["stop", "terminate"],
    "TERMINATED": [],
}
# GraphQL's transient statuses (fault `transient_status`) as v2 shows them.
_TRANSIENT = {"CREATED": "PROVISIONING", "RESTARTING": "STARTING"}
_DATA_CENTER = "SIM-1"


def _rfc3339(at: float | None) -> str | None:
    if at is None:
        return None
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_status(pod: SimPod, world: SimWorld) -> str:
    """The PodStatus the pod shows now (see the module docstring)."""
    now = world.now()
    if pod.status != "RUNNING":
        return pod.status
    shown = pod.shown_status(now)
    if shown != "RUNNING":
        return _TRANSIENT.get(shown, "STARTING")
    if pod.container_crashed:
        return "ERROR"
    return "RUNNING" if pod.uptime(now, world.settings.timings) is not None else "STARTING"


def _public_ip(pod: SimPod) -> str:
    return f"100.65.0.{sum(map(ord, pod.id)) % 250 + 2}"


def _runtime(pod: SimPod, world: SimWorld, up: float) -> dict[str, Any]:
    phase = pod.phase(world.now(), world.settings.timings)
    loaded = phase in ("serving", "dead")
    ports = [
        {
            "private": port.number,
            "public": 10000 + port.number % 10000 if port.type == "tcp" else None,
            "type": port.type,
            "ip": _public_ip(pod) if port.type == "tcp" else None,
        }
        for port in pod.spec.ports
    ]
    gpus = [{"util": 0, "memoryUtil": 90 if loaded else 0}] * pod.shown_gpu_count
    return {
        "uptime": int(up),
        "gpus": gpus,
        "cpu": {"util": 3},
        "memory": {"util": 12},
        "ports": ports,
    }


def _mounts(pod: SimPod) -> dict[str, Any]:
    spec = pod.spec
    if spec.network_volume_id:
        return {"network": [{"volumeId": spec.network_volume_id, "path": spec.volume_mount_path}]}
    if spec.volume_in_gb > 0:
        return {"persistent": {"size": spec.volume_in_gb, "path": spec.volume_mount_path}}
    return {}


def _ssh(pod: SimPod, status: str) -> dict[str, Any]:
    """PodSsh: the proxy once the pod has a machine; direct only with 22/tcp while RUNNING."""
    user = f"{pod.id}-{pod.machine_id[:8]}"
    proxy = {"host": "ssh.runpod.io", "port": 22, "username": user,
             "command": f"ssh {user}@ssh.runpod.io"}  # fmt: skip
    direct = None
    if status == "RUNNING" and any(p.number == 22 and p.type == "tcp" for p in pod.spec.ports):
        host, port = _public_ip(pod), 10022
        direct = {"host": host, "port": port, "username": "root",
                  "command": f"ssh root@{host} -p {port}"}  # fmt: skip
    return {"proxy": proxy, "direct": direct}


def _networking(pod: SimPod) -> dict[str, Any]:
    if not pod.spec.global_networking:
        return {"enabled": False}
    address = f"10.65.{sum(map(ord, pod.id)) % 250}.{len(pod.id) + 2}"
    return {"enabled": True, "ip": address, "internalDns": f"{pod.id}.runpod.internal"}


def pod_body(pod: SimPod, world: SimWorld) -> dict[str, Any]:
    """The `Pod` (see the module docstring)."""
    now = world.now()
    spec = pod.spec
    status = pod_status(pod, world)
    up = pod.uptime(now, world.settings.timings) if status == "RUNNING" else None
    return {
        "id": pod.id,
        "name": spec.name,
        "status": status,
        "actions": list(ACTIONS[status]),
        "image": spec.image_name,
        "args": spec.args,
        "disk": spec.container_disk_in_gb,
        "mounts": _mounts(pod),
        "ports": [f"{p.number}/{p.type}" for p in spec.ports],
        "env": dict(spec.env),
        "registry": spec.registry,
        "gpu": {"id": spec.gpu_type_id, "count": pod.shown_gpu_count},
        "cloud": spec.cloud_type,
        "dataCenterId": spec.data_center_ids[0] if spec.data_center_ids else _DATA_CENTER,
        "cudaVersion": pod.host_cuda,
        "ssh": _ssh(pod, status),
        # "the created pod does not retain a link to the template" (CreatePodRequest).
        "template": None,
        "cost": 0.0 if status in ("EXITED", "TERMINATED") else pod.cost_per_hr,
        "locked": False,
        "runtime": _runtime(pod, world, up) if up is not None else None,
        "createdAt": _rfc3339(pod.created_at),
        "startedAt": _rfc3339(now - up) if up is not None else None,
        "globalNetworking": _networking(pod),
    }
