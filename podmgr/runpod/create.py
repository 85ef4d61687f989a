"""What every create sends, whichever API takes it: the start command and the spot mark.

REST v2 creates (client.py) and GraphQL's spot create (spot.py) both start the container
with `start_command(spec)`, and a spot pod carries `SPOT_ENV=1` in its env, which is how
`pod_info` tells a spot pod from v2's answers later.
"""

from __future__ import annotations

import json
import shlex

from podmgr.errors import ConfigError
from podmgr.runpod.values import PodSpec

__all__ = ["SPOT_ENV", "start_command"]

# v2's Pod does not say whether a pod is spot; podmgr marks its spot pods in their env.
SPOT_ENV = "PODMGR_SPOT"


def start_command(spec: PodSpec) -> str | None:
    """The create's `args`. With the guard: RunPod's start-command JSON
    `{"entrypoint": [...], "cmd": [...]}` (RunPod docs, pods/templates/manage-templates.mdx;
    v2 has no entrypoint field and does not document that `args` honours the JSON: the
    watchdog checks it on each pod, podmgr/guard/check.py). Without: vLLM's
    arguments as one string ("arguments passed to the container entrypoint", Pod.args)."""
    if not spec.docker_entrypoint:
        return spec.docker_args or None
    try:
        cmd = shlex.split(spec.docker_args)
    except ValueError as error:
        raise ConfigError(
            f"cannot split {spec.docker_args!r}: {error}", field="docker_args"
        ) from None
    return json.dumps({"entrypoint": list(spec.docker_entrypoint), "cmd": cmd})
