"""Doctor's pure decisions: which GPU to rent, the most it can cost, and the pod's config.

The smallest useful test is a 0.5B model (`Qwen/Qwen2.5-0.5B-Instruct`, about 1 GB of
weights) served by vLLM with a 2,048-token context: any GPU with 8 GB fits it, so doctor
takes the cheapest (GPU type, cloud) pair in RunPod's catalog that has stock and a host
CUDA the image can run on (`GET /catalog/gpus?include=AVAILABILITY&product=POD`, RunPod
OpenAPI v2 listGpuTypes; the catalog "orders candidates; it is not a reservation").
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from podmgr.config import Config, PodSection, build_config
from podmgr.cuda import cuda_key
from podmgr.runpod.placement import cuda_usable
from podmgr.runpod.ratelimit import Window
from podmgr.runpod.values import GpuType

__all__ = [
    "MIN_CUDA",
    "MIN_MEMORY_GB",
    "MODEL",
    "Choice",
    "bound_usd",
    "cheapest",
    "doctor_cid",
    "doctor_config",
    "doctor_floor",
    "minute_left",
]

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
VLLM_ARGS = ["--max-model-len", "2048"]
MIN_CUDA = "12.4"
MIN_MEMORY_GB = 8.0
CLOUDS = ("SECURE", "COMMUNITY")
NAME_PART = "doctor-"


@dataclass(frozen=True)
class Choice:
    """The (GPU type, cloud) doctor rents, at its list price per hour."""

    gpu_type_id: str
    display_name: str
    cloud: str
    price: float
    memory_gb: float
    usable: int  # how many (type, cloud) pairs qualified

    def describe(self) -> str:
        return (
            f"{self.display_name} ({self.gpu_type_id}) in {self.cloud}, "
            f"{self.memory_gb:g} GB, ${self.price:.2f}/h: the cheapest of {self.usable} usable "
            f"(GPU type, cloud) pairs"
        )


def doctor_floor(pod: PodSection) -> str:
    """The host CUDA floor: the image's (pod.cuda_floor), at least 12.4."""
    floor = pod.cuda_floor
    return floor if cuda_key(floor) >= cuda_key(MIN_CUDA) else MIN_CUDA


def cheapest(catalog: list[GpuType], min_cuda: str) -> Choice | None:
    """The cheapest pair with a price, stock not NONE, >= 8 GB and a usable CUDA version."""
    fits = [
        (price, gpu, cloud)
        for gpu in catalog
        for cloud in CLOUDS
        if (price := _usable_price(gpu, cloud, min_cuda)) is not None
    ]
    if not fits:
        return None
    price, gpu, cloud = min(fits, key=lambda fit: (fit[0], fit[1].id, fit[2]))
    return Choice(gpu.id, gpu.display_name, cloud, price, gpu.memory_gb or 0.0, len(fits))


def _usable_price(gpu: GpuType, cloud: str, min_cuda: str) -> float | None:
    price = gpu.price(cloud)
    if not price or price <= 0 or gpu.offered(cloud) is False:
        return None
    if gpu.stock(cloud) in (None, "NONE") or (gpu.memory_gb or 0) < MIN_MEMORY_GB:
        return None
    if not cuda_usable(gpu.cuda_available(cloud), min_cuda, ()):
        return None
    return price


def bound_usd(price_per_hr: float, deadline_seconds: float) -> float:
    """The most doctor can spend: the price for the whole deadline, rounded up to a cent.
    The guard ends its pod at that deadline, and doctor terminates every pod by then."""
    return math.ceil(price_per_hr * deadline_seconds / 3600 * 100) / 100


def minute_left(windows: list[Window]) -> float | None:
    """Calls left in the `minute` window of RunPod's last `RateLimit` header."""
    return next((w.remaining for w in windows if w.name == "minute"), None)


def doctor_cid(config_path: Path) -> str:
    """The marker config id of doctor's pods: its own, not the config's, so a watchdog pass
    of the same config never adopts or terminates a pod doctor is testing
    (podmgr/watchdog/identity.py: a pod is ours only when PODMGR_CONFIG_ID matches)."""
    absolute = str(config_path.expanduser().resolve()) + "#doctor"
    return hashlib.sha256(absolute.encode()).hexdigest()[:10]


def doctor_config(
    config: Config,
    choice: Choice,
    *,
    deadline_seconds: float,
    idle_seconds: int,
    bound: float,
) -> Config:
    """The user's config with doctor's test pod: the 0.5B model on the chosen GPU, the
    guard on with doctor's deadline, idle limit and budget, nothing that ties the pod to
    a volume, a data center or a template, no lease (no watchdog renews it)."""
    data = config.model_dump(exclude={"base_dir"})
    data["pod"].update(
        model=MODEL,
        docker_args=None,
        vllm_args=VLLM_ARGS,
        gpu_type_id=choice.gpu_type_id,
        gpu_count=1,
        cloud_type=choice.cloud,
        interruptible=False,
        template_id=None,
        allowed_cuda_versions=None,
        min_cuda_version=doctor_floor(config.pod),
        volume_in_gb=0,
        network_volume_id=None,
        data_center_ids=None,
        pod_name_prefix=config.pod.pod_name_prefix + NAME_PART,
    )
    data["limits"].update(
        runtime_seconds=max(1, round(deadline_seconds)),
        idle_timeout_seconds=idle_seconds,
        max_cost_usd=bound,
    )
    data["guard"].update(enabled=True, lease_seconds=None)
    data["upstreams"] = config.upstreams  # as objects: an old file's literal key stays
    # The user's env overrides are in `config` already: do not apply them twice.
    return build_config(data, base_dir=config.base_dir, environ={})
