"""Fault injection: which failures the simulator plays, how often, and how they are written.

A fault is a name from `FAULT_NAMES`, a trigger and parameters. Triggers: a probability
(drawn on every matching call), a count (fires on the next N matching calls), or neither
(fires on every matching call). "Matching" is decided by the caller of `FaultBook.draw`,
e.g. `capacity` only matches a create for one of its `gpu_type_ids`.

Written forms, parsed by `parse_fault` (CLI `--fault`) and `fault_from_json` (JSON body of
`POST /_sim/faults` and the CLI's JSON form):
    NAME                      always
    NAME:0.2                  probability 0.2
    NAME:x3                   the next 3 matching calls
    NAME:x1,key=value,...     with parameters; list values are separated by `|`
    {"fault": NAME, "count": 3, "status": 503}   (parameters at top level or under "params")
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAULT_NAMES", "Fault", "FaultBook", "FaultSpec", "fault_from_json", "parse_fault"]

API_ERROR_STATUSES = (500, 502, 503, 429)

# name -> {parameter: kind}; kinds: "status", "upstream_status", "seconds", "str", "list",
# or "one of a|b" (a choice among the words after "one of").
FAULT_PARAMS: Mapping[str, Mapping[str, str]] = {
    "api_error": {"status": "status", "field": "str"},
    "api_slow": {"seconds": "seconds", "field": "str"},
    "api_something_went_wrong": {"field": "str"},
    "capacity": {"gpu_type_ids": "list"},
    "resume_no_gpus": {"pod_id": "str"},
    # Listing pods (`myself { pods }`, REST `GET /v2/pods`) fails while a single pod's query
    # (`pod(input: {podId})`, `GET /v2/pods/{id}`) still answers: RunPod's intermittent
    # "Something went wrong" (runpodctl#45) and 5xx pages (RUNPOD_FACTS.md, "Errors as they
    # arrive") strike calls one by one, and the listing is the heaviest. With `status`, an
    # HTML error page instead (issue 10, #7).
    "list_error": {"status": "status"},
    # A created or resumed pod shows CREATED (after create) or RESTARTING (after resume)
    # for `seconds` before RUNNING, with no runtime meanwhile: statuses in RunPod's schema
    # that SkyPilot sees while pods start and treats as still starting (skypilot#9356,
    # RUNPOD_FACTS.md). Fires on creates and resumes, GraphQL and REST (issue 10, finding 8).
    "transient_status": {"seconds": "seconds", "pod_id": "str"},
    # RunPod stops the pod on its own (EXITED without the user asking, `ended_by` runpod):
    # balance at $0 stops every pod (RunPod docs accounts-billing/billing), spot
    # preemption, maintenance (RUNPOD_FACTS.md). Not a container crash: `container_crash`.
    "pod_crash": {"pod_id": "str"},
    # The container dies but the pod stays RUNNING: GraphQL runtime null, the pod URL 502,
    # until the pod is stopped and started (or reset). dstack treats `runtime.ports` None
    # after start as "failed to start" (dstack commit c9b4412; RUNPOD_FACTS.md).
    "container_crash": {"pod_id": "str"},
    # The mutation takes effect, then the answer is an error: GraphQL "Something went wrong"
    # while the pod starts anyway (runpodctl#45); REST create answering 500 while the pod
    # is created and billing, and slow to appear in listings (transformerlab-app#2305):
    # `hide_seconds`. `field`: create|start|stop|terminate|restart (any when unset; reset
    # is kept as a name and matches nothing on REST v2, which has no reset);
    # `body`: the REST 500's body, json (a problem body) or html (a 500 page).
    "api_error_after_apply": {
        "field": "one of create|start|stop|terminate|restart|reset",
        "pod_id": "str",
        "hide_seconds": "seconds",
        "body": "one of json|html",
    },
    # A create naming a templateId fails as RunPod did for an unknown template: `message`
    # misleading (default) answers "There are no longer any instances available with
    # enough disk space." (runpod-python#297: a template id on create_pod produced it);
    # not_found answers "Template not found" (RUNPOD_FACTS.md, "not found" errors).
    "unknown_template": {"message": "one of misleading|not_found"},
    # RunPod's own stops (podmgr/sim/runpod_stops.py): the balance at $0 (every running
    # pod stopped, or terminated without a network volume; creates and starts refused
    # until the faults are cleared), and an interruptible (spot) pod preempted.
    "balance_zero": {},
    # REST v2 answers 429 with `Retry-After: seconds` and a problem body, whatever the
    # counts (RunPod REST API v2, TooManyRequestsError); `field` as the other api faults.
    # RunPod has limited its APIs in stages since September 17, 2026 (dstack#4167).
    "rate_limited": {"seconds": "seconds", "field": "str"},
    # A `start` brings the pod back RUNNING with zero GPUs ("You may be allocated zero
    # GPUs", RunPod docs pods/manage-pods.mdx, pods/troubleshooting/zero-gpus.mdx): its
    # vLLM cannot start (podmgr/sim/pods.py, "failing").
    "zero_gpus": {"pod_id": "str"},
    "preempt": {"pod_id": "str"},
    # vLLM v0.8.5's V1 engine dies while the pod serves: `/health` stays 200, the next
    # request that needs the engine gets a 500, the server exits and RunPod restarts the
    # container (RUNPOD_FACTS.md, "vLLM v0.8.5 as it is"; podmgr/sim/edge.py).
    "vllm_die": {"pod_id": "str"},
    # vLLM cannot start: the container writes the failure's real lines at its moment, exits
    # and is restarted by RunPod, failing alike; the pod URL never serves. The lines, the
    # moments and the exit codes are one table: podmgr/sim/fatal.py. Drawn when a container
    # starts (and, naming a pod by `pod_id`, for a container that has not reached the moment).
    "vllm_oom": {"pod_id": "str", "kind": "one of cuda|kv_cache"},
    "gated_model": {"pod_id": "str"},
    "model_not_found": {"pod_id": "str"},
    "bad_vllm_args": {"pod_id": "str", "arg": "str"},
    "unsupported_arch": {"pod_id": "str", "arch": "str"},
    "upstream_error": {"status": "upstream_status", "pod_id": "str", "path_prefix": "str"},
    "upstream_drop": {"pod_id": "str", "path_prefix": "str"},
    "upstream_stall": {"seconds": "seconds", "pod_id": "str", "path_prefix": "str"},
    # Tokens come `seconds` apart: a busy vLLM generates slower (its benchmarks report this
    # as ITL, inter-token latency). The proxy's tests use it to keep an answer in flight
    # long enough to coalesce or abandon it (issue 9, section 4).
    "upstream_slow": {"seconds": "seconds", "pod_id": "str", "path_prefix": "str"},
}
FAULT_NAMES = frozenset(FAULT_PARAMS)

DEFAULT_PARAMS: Mapping[str, Mapping[str, Any]] = {
    "api_error": {"status": 502},
    "api_slow": {"seconds": 5.0},
    "rate_limited": {"seconds": 2.0},
    "transient_status": {"seconds": 2.0},
    "api_error_after_apply": {"body": "json", "hide_seconds": 0.0},
    "unknown_template": {"message": "misleading"},
    "upstream_error": {"status": 500},
    "upstream_stall": {"seconds": 5.0},
    "upstream_slow": {"seconds": 0.2},
    "vllm_oom": {"kind": "cuda"},
    "unsupported_arch": {"arch": "SimForCausalLM"},
}


@dataclass(frozen=True)
class FaultSpec:
    """A validated fault as written: name, trigger and parameters (defaults filled in)."""

    name: str
    probability: float | None = None
    count: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Fault:
    """A fault in the book, with how many firings remain and how many happened."""

    id: int
    spec: FaultSpec
    remaining: int | None
    fired: int = 0

    @property
    def active(self) -> bool:
        return self.remaining is None or self.remaining > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fault": self.spec.name,
            "probability": self.spec.probability,
            "count": self.spec.count,
            "remaining": self.remaining,
            "fired": self.fired,
            "params": dict(self.spec.params),
        }


class FaultBook:
    """The faults in force; `draw` decides whether one fires for a call (seeded, so repeatable)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, spec: FaultSpec) -> Fault:
        fault = Fault(self._next_id, spec, spec.count)
        self._next_id += 1
        self._faults.append(fault)
        return fault

    def has_fired(self, name: str) -> bool:
        """A fault named `name` in the book has fired at least once."""
        return any(f.spec.name == name and f.fired > 0 for f in self._faults)

    def clear(self) -> None:
        self._faults.clear()

    def to_json(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self._faults]

    def draw(
        self, name: str, matches: Callable[[Mapping[str, Any]], bool] | None = None
    ) -> Fault | None:
        """The first fault named `name` that matches this call and fires, consuming one count."""
        for fault in self._faults:
            if fault.spec.name != name or not fault.active:
                continue
            if matches is not None and not matches(fault.spec.params):
                continue
            probability = fault.spec.probability
            if probability is not None and self._rng.random() >= probability:
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
            fault.fired += 1
            return fault
        return None


