"""How the guard travels: the start-command JSON in the create's `args`, and the pod's env.

REST v2 has no entrypoint field. RunPod's container start command accepts JSON
`{"entrypoint": [...], "cmd": [...]}` to replace the image's ENTRYPOINT and CMD (RunPod
docs, pods/templates/manage-templates.mdx), so the create's `args` carries `{"entrypoint":
["python3", "-c", <podmgr/guard/guard.py>], "cmd": ["vllm", "serve", <vLLM's args>]}`
(podmgr/runpod/client.py `start_command`; `vllm serve` is the CLI the vllm/vllm-openai
image ships and takes `--model`). That v2 honours the JSON is not documented: each pod's
log is checked (podmgr/guard/check.py), and once RunPod is seen passing it
literally, pods are made without the guard. No image of ours, no download. The limits go as
`PODMGR_GUARD_*` env values: PODMGR_GUARD_RULES lists the rules the table of end reasons
(podmgr/rules.py) gives the guard, as JSON (reason, measure, limit), and the figures its
measures need (created at, spent, interval) go beside them; none is a secret (the start
command and env are visible in RunPod's console). The key the guard uses is the pod-scoped
`RUNPOD_API_KEY` RunPod injects, never sent by podmgr.

The guard is impossible when the image is not vLLM's official one (it may lack `python3` or
the `vllm` CLI) or `docker_args` is a whole command rather than vLLM's arguments:
`guard_problem` says why, and `podmgr config validate` / `--refresh-catalog` print it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from podmgr.config import Config
from podmgr.guard.guard import MARKER as GUARD_MARKER
from podmgr.guard.guard import Limits as GuardLimits
from podmgr.rules import Figures, Limits, guard_rules
from podmgr.state import Session

__all__ = [
    "GUARD_ENV_PREFIX",
    "guard_entrypoint",
    "guard_env",
    "guard_limits",
    "guard_line",
    "guard_problem",
    "guard_rules_of",
    "guard_source",
    "is_guard_entrypoint",
]

GUARD_ENV_PREFIX = "PODMGR_GUARD_"
VLLM_IMAGE = "vllm/vllm-openai"
DEFAULT_REST_URL = "https://api.runpod.io/v2"


@cache
def guard_source() -> str:
    """The guard's program text, as it goes into the start command."""
    return (Path(__file__).parent / "guard.py").read_text(encoding="utf-8")


def guard_entrypoint() -> list[str]:
    return ["python3", "-c", guard_source()]


def is_guard_entrypoint(entrypoint: tuple[str, ...] | list[str]) -> bool:
    """A pod's entrypoint is a podmgr guard (the simulator runs those)."""
    return len(entrypoint) == 3 and entrypoint[1] == "-c" and GUARD_MARKER in entrypoint[2]


def guard_problem(config: Config) -> str | None:
    """Why the guard cannot run in this config's pods, or None when it can."""
    if not config.guard.enabled:
        return "guard is off in the config (guard: false)"
    if config.pod.template_id:
        return f"template {config.pod.template_id} may bring its own command; the guard is left out"
    if not config.pod.image_name.startswith(VLLM_IMAGE + ":"):
        return (
            f"image {config.pod.image_name} is not {VLLM_IMAGE}: it may have no python3 or no "
            "vllm CLI, so the guard is left out"
        )
    command = config.pod.container_command().strip()
    if command and not command.startswith("-"):
        return (
            "docker_args is a whole command, not vLLM's arguments: the guard cannot wrap it "
            "and is left out"
        )
    return None


def guard_env(
    config: Config, session: Session | None, now: float, environ: dict[str, str] | None = None
) -> dict[str, str]:
    """The limits for a pod created at `now` in `session`, as env values."""
    env = os.environ if environ is None else environ
    values: dict[str, str] = {
        "CREATED_AT": f"{now:.3f}",
        "INTERVAL_SECONDS": f"{config.guard.interval_seconds:g}",
    }
    if session is not None:
        values["DEADLINE"] = f"{session.deadline:.3f}"
        values["SPENT_USD"] = f"{session.cost_usd:.6f}"
    if config.limits.max_cost_usd is not None:
        values["MAX_COST_USD"] = f"{config.limits.max_cost_usd:g}"
    if config.limits.idle_timeout_seconds is not None:
        values["IDLE_SECONDS"] = str(config.limits.idle_timeout_seconds)
    if config.guard.lease_seconds is not None:
        values["LEASE_SECONDS"] = f"{config.guard.lease_seconds:g}"
    values["RULES"] = json.dumps(guard_rules(_figures(config, session, now)))
    api = (env.get("RUNPOD_REST_URL") or DEFAULT_REST_URL).rstrip("/")
    if api != DEFAULT_REST_URL:
        values["API_URL"] = api  # a simulator's REST API v2; RunPod's is the guard's default
    return {GUARD_ENV_PREFIX + key: value for key, value in values.items()}


def _figures(config: Config, session: Session | None, now: float) -> Figures:
    """The session's figures as a pod is created (no session: no deadline)."""
    started = session.started_at if session is not None else now
    deadline = session.deadline if session is not None else math.inf
    spent = session.cost_usd if session is not None else 0.0
    return Figures(now, started, deadline, Limits.of(config), cost_usd=spent)


def guard_limits(env: Mapping[str, str]) -> dict[str, str] | None:
    """The guard's limits in a pod's env (lower-case names), None when it has no guard."""
    limits = {
        key.removeprefix(GUARD_ENV_PREFIX).lower(): value
        for key, value in env.items()
        if key.startswith(GUARD_ENV_PREFIX) and key != GUARD_ENV_PREFIX + "API_URL"
    }
    return limits or None


def guard_rules_of(limits: Mapping[str, str]) -> GuardLimits:
    """A pod's guard limits (`guard_limits`, as the state keeps them) as its guard reads
    them, rules included; ValueError (or KeyError) when they do not parse."""
    return GuardLimits.from_env({GUARD_ENV_PREFIX + k.upper(): v for k, v in limits.items()})


def guard_line(limits: Mapping[str, str] | None, config: Config) -> str:
    """`podmgr status`'s line about the pod's guard."""
    if not limits:
        why = guard_problem(config) or "the pod was created without one"
        return f"none in this pod ({why}): limits hold only while watchdog passes run"
    parts = []
    if "deadline" in limits:
        stamp = time.strftime("%H:%M:%S UTC", time.gmtime(float(limits["deadline"])))
        parts.append(f"deadline {stamp}")
    if "max_cost_usd" in limits:
        spent = float(limits.get("spent_usd", "0"))
        parts.append(f"budget ${float(limits['max_cost_usd']):.2f} (${spent:.2f} spent before)")
    if "idle_seconds" in limits:
        parts.append(f"idle {limits['idle_seconds']}s")
    if "lease_seconds" in limits:
        parts.append(f"lease {limits['lease_seconds']}s")
    parts.append(f"checks every {limits.get('interval_seconds', '?')}s")
    return "armed in the pod: " + ", ".join(parts)
