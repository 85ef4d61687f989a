"""Value checks shared by the config's sections: GraphQL-safe strings, env names, `${NAME}`.

Kept apart from the models so that `upstreams.py` and the sections import it without
importing each other (no import circle inside the config package).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from podmgr.cuda import RUNPOD_CUDA_VERSIONS
from podmgr.errors import ConfigError

__all__ = [
    "check_cuda_known",
    "check_env_name_free",
    "check_graphql_safe",
    "is_loopback",
    "resolve_env_value",
]

# Characters that would break or change a GraphQL string the SDK builds by interpolation.
_UNSAFE_GRAPHQL = re.compile(r'["\\\x00-\x1f\x7f]')
_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

# Env names RunPod sets inside every pod (docs: pods/templates/environment-variables;
# ../shared/RUNPOD_FACTS.md) and the ones podmgr sets itself (watchdog/identity.py): an
# `env` entry would shadow them, so the config refuses them.
RUNPOD_SET_ENV = frozenset({"PUBLIC_KEY", "CUDA_VERSION"})
RUNPOD_ENV_PREFIX = "RUNPOD_"
PODMGR_SET_ENV = frozenset({"VLLM_API_KEY", "PODMGR_MANAGED", "PODMGR_CONFIG_ID"})


def check_cuda_known(version: str) -> None:
    """A CUDA version RunPod's hosts report (podmgr/cuda.py), or ValueError naming them."""
    if version not in RUNPOD_CUDA_VERSIONS:
        known = ", ".join(RUNPOD_CUDA_VERSIONS)
        raise ValueError(f"{version!r} is not a CUDA version RunPod knows ({known})")


def check_graphql_safe(value: str, what: str = "value") -> str:
    """Reject a string that the SDK's string-built GraphQL would break on."""
    bad = _UNSAFE_GRAPHQL.search(value)
    if bad:
        raise ValueError(
            f"{what} contains {bad.group()!r}; quotes, backslashes and control characters "
            "cannot be sent through RunPod's API"
        )
    return value


def resolve_env_value(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Turn `${NAME}` into the value of env var NAME (so secrets stay out of the file)."""
    match = _ENV_REFERENCE.match(value)
    if not match:
        return value
    source = os.environ if environ is None else environ
    name = match.group(1)
    if name not in source:
        raise ConfigError(f"names environment variable {name}, which is not set", field="env")
    return source[name]


def check_env_name_free(key: str) -> None:
    """Refuse an env name that RunPod or podmgr sets in the pod (it would shadow theirs)."""
    if key == "RUNPOD_API_KEY":
        raise ValueError(
            "env RUNPOD_API_KEY would put this account's full API key into the pod, "
            "visible in RunPod's console, and shadow the pod-scoped key RunPod injects; "
            "remove it"
        )
    if key.startswith(RUNPOD_ENV_PREFIX) or key in RUNPOD_SET_ENV:
        raise ValueError(f"env {key} is set by RunPod inside the pod; remove it")
    if key in PODMGR_SET_ENV or key.startswith("PODMGR_GUARD_"):
        raise ValueError(f"env {key} is set by podmgr itself on every pod; remove it")


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches."""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
