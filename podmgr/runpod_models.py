"""What RunPod reports, reduced to plain frozen values: pods, create requests, GPU types.

Kept apart from the adapter (`runpod_client.py`) so that the pure parts of the watchdog
(plan, its tables) use these shapes without importing the adapter's retry machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KNOWN_STATUSES",
    "STARTING_STATUSES",
    "GpuType",
    "PodInfo",
    "PodSpec",
    "gpu_type_from",
    "parse_env",
    "parse_pod",
]

# RunPod's schema lists CREATED RUNNING RESTARTING EXITED PAUSED DEAD TERMINATED. CREATED
# and RESTARTING appear while a pod starts: not ready, and not stopped either (resuming
# them would restart a pod that is starting). SkyPilot treats them the same way
# (skypilot#9356; ../shared/RUNPOD_FACTS.md). Any other status is unknown: not ready.
STARTING_STATUSES = frozenset({"CREATED", "RESTARTING"})
STOPPED_STATUSES = frozenset({"EXITED", "PAUSED", "DEAD", "TERMINATED"})
KNOWN_STATUSES = frozenset({"RUNNING"}) | STARTING_STATUSES | STOPPED_STATUSES


@dataclass(frozen=True)
class PodInfo:
    """A pod as RunPod reports it, reduced to what the watchdog decides on."""

    id: str
    name: str
    desired_status: str
    cost_per_hr: float = 0.0
    uptime_seconds: float | None = None
    has_runtime: bool = False
    gpu_count: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    # False: nobody asked RunPod for the runtime (REST's Pod has none; `list_pods` does
    # not read it), so `has_runtime` False then means "not read", not "no container".
    runtime_read: bool = False
    # A spot pod (RunPod OpenAPI v1, Pod.interruptible): RunPod may stop it.
    interruptible: bool = False

    @property
    def running(self) -> bool:
        return self.desired_status == "RUNNING"

    @property
    def starting(self) -> bool:
        """CREATED or RESTARTING: RunPod is starting it; wait, never resume."""
        return self.desired_status in STARTING_STATUSES

    @property
    def stopped(self) -> bool:
        """A status that needs a resume (EXITED and the other known non-running ones)."""
        return self.desired_status in STOPPED_STATUSES

    @property
    def status_known(self) -> bool:
        return self.desired_status in KNOWN_STATUSES


@dataclass(frozen=True)
class PodSpec:
    """Everything `create_pod` sends; built from the config by the watchdog."""

    name: str
    image_name: str
    gpu_type_id: str
    cloud_type: str
    gpu_count: int
    container_disk_in_gb: int
    volume_in_gb: int
    volume_mount_path: str
    docker_args: str
    ports: str
    env: Mapping[str, str]
    template_id: str | None
    support_public_ip: bool = False
    # Host CUDA versions RunPod may place the pod on (podmgr/cuda.py); empty sends none.
    allowed_cuda_versions: tuple[str, ...] = ()
    # A spot pod (RunPod OpenAPI v1, PodCreateInput.interruptible).
    interruptible: bool = False
    network_volume_id: str | None = None
    data_center_ids: tuple[str, ...] = ()
    min_download_mbps: float | None = None
    docker_entrypoint: tuple[str, ...] = ()  # the pod's guard (podmgr/guard/launch.py)


@dataclass(frozen=True)
class GpuType:
    """One row of the GPU catalog."""

    id: str
    display_name: str
    memory_gb: float | None = None
    secure_price: float | None = None
    community_price: float | None = None
    # Spot (interruptible) prices; None: no spot offer in that cloud.
    secure_spot_price: float | None = None
    community_spot_price: float | None = None
    secure_cloud: bool | None = None
    community_cloud: bool | None = None
    stock_status: str | None = None


def parse_env(raw: Any) -> dict[str, str]:
    """RunPod returns env as ["KEY=VALUE", ...]; accept a dict or key/value objects too."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    env: dict[str, str] = {}
    for item in raw or ():
        if isinstance(item, str) and "=" in item:
            key, _, value = item.partition("=")
            env[key] = value
        elif isinstance(item, Mapping) and "key" in item:
            env[str(item["key"])] = str(item.get("value", ""))
    return env


def parse_pod(raw: Mapping[str, Any]) -> PodInfo:
    """Turn a GraphQL pod dict (the SDK's shape) into a PodInfo (missing fields get safe
    defaults); `runtime_read` when the dict carries a `runtime` key, even null."""
    runtime = raw.get("runtime") or {}
    uptime = raw.get("uptimeSeconds")
    if runtime.get("uptimeInSeconds") is not None:
        uptime = runtime["uptimeInSeconds"]
    return PodInfo(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        desired_status=str(raw.get("desiredStatus") or "UNKNOWN"),
        cost_per_hr=float(raw.get("costPerHr") or 0.0),
        uptime_seconds=float(uptime) if uptime is not None else None,
        has_runtime=bool(runtime.get("ports")),
        gpu_count=int(raw.get("gpuCount") or 1),
        env=parse_env(raw.get("env")),
        runtime_read="runtime" in raw,
    )


def gpu_type_from(g: Mapping[str, Any]) -> GpuType:
    lowest = g.get("lowestPrice") or {}
    return GpuType(
        id=str(g["id"]),
        display_name=str(g.get("displayName") or g["id"]),
        memory_gb=g.get("memoryInGb"),
        secure_price=g.get("securePrice"),
        community_price=g.get("communityPrice"),
        secure_spot_price=g.get("secureSpotPrice"),
        community_spot_price=g.get("communitySpotPrice"),
        secure_cloud=g.get("secureCloud"),
        community_cloud=g.get("communityCloud"),
        stock_status=lowest.get("stockStatus"),
    )