def _convert(name: str, key: str, value: Any) -> Any:
    kinds = FAULT_PARAMS[name]
    if key not in kinds:
        known = ", ".join(sorted(kinds)) or "none"
        raise ValueError(f"fault {name} has no parameter {key!r} (known: {known})")
    kind = kinds[key]
    if kind == "status":
        if int(value) not in API_ERROR_STATUSES:
            raise ValueError(f"{name} status must be one of {API_ERROR_STATUSES}")
        return int(value)
    if kind == "upstream_status":
        if not 400 <= int(value) <= 599:
            raise ValueError(f"{name} status must be 400..599")
        return int(value)
    if kind == "seconds":
        seconds = float(value)
        if seconds < 0:
            raise ValueError(f"{name} seconds must be >= 0")
        return seconds
    if kind.startswith("one of "):
        options = kind.removeprefix("one of ").split("|")
        if str(value) not in options:
            raise ValueError(f"{name} {key} must be one of {', '.join(options)}")
        return str(value)
    if kind == "list":
        items = value.split("|") if isinstance(value, str) else list(value)
        return [str(item) for item in items if str(item)]
    return str(value)


def build_spec(
    name: str, probability: Any = None, count: Any = None, params: Mapping[str, Any] | None = None
) -> FaultSpec:
    """Validate a fault; ValueError says what is wrong."""
    if name not in FAULT_NAMES:
        raise ValueError(f"unknown fault {name!r} (known: {', '.join(sorted(FAULT_NAMES))})")
    if probability is not None and count is not None:
        raise ValueError("give a probability or a count, not both")
    prob = None if probability is None else float(probability)
    if prob is not None and not 0.0 <= prob <= 1.0:
        raise ValueError("probability must be between 0 and 1")
    if count is not None and (isinstance(count, bool) or int(count) != count or int(count) < 1):
        raise ValueError("count must be a whole number >= 1")
    values = dict(DEFAULT_PARAMS.get(name, {}))
    for key, value in (params or {}).items():
        values[key] = _convert(name, key, value)
    return FaultSpec(name, prob, None if count is None else int(count), values)


