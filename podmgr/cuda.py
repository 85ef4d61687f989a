"""Host CUDA versions: which ones RunPod knows, and which a pinned vLLM image needs.

A vLLM image built on CUDA X does not start on a host whose driver supports less: the
container never comes up, the pod stays RUNNING and bills (vllm#18813 `unsatisfied
condition: cuda>=12.8`; RUNPOD_FACTS.md "Startup as it really is"). RunPod places a pod
only on hosts whose CUDA version is in the create's `allowedCudaVersions` (RunPod OpenAPI
v1, PodCreateInput.allowedCudaVersions: "If not set, any CUDA version is acceptable"), so
podmgr always sends a floor, as dstack does (dstack#3299, PR #3304).
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

# The values RunPod's create accepts (RunPod OpenAPI v1, PodCreateInput.allowedCudaVersions
# enum), oldest first.
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

# The default floor: 12.8. The default image (v0.8.5) itself runs from 12.4, but every vLLM
# release since v0.9.0 needs 12.8 (vllm#18813), so this floor still holds after a bump of
# the pinned image to v0.9..v0.13; `config validate` refuses a floor below what a known
# image tag needs. Widen it (["12.4", ...]) for more hosts with the v0.8 line.
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
