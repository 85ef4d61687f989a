"""What a pod was created with: its spec and its ports (validated against the catalog).

Both APIs build a `PodSpec` (podmgr/sim/operations.py); podmgr/sim/pods.py plays it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PodSpec", "PortSpec"]


@dataclass(frozen=True)
class PortSpec:
    """One exposed port, from RunPod's "8000/http,22/tcp" notation."""

    number: int
    type: str

    @staticmethod
    def parse_list(text: str | None) -> list[PortSpec]:
        """Ports as written at create; none given means the vLLM template's "8000/http"."""
        specs = []
        for item in (text or "8000/http").split(","):
            number, _, kind = item.strip().partition("/")
            if number.strip():
                specs.append(PortSpec(int(number), (kind or "http").lower()))
        return specs


@dataclass(frozen=True)
class PodSpec:
    """What a create asked for (already validated against the catalog)."""

    name: str
    image_name: str
    gpu_type_id: str
    gpu_display_name: str
    gpu_count: int
    cloud_type: str
    cost_per_hr: float
    docker_args: str = ""
    env: dict[str, str] = field(default_factory=dict)
    ports: tuple[PortSpec, ...] = (PortSpec(8000, "http"),)
    container_disk_in_gb: int = 10
    volume_in_gb: int = 0
    volume_mount_path: str = "/runpod-volume"
    template_id: str | None = None
    # What the create asked for beyond the pod itself (the ledger shows them to tests).
    support_public_ip: bool = False
    start_ssh: bool = False
    memory_in_gb: int = 62
    vcpu_count: int = 16
    # What the create asked for beyond the pod itself (v2's CreatePodRequest, or GraphQL's
    # spot create): stored and shown in the ledger.
    interruptible: bool = False
    docker_entrypoint: tuple[str, ...] = ()
    docker_start_cmd: tuple[str, ...] = ()
    allowed_cuda_versions: tuple[str, ...] = ()
    data_center_ids: tuple[str, ...] = ()
    network_volume_id: str | None = None
    gpu_type_priority: str = "availability"
    # REST v2 create fields (RunPod REST API v2, CreatePodRequest): `args` as given, and
    # what the Pod body shows back; `min_cuda_version` is a placement floor (hosts.py).
    args: str = ""
    registry: str | None = None
    global_networking: bool = False
    min_cuda_version: str | None = None
    # The argument string vLLM's argparse refuses (start-command JSON that reached the
    # image's entrypoint literally: podmgr/sim/v2/create.py); its vLLM never starts.
    vllm_arg_error: str | None = None
