"""Which pods are ours: the name prefix, the marker env and the per-checkout config id.

RunPod pods have no tags, only a non-unique name and an env list. Every pod we create is
named `<pod_name_prefix><config id>-<random>` and carries `PODMGR_MANAGED=1` and
`PODMGR_CONFIG_ID=<short hash of the absolute config path>`, so two checkouts (or a test
and a real setup) sharing one RunPod account never touch each other's pods.

With several pods configured (config `pods`), each pod also carries `PODMGR_POD=<its
configured name>` (`owner_of`); a pod without it was made for a one-pod config, whose pod is
named "pod", so a state or RunPod listing from before issue 23 keeps its meaning.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from podmgr.runpod.values import PodInfo

__all__ = [
    "MARKER_CONFIG_ID",
    "MARKER_MANAGED",
    "MARKER_POD",
    "VLLM_KEY_ENV",
    "config_id",
    "is_ours",
    "marker_env",
    "new_pod_name",
    "new_vllm_key",
    "owner_of",
]

MARKER_MANAGED = "PODMGR_MANAGED"
MARKER_CONFIG_ID = "PODMGR_CONFIG_ID"
MARKER_POD = "PODMGR_POD"
VLLM_KEY_ENV = "VLLM_API_KEY"
ONE_POD = "pod"  # config/pods.py DEFAULT_POD_NAME


def config_id(config_path: Path | str) -> str:
    """A short stable id of one checkout: a hash of the absolute config path."""
    absolute = str(Path(config_path).expanduser().resolve())
    return hashlib.sha256(absolute.encode()).hexdigest()[:10]


def marker_env(cid: str) -> dict[str, str]:
    return {MARKER_MANAGED: "1", MARKER_CONFIG_ID: cid}


def new_pod_name(prefix: str, cid: str) -> str:
    """Unique per create, so a lost create can be found again by its name."""
    return f"{prefix}{cid[:6]}-{secrets.token_hex(3)}"


def new_vllm_key() -> str:
    """A fresh per-pod key: the pod URL is public, vLLM must require it."""
    return "pm-" + secrets.token_urlsafe(24)


def is_ours(pod: PodInfo, prefix: str, cid: str) -> bool:
    """True for a pod this checkout created (prefix and both markers must match)."""
    return (
        pod.name.startswith(prefix)
        and pod.env.get(MARKER_MANAGED) == "1"
        and pod.env.get(MARKER_CONFIG_ID) == cid
    )


def owner_of(pod: PodInfo) -> str:
    """The configured pod (by name) a pod of ours was made for: its PODMGR_POD marker, or
    "pod" for a pod made before pods had names."""
    return pod.env.get(MARKER_POD) or ONE_POD
