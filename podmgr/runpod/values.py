"""What RunPod reports, reduced to plain frozen values: pods, create requests, GPU types.

Kept apart from the adapter (`client.py`) so that the pure parts of the watchdog (plan,
its tables, the what-if) use these shapes without importing httpx or the retry machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "ERROR_STATUS",
    "KNOWN_STATUSES",
    "STARTING_STATUSES",
    "GpuType",
    "PodInfo",
    "PodSpec",
]

# RunPod OpenAPI v2, components.schemas.PodStatus: PROVISIONING (being allocated) and
# STARTING (container starting) come before RUNNING ("container is healthy"): not ready,
# and not to be started again. CREATED and RESTARTING are GraphQL's words for the same
# (skypilot#9356); SkyPilot treats them as starting too. Any other status is unknown: not
# ready, never resumed.
STARTING_STATUSES = frozenset({"PROVISIONING", "STARTING", "CREATED", "RESTARTING"})
# EXITED: stopped (by us, by RunPod at a $0 balance, a spot preemption). ERROR: "container
# is in an unrecoverable error state"; the document's podAction allows `start` from it.
ERROR_STATUS = "ERROR"
STOPPED_STATUSES = frozenset({"EXITED", "PAUSED", "DEAD", ERROR_STATUS})
KNOWN_STATUSES = frozenset({"RUNNING", "TERMINATED"}) | STARTING_STATUSES | STOPPED_STATUSES


@dataclass(frozen=True)
class PodInfo:
    """A pod as RunPod reports it, reduced to what the watchdog decides on."""

    id: str
    name: str
    status: str
    cost_per_hr: float = 0.0
    uptime_seconds: float | None = None
    # The container is up: RunPod OpenAPI v2, Pod.runtime with ports (null unless RUNNING).
    has_runtime: bool = False
    # GPUs the pod has now: a start may give it 0 (RunPod docs, pods/manage-pods.mdx).
    gpu_count: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    # A spot pod: RunPod may stop it (known from our marker env; v2's Pod does not say).
    interruptible: bool = False
    # The actions the pod's status allows (RunPod OpenAPI v2, Pod.actions).
    actions: tuple[str, ...] = ()
    # The host's CUDA version (Pod.cudaVersion; None: not reported).
    cuda_version: str | None = None

    @property
    def running(self) -> bool:
        return self.status == "RUNNING"

    @property
    def starting(self) -> bool:
        """PROVISIONING or STARTING: RunPod is starting it; wait, never start it again."""
        return self.status in STARTING_STATUSES

    @property
    def stopped(self) -> bool:
        """EXITED (and the other non-running statuses but ERROR): it needs a start."""
        return self.status in STOPPED_STATUSES and self.status != ERROR_STATUS

    @property
    def errored(self) -> bool:
        """ERROR: the container failed; a start may bring it back (podAction)."""
        return self.status == ERROR_STATUS

    @property
    def status_known(self) -> bool:
        return self.status in KNOWN_STATUSES


@dataclass(frozen=True)
class PodSpec:
    """Everything a create sends; built from the config by the watchdog."""

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
    # The host CUDA constraint: an exact set, or a floor (never both: CreateGpuConfig).
    allowed_cuda_versions: tuple[str, ...] = ()
    min_cuda_version: str | None = None
    # A spot pod: created through GraphQL (podmgr/runpod/spot.py), v2 has no spot create.
    interruptible: bool = False
    network_volume_id: str | None = None
    data_center_ids: tuple[str, ...] = ()
    docker_entrypoint: tuple[str, ...] = ()  # the pod's guard (podmgr/guard/launch.py)


@dataclass(frozen=True)
class GpuType:
    """One row of the GPU catalog (RunPod OpenAPI v2, GpuType), in one cloud's view."""

    id: str
    display_name: str
    memory_gb: float | None = None
    secure_price: float | None = None
    community_price: float | None = None
    secure_cloud: bool | None = None
    community_cloud: bool | None = None
    # With include=AVAILABILITY: NONE|LOW|MEDIUM|HIGH per cloud, and the CUDA versions whose
    # machines have free capacity now.
    secure_stock: str | None = None
    community_stock: str | None = None
    secure_cuda: tuple[str, ...] = ()
    community_cuda: tuple[str, ...] = ()
    max_count: int | None = None

    def price(self, cloud: str) -> float | None:
        return self.secure_price if cloud == "SECURE" else self.community_price

    def offered(self, cloud: str) -> bool | None:
        return self.secure_cloud if cloud == "SECURE" else self.community_cloud

    def stock(self, cloud: str) -> str | None:
        return self.secure_stock if cloud == "SECURE" else self.community_stock

    def cuda_available(self, cloud: str) -> tuple[str, ...]:
        return self.secure_cuda if cloud == "SECURE" else self.community_cuda
