"""The simulator's GPU catalog: a few RunPod GPU types with prices, as `gpuTypes` shows them.

Prices are in USD per GPU per hour and only need to be plausible; the ledger multiplies the
price of the pod's cloud type by its GPU count, as RunPod bills.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AVAILABILITY_LEVELS",
    "GPU_TYPES",
    "SPOT_FACTOR",
    "GpuType",
    "find_gpu_type",
    "price_per_gpu",
    "spot_price",
    "stock_of",
]

# RunPod REST API v2, AvailabilityLevel. `--gpu-stock` sets a type's; unset types are HIGH.
AVAILABILITY_LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")

# Spot (interruptible) pods cost about half of on-demand (issue 11); RunPod's catalog has
# `secureSpotPrice` and `communitySpotPrice` per GPU type (RunPod OpenAPI v1, Pod.machine
# .gpuType). The simulator's spot price is this share of the on-demand one.
SPOT_FACTOR = 0.6


@dataclass(frozen=True)
class GpuType:
    """One GPU type with the fields RunPod's `GpuType` exposes that the simulator knows."""

    id: str
    display_name: str
    memory_in_gb: int
    secure_price: float | None
    community_price: float | None
    cuda_cores: int
    max_gpu_count: int = 8
    # False: no spot offer for this GPU type (its spot prices are null).
    spot: bool = True

    def lowest_price(self, gpu_count: int) -> dict[str, Any]:
        """RunPod's `LowestPrice` for `gpu_count` GPUs (a price list, not a capacity signal)."""
        prices = [p for p in (self.secure_price, self.community_price) if p is not None]
        lowest = min(prices) * gpu_count
        return {
            "gpuName": self.display_name,
            "gpuTypeId": self.id,
            "minimumBidPrice": round(lowest * 0.6, 4),
            "uninterruptablePrice": round(lowest, 4),
            "minMemory": 31 * gpu_count,
            "minVcpu": 8 * gpu_count,
            "stockStatus": "High",
            "maxUnreservedGpuCount": self.max_gpu_count,
            "availableGpuCounts": list(range(1, self.max_gpu_count + 1)),
        }

    def to_graphql(self) -> dict[str, Any]:
        """The `GpuType` object; `lowestPrice(input)` is resolved by the callable."""

        def lowest(_info: Any, input: dict[str, Any] | None = None) -> dict[str, Any]:
            return self.lowest_price(int((input or {}).get("gpuCount") or 1))

        return {
            "id": self.id,
            "displayName": self.display_name,
            "manufacturer": "Nvidia",
            "memoryInGb": self.memory_in_gb,
            "cudaCores": self.cuda_cores,
            "secureCloud": self.secure_price is not None,
            "communityCloud": self.community_price is not None,
            "securePrice": self.secure_price,
            "communityPrice": self.community_price,
            "oneMonthPrice": _discount(self.secure_price, 0.9),
            "threeMonthPrice": _discount(self.secure_price, 0.85),
            "oneWeekPrice": _discount(self.secure_price, 0.95),
            "communitySpotPrice": spot_price(self, "COMMUNITY"),
            "secureSpotPrice": spot_price(self, "SECURE"),
            "maxGpuCount": self.max_gpu_count,
            "maxGpuCountSecureCloud": self.max_gpu_count if self.secure_price else 0,
            "maxGpuCountCommunityCloud": self.max_gpu_count if self.community_price else 0,
            "lowestPrice": lowest,
        }


def _discount(price: float | None, factor: float) -> float | None:
    return None if price is None else round(price * factor, 4)


GPU_TYPES: tuple[GpuType, ...] = (
    GpuType("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 0.69, 0.34, 16384),
    GpuType("NVIDIA RTX A6000", "RTX A6000", 48, 0.76, 0.33, 10752),
    GpuType("NVIDIA L40S", "L40S", 48, 0.86, 0.79, 18176),
    GpuType("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, 1.64, 1.19, 6912),
    GpuType("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 2.99, None, 16896, spot=False),
)


def find_gpu_type(gpu_type_id: str) -> GpuType | None:
    """The catalog entry with this id, or None."""
    return next((gpu for gpu in GPU_TYPES if gpu.id == gpu_type_id), None)


def price_per_gpu(gpu: GpuType, cloud_type: str) -> float:
    """Hourly price of one GPU: SECURE and COMMUNITY use their price, ALL the cheaper one."""
    if cloud_type == "SECURE" and gpu.secure_price is not None:
        return gpu.secure_price
    if cloud_type == "COMMUNITY" and gpu.community_price is not None:
        return gpu.community_price
    prices = [p for p in (gpu.secure_price, gpu.community_price) if p is not None]
    return min(prices)


def spot_price(gpu: GpuType, cloud_type: str) -> float | None:
    """Hourly spot price of one GPU in that cloud, or None where there is no spot offer."""
    price = gpu.secure_price if cloud_type == "SECURE" else gpu.community_price
    return _discount(price, SPOT_FACTOR) if gpu.spot else None


def stock_of(stock: tuple[tuple[str, str], ...], gpu_type_id: str) -> str:
    """The availability `--gpu-stock` gave this GPU type, HIGH when it gave none."""
    return dict(stock).get(gpu_type_id, "HIGH")