def _parse_scalar(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_fault(text: str) -> FaultSpec:
    """Parse the CLI form (see the module docstring); ValueError on anything malformed."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ValueError(f"not valid JSON: {error}") from None
        return fault_from_json(data)
    head, *pairs = text.split(",")
    name, _, trigger = head.partition(":")
    probability: float | None = None
    count: int | None = None
    if trigger.startswith("x"):
        if not trigger[1:].isdigit():
            raise ValueError(f"count {trigger!r} must look like x3")
        count = int(trigger[1:])
    elif trigger:
        try:
            probability = float(trigger)
        except ValueError:
            raise ValueError(f"trigger {trigger!r} must be a probability or xN") from None
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"parameter {pair!r} must look like key=value")
        params[key.strip()] = _parse_scalar(raw.strip())
    return build_spec(name.strip(), probability, count, params)


def fault_from_json(data: Any) -> FaultSpec:
    """A fault from a JSON object {"fault": NAME, "probability" | "count", params...}."""
    if not isinstance(data, dict) or not isinstance(data.get("fault"), str):
        raise ValueError('a fault must be a JSON object with a string "fault"')
    rest = {k: v for k, v in data.items() if k not in ("fault", "probability", "count", "params")}
    nested = data.get("params") or {}
    if not isinstance(nested, dict):
        raise ValueError('"params" must be an object')
    try:
        return build_spec(
            data["fault"], data.get("probability"), data.get("count"), {**nested, **rest}
        )
    except (TypeError, ValueError) as error:
        raise ValueError(str(error)) from None
