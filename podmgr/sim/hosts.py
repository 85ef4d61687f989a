"""Simulated hosts' CUDA versions: where a pod is placed, and whether its image starts there.

`--host-cuda 12.4,12.8` spreads each GPU type's stock over hosts with those CUDA versions.
A create with `allowedCudaVersions` is placed only on a host with one of them (RunPod
OpenAPI v1, PodCreateInput.allowedCudaVersions; none fits: RunPod's capacity error);
without it, on the oldest host, the worst case (RunPod does not say how it picks, and a
test must fail the same way every time). `--image-min-cuda 12.8`: a pod on an older host
stays RUNNING (REST v2: STARTING) and never gets a container, as a vLLM image on a too-old
host does (vllm#18813; RUNPOD_FACTS.md "Startup as it really is"). `host_versions` is what
the catalog reports as `cudaVersions` (podmgr/sim/v2/catalog.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from podmgr.cuda import RUNPOD_CUDA_VERSIONS, cuda_key

__all__ = ["host_versions", "image_starts_on", "parse_cuda_list", "place_on_host"]


def parse_cuda_list(text: str) -> tuple[str, ...]:
    """ "12.4,12.8" -> ("12.4", "12.8"); ValueError names a version RunPod does not know."""
    versions = tuple(v.strip() for v in text.split(",") if v.strip())
    if not versions:
        raise ValueError("needs at least one CUDA version")
    for version in versions:
        if version not in RUNPOD_CUDA_VERSIONS:
            raise ValueError(f"{version!r} is not one of {', '.join(RUNPOD_CUDA_VERSIONS)}")
    return versions


def place_on_host(
    hosts: Sequence[str], allowed: Sequence[str], min_cuda: str | None = None
) -> str | None:
    """The host CUDA version a create lands on (see the module docstring); None: no host
    of the allowed versions (or at or above `min_cuda`) exists. No hosts configured: a host
    with the newest CUDA.

    `min_cuda` is REST v2's `gpu.minCudaVersion`, "compared numerically rather than as a
    decimal, so 12.11 is above 12.2" (RunPod REST API v2, CreateGpuConfig).
    """
    pool = list(hosts) or ([*allowed] if allowed else [RUNPOD_CUDA_VERSIONS[-1]])
    fitting = [h for h in pool if not allowed or h in allowed]
    if min_cuda is not None:
        fitting = [h for h in fitting if cuda_key(h) >= cuda_key(min_cuda)]
    if not fitting:
        return None
    return max(fitting, key=cuda_key) if not hosts else min(fitting, key=cuda_key)


def image_starts_on(host_cuda: str | None, image_min_cuda: str | None) -> bool:
    """False when the image needs a newer CUDA than the host has."""
    if host_cuda is None or image_min_cuda is None:
        return True
    return cuda_key(host_cuda) >= cuda_key(image_min_cuda)


def host_versions(hosts: Sequence[str]) -> list[str]:
    """The CUDA versions hosts report, oldest first; none configured: every known one (a
    create may then ask for any, as `place_on_host` allows)."""
    return sorted(set(hosts or RUNPOD_CUDA_VERSIONS), key=cuda_key)
