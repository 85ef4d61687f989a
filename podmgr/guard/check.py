"""Did the guard get into the pod? Read from the pod's container log, and said (pure).

The guard travels in the create's `args` as RunPod's start-command JSON `{"entrypoint":
[...], "cmd": [...]}` (RunPod docs, pods/templates/manage-templates.mdx). That REST v2's
`args` honours the JSON form is documented nowhere (../shared/RUNPOD_FACTS.md, "Start-
command JSON"), so every pod with a guard is checked, from the lines RunPod's
`GET /pods/{id}/logs` streams (source `container`):

  - the guard's first line, `{"at": ..., "guard": "armed", ...}` (podmgr/guard/guard.py
    `log("armed", ...)`): the guard runs; confirmed.
  - vLLM's argument error naming the JSON (`api_server.py: error: unrecognized arguments:
    {"entrypoint": ...`: argparse's message, vLLM v0.8.5 `entrypoints/openai/cli_args.py`
    builds its parser on argparse): RunPod passed the string to the image's entrypoint
    literally; the guard never ran and vLLM cannot start. The pod is replaced once without
    the guard and the finding is kept in the state, so later pods do not try again.

Nothing else in a log decides anything here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from podmgr.config import Config
from podmgr.guard.launch import guard_problem
from podmgr.state import State

__all__ = ["ARMED_WHY", "LITERAL_WHY", "GuardFinding", "guard_finding", "guard_status"]

ARMED_WHY = "the guard's armed line is in the pod's log"
LITERAL_WHY = (
    "RunPod passed the start-command JSON to vLLM literally (vLLM: unrecognized arguments), "
    "so the guard cannot run in pods: limits hold only while watchdog passes run"
)
_ARG_ERROR = "error: unrecognized arguments"


@dataclass(frozen=True)
class GuardFinding:
    """What a pod's log said of its guard: `confirmed` True or False, and why."""

    confirmed: bool
    why: str


def guard_finding(lines: Iterable[str]) -> GuardFinding | None:
    """The first decisive line among `lines` (container lines, oldest first), or None."""
    for line in lines:
        if _is_armed(line):
            return GuardFinding(True, ARMED_WHY)
        if _ARG_ERROR in line and '"entrypoint"' in line:
            return GuardFinding(False, LITERAL_WHY)
    return None


def _is_armed(line: str) -> bool:
    text = line.strip()
    if not text.startswith("{") or '"armed"' not in text:
        return False
    try:
        event = json.loads(text)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("guard") == "armed"


def guard_status(config: Config, state: State) -> dict[str, Any]:
    """Whether a guard runs in the pod: `confirmed` True (its armed line is in the pod's
    log), False (it cannot: said why), None (not seen yet, or no pod)."""
    pod = state.pod
    if pod is not None and pod.guard is not None:
        why = pod.guard_why or "waiting for the guard's armed line in the pod's log"
        return {"confirmed": pod.guard_confirmed, "why": why}
    if state.start_command_json is False:
        return {"confirmed": False, "why": LITERAL_WHY}
    problem = guard_problem(config)
    if problem is not None:
        return {"confirmed": False, "why": f"{problem}: limits hold only while passes run"}
    if pod is not None:
        return {"confirmed": False, "why": "the pod was created without one"}
    return {"confirmed": None, "why": "no pod"}
