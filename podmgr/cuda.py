"""Host CUDA versions: which ones RunPod knows, and which a pinned vLLM image needs.

A vLLM image built on CUDA X does not start on a host whose driver supports less: the
container never comes up and the pod bills (vllm#18813 `unsatisfied condition:
cuda>=12.8`; RUNPOD_FACTS.md "Startup as it really is"). RunPod places a pod only on hosts
at or above the create's `gpu.minCudaVersion`, or in its `gpu.allowedCudaVersions` (RunPod
OpenAPI v2, CreateGpuConfig: "Omit to accept any version"), so podmgr always sends a
floor, as dstack does (dstack#3299, PR #3304).
"""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_CUDA_FLOOR",
    "RUNPOD_CUDA_VERSIONS",
    "cuda_key",
    "image_cuda_floor",
    "versions_from",
]

# The CUDA versions RunPod's hosts report (v1's allowedCudaVersions enum; v2 takes any
# `major.minor`, CreateGpuConfig), oldest first: a typo in the config is caught early.
RUNPOD_CUDA_VERSIONS: tuple[str, ...] = (
    "11.8", "12.0", "12.1", "12.2", "12.3", "12.4", "12.5", "12.6", "12.7", "12.8", "12.9",
    "13.0",
)  # fmt: skip

# vLLM release -> the host CUDA its official image needs (RUNPOD_FACTS.md): the v0.8 line
# is built on CUDA 12.4 (vllm#5635); v0.9.0 needs 12.8 (vllm#18813); v0.14 needs 12.9 and
# v0.20 wants 13.0 (runpod-workers/worker-vllm#288). (first release, floor), newest first.
_VLLM_FLOORS: tuple[tuple[tuple[int, int], str], ...] = (
    ((0, 20), "13.0"),
    ((0, 14), "12.9"),
    ((0, 9), "12.8"),
    ((0, 0), "12.4"),
)
_VLLM_TAG = re.compile(r"^(?:docker\.io/)?vllm/vllm-openai:v?(\d+)\.(\d+)(?:[.\-].*)?$")

# The floor for an image podmgr does not know (another image, `:latest`): 12.8, what every
# vLLM release since v0.9.0 needs (vllm#18813). A known vLLM tag gets its own need (v0.8.5:
# 12.4, so more hosts qualify); `config validate` refuses a floor below it.
DEFAULT_CUDA_FLOOR = "12.8"


def cuda_key(version: str) -> tuple[int, int]:
    """ "12.8" -> (12, 8), for comparing versions."""
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)


def versions_from(floor: str) -> list[str]:
    """RunPod's CUDA versions from `floor` up (the value sent as allowedCudaVersions)."""
    return [v for v in RUNPOD_CUDA_VERSIONS if cuda_key(v) >= cuda_key(floor)]


def image_cuda_floor(image: str) -> str | None:
    """The host CUDA an official vLLM image tag needs, or None when the tag is not known
    (another image, `:latest`, a digest)."""
    match = _VLLM_TAG.match(image.strip())
    if match is None:
        return None
    release = (int(match.group(1)), int(match.group(2)))
    return next(floor for first, floor in _VLLM_FLOORS if release >= first)
