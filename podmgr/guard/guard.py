"""The guard: PID 1 of the pod's container, parent of vLLM, terminator of its own pod.

Python standard library only, no podmgr import: this file is sent verbatim as
`python3 -c <this file>`, the `entrypoint` of the start-command JSON in the create's `args`
(podmgr/guard/launch.py), and runs with the image's own interpreter. It starts `argv`
(vLLM) as its child, forwards SIGTERM, SIGINT and SIGHUP to it, exits with the child's
status, and every check interval decides whether to terminate its own pod through RunPod's
REST API v2 (`DELETE /pods/{id}` -> 204, RunPod OpenAPI v2 deletePod) at the base
PODMGR_GUARD_API_URL (default https://api.runpod.io/v2), with the pod-scoped
`RUNPOD_API_KEY` RunPod injects into every pod (RUNPOD_FACTS.md, "Pod lifecycle as the API
shows it"). Its first line, `{"guard": "armed", ...}`, is how the watchdog knows it runs
(podmgr/guard/check.py).

Which limits end the pod, and in which order, is not written here: the launcher sends them
as PODMGR_GUARD_RULES, a JSON list of `{"reason", "measure", "limit"}` taken from the
table of end reasons (podmgr/rules.py), and the first rule whose measure has reached its
limit ends the pod, for that rule's reason. The guard only knows how to read its measures:

  - clock:                 now (a deadline, PODMGR_GUARD_DEADLINE, fixed when the
                           session started);
  - projected_cost_usd:    spent + cost x (now + interval - created_at) / 3600, the
                           session's cost by the next check (PODMGR_GUARD_SPENT_USD is the
                           session's cost when the pod was created; in a pod of a set,
                           config `pods`, it is what that pod's name has cost so far, and
                           PODMGR_GUARD_MAX_COST_USD is that pod's share of the budget,
                           shares that never sum past it: podmgr/watchdog/focus.py,
                           guard_budget. The rate is the pod's `cost` from
                           `GET /pods/{id}` (v2 Pod.cost, USD/h billed); time since
                           PODMGR_GUARD_CREATED_AT over-counts any stopped time, which errs
                           towards ending early);
  - idle_seconds:          how long vLLM's `/metrics` request counters (finished requests,
                           running and waiting gauges) stayed unchanged with nothing in
                           flight, counted from the first answer of `/metrics` (model
                           loading is not idleness);
  - lease_silence_seconds: how long since the watchdog last renewed its lease (the lease
                           endpoint touches PODMGR_GUARD_LEASE_FILE, whose mtime the guard
                           reads; counted from the guard's start).

A rule whose measure cannot be read yet (no cost read, vLLM not answering, no lease) or
that this guard does not know waits. Started by hand without PODMGR_GUARD_RULES (tests,
the simulator's own guards), the guard applies the limits it was given one by one:
PODMGR_GUARD_DEADLINE, _MAX_COST_USD, _IDLE_SECONDS, _LEASE_SECONDS, in that order.

The guard's middleware (`MIDDLEWARE`) lives inside vLLM's own app on vLLM's port: written
to a file beside the lease file and passed with vLLM's `--middleware` option whenever the
guard arms (no second port, no proxy in front of vLLM). vLLM v0.8.5 checks its key only on
paths starting with `/v1`: `/invocations`, `/pooling`, `/score`, `/rerank`, `/v2/rerank`,
`/tokenize`, `/detokenize`, `/metrics`, `/version` answer anyone with the pod's public URL
(RUNPOD_FACTS.md, "vLLM v0.8.5 as it is"). The middleware requires `Authorization: Bearer
<VLLM_API_KEY>` on every path but `/health` (compared in constant time) and answers 401
with vLLM's flat error body otherwise, so a stranger's request never reaches vLLM nor
keeps the pod busy; without a key in the env every such path is refused. It also serves
the lease endpoint `POST /podmgr/lease` when a lease is set. The guard's own `/metrics`
read goes to vLLM on localhost with the key.

Every decision and every failed API call is one line on stdout (RunPod's container log).
A terminate that fails is retried with exponential backoff (1 s doubling, at most 60 s
apart) for as long as the guard lives: it never assumes billing stopped before RunPod said
so (2xx, or 404: already gone). Nothing here holds a secret: the key comes from the env.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# How the simulator (podmgr/sim/podproc.py) knows a start command is this guard.
MARKER = "podmgr-guard/1"
DEFAULT_API_URL = "https://api.runpod.io/v2"
DEFAULT_INTERVAL = 10.0
DEFAULT_LEASE_FILE = "/tmp/podmgr-guard/lease"
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
HTTP_TIMEOUT = 10.0
_SAMPLE = re.compile(r"^(vllm:[a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN)\s*$")
_ACTIVITY = ("vllm:request_success_total", "vllm:num_requests_running", "vllm:num_requests_waiting")


def log(event: str, **fields: Any) -> None:
    """One decision as one JSON line on stdout: the container log is all a pod keeps."""
    line = json.dumps({"at": round(time.time(), 3), "guard": event, **fields}, default=str)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# --- limits and decisions (pure) --------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """End the pod for `reason` once `measure` is at least `limit` (podmgr/rules.py)."""

    reason: str
    measure: str
    limit: float


# Limits given one by one (no PODMGR_GUARD_RULES): (Limits field, reason, measure).
_ONE_BY_ONE = (
    ("deadline", "deadline", "clock"),
    ("max_cost_usd", "budget", "projected_cost_usd"),
    ("idle_seconds", "idle", "idle_seconds"),
    ("lease_seconds", "lease", "lease_silence_seconds"),
)


@dataclass(frozen=True)
class Limits:
    """What the pod was created with (env PODMGR_GUARD_*); None means no such limit."""

    deadline: float | None = None
    max_cost_usd: float | None = None
    spent_usd: float = 0.0
    created_at: float = 0.0
    idle_seconds: float | None = None
    interval: float = DEFAULT_INTERVAL
    lease_seconds: float | None = None
    rules: tuple[Rule, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        def number(name: str) -> float | None:
            raw = env.get("PODMGR_GUARD_" + name, "").strip()
            return float(raw) if raw else None

        return cls(
            deadline=number("DEADLINE"),
            max_cost_usd=number("MAX_COST_USD"),
            spent_usd=number("SPENT_USD") or 0.0,
            created_at=number("CREATED_AT") or time.time(),
            idle_seconds=number("IDLE_SECONDS"),
            interval=number("INTERVAL_SECONDS") or DEFAULT_INTERVAL,
            lease_seconds=number("LEASE_SECONDS"),
            rules=parse_rules(env.get("PODMGR_GUARD_RULES", "")),
        )

    def active_rules(self) -> tuple[Rule, ...]:
        """The rules sent with the pod, else one per limit given (module docstring)."""
        if self.rules:
            return self.rules
        given = ((getattr(self, name), reason, measure) for name, reason, measure in _ONE_BY_ONE)
        return tuple(
            Rule(reason, measure, limit) for limit, reason, measure in given if limit is not None
        )


def parse_rules(text: str) -> tuple[Rule, ...]:
    """PODMGR_GUARD_RULES: a JSON list of {"reason", "measure", "limit"}. Empty or not
    readable: none, and the limits given one by one hold (the guard is PID 1: a bad env
    value must not keep vLLM from starting nor leave the pod unguarded)."""
    if not text.strip():
        return ()
    try:
        return tuple(
            Rule(str(item["reason"]), str(item["measure"]), float(item["limit"]))
            for item in json.loads(text)
        )
    except (ValueError, KeyError, TypeError):
        return ()


@dataclass(frozen=True)
class Activity:
    """vLLM's request counters as last seen, and when they last moved."""

    signature: tuple[float, float, float] | None = None
    last_active: float | None = None  # None until /metrics first answered


def parse_metrics(text: str) -> tuple[float, float, float]:
    """(finished requests, running, waiting) summed over labels from vLLM's /metrics."""
    totals = dict.fromkeys(_ACTIVITY, 0.0)
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match and match.group(1) in totals and match.group(3) != "NaN":
            totals[match.group(1)] += float(match.group(3))
    return (totals[_ACTIVITY[0]], totals[_ACTIVITY[1]], totals[_ACTIVITY[2]])


def observe_activity(
    before: Activity, sample: tuple[float, float, float] | None, now: float
) -> Activity:
    """The idle clock after one /metrics read (None: no answer, nothing changes).

    It restarts when the first answer arrives, when the finished count moves, and while any
    request runs or waits (a long generation is not idleness).
    """
    if sample is None:
        return before
    busy = sample[1] > 0 or sample[2] > 0
    if before.last_active is None or busy or sample != before.signature:
        return Activity(sample, now)
    return before


def projected_cost(limits: Limits, cost_per_hr: float, now: float) -> float:
    """The session's cost at the next check if the pod runs until then."""
    hours = max(0.0, now + limits.interval - limits.created_at) / 3600.0
    return limits.spent_usd + cost_per_hr * hours


def measures(
    limits: Limits,
    now: float,
    cost_per_hr: float | None,
    activity: Activity,
    lease_renewed_at: float | None = None,
) -> dict[str, float | None]:
    """What the guard can read now, by measure name (None: not readable yet)."""
    return {
        "clock": now,
        "projected_cost_usd": (
            None if cost_per_hr is None else projected_cost(limits, cost_per_hr, now)
        ),
        "idle_seconds": None if activity.last_active is None else now - activity.last_active,
        "lease_silence_seconds": None if lease_renewed_at is None else now - lease_renewed_at,
    }


# How a reached rule is said, by measure; {reason} is the rule's (podmgr/rules.py).
_SAID = {
    "clock": "{reason} passed ({over:.0f}s ago)",
    "projected_cost_usd": "{reason}: ${value:.4f} by the next check >= ${limit:.4f}",
    "idle_seconds": "{reason}: no request for {value:.0f}s",
    "lease_silence_seconds": "{reason}: the watchdog has not renewed it for {value:.0f}s",
}


def decide(
    limits: Limits,
    now: float,
    cost_per_hr: float | None,
    activity: Activity,
    lease_renewed_at: float | None = None,
) -> str | None:
    """Why the pod must end now, or None. Pure: no clock, no network."""
    seen = measures(limits, now, cost_per_hr, activity, lease_renewed_at)
    for rule in limits.active_rules():
        value = seen.get(rule.measure)
        if value is not None and value >= rule.limit:
            said = _SAID.get(rule.measure, "{reason}: {value:g} >= {limit:g}")
            return said.format(
                reason=rule.reason, value=value, limit=rule.limit, over=value - rule.limit
            )
    return None


@dataclass(frozen=True)
class Backoff:
    """When the next terminate attempt may go, and the wait after it fails."""

    next_at: float = 0.0
    delay: float = BACKOFF_FIRST

    def failed(self, now: float) -> Backoff:
        return Backoff(now + self.delay, min(self.delay * 2, BACKOFF_MAX))


# --- effects ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Api:
    """RunPod's REST API v2 as the pod sees it: its own pod, its own key."""

    base: str
    pod_id: str
    key: str

    def _call(self, method: str, path: str = "") -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"{self.base}/pods/{self.pod_id}{path}",
            method=method,
            headers={"Authorization": f"Bearer {self.key}", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read()[:300]
        except http.client.HTTPException as error:  # a cut answer: not an OSError
            raise OSError(f"{type(error).__name__}: {error}") from error

    def cost_per_hr(self) -> float:
        status, body = self._call("GET")
        if status != 200:
            raise OSError(f"GET pod answered {status}: {body[:200]!r}")
        return float(json.loads(body)["cost"])  # v2 Pod.cost: USD per hour billed

    def terminate(self) -> str:
        """'terminated' or 'already gone'; OSError when billing may not have stopped."""
        status, body = self._call("DELETE")
        if 200 <= status < 300:
            return "terminated"
        if status == 404:
            return "already gone"
        raise OSError(f"DELETE pod answered {status}: {body[:200]!r}")


def read_metrics(url: str, key: str = "") -> tuple[float, float, float] | None:
    """vLLM's request counters, read with its key (the guard's middleware requires it)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return parse_metrics(response.read().decode(errors="replace"))
    except (OSError, ValueError, http.client.HTTPException):
        return None


def metrics_url(env: Mapping[str, str], argv: list[str]) -> str:
    """PODMGR_GUARD_VLLM_URL, else localhost on vLLM's `--port` (default 8000)."""
    base = env.get("PODMGR_GUARD_VLLM_URL") or f"http://127.0.0.1:{_port(argv)}"
    return base.rstrip("/") + "/metrics"


def _port(argv: list[str]) -> str:
    for index, word in enumerate(argv):
        if word == "--port" and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith("--port="):
            return word.split("=", 1)[1]
    return "8000"


MIDDLEWARE_MODULE = "podmgr_guard_middleware"
LEASE_PATH = "/podmgr/lease"
MIDDLEWARE = """\
\"\"\"podmgr's guard inside vLLM's app, written by podmgr's guard (podmgr/guard/guard.py):
the pod's key on every path but /health, and the watchdog's lease.\"\"\"
import hmac
import os
import time

from starlette.responses import JSONResponse


def _refused():
    # vLLM's flat error body (vllm/entrypoints/openai/protocol.py ErrorResponse).
    body = {"object": "error", "message": "Unauthorized", "type": "Unauthorized",
            "param": None, "code": 401}
    return JSONResponse(body, status_code=401)


async def guard(request, call_next):
    path = request.url.path
    if path == "/health":
        return await call_next(request)
    key = os.environ.get("VLLM_API_KEY", "")
    given = request.headers.get("authorization", "").encode()
    if not key or not hmac.compare_digest(given, ("Bearer " + key).encode()):
        return _refused()
    lease = os.environ.get("PODMGR_GUARD_LEASE_FILE", "")
    if path != "/podmgr/lease" or not lease:
        return await call_next(request)
    if request.method != "POST":
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405)
    with open(lease, "a"):
        pass
    os.utime(lease)
    return JSONResponse({"renewed_at": time.time()})
"""


def with_middleware(
    command: list[str], env: Mapping[str, str], folder: str, lease_file: str | None
) -> tuple[list[str], dict[str, str]]:
    """vLLM's command and env with the guard's middleware, its module written in `folder`;
    with a lease, the lease file is touched now (the lease counts from the guard's start)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, MIDDLEWARE_MODULE + ".py"), "w", encoding="utf-8") as module:
        module.write(MIDDLEWARE)
    child_env = {
        **env,
        "PYTHONPATH": os.pathsep.join(p for p in (folder, env.get("PYTHONPATH", "")) if p),
    }
    if lease_file is not None:
        with open(lease_file, "a", encoding="utf-8"):
            pass
        os.utime(lease_file)
        child_env["PODMGR_GUARD_LEASE_FILE"] = lease_file
    else:
        child_env.pop("PODMGR_GUARD_LEASE_FILE", None)
    return [*command, "--middleware", f"{MIDDLEWARE_MODULE}.guard"], child_env


def lease_renewed_at(lease_file: str | None) -> float | None:
    if lease_file is None:
        return None
    try:
        return os.stat(lease_file).st_mtime
    except OSError:
        return None


@dataclass
class Guard:
    """One guard's loop state; `tick` runs one check."""

    limits: Limits
    api: Api
    metrics: str
    activity: Activity = Activity()
    cost_per_hr: float | None = None
    backoff: Backoff = Backoff()
    reason: str | None = None
    done: str | None = None
    lease_file: str | None = None
    vllm_key: str = ""

    def tick(self, now: float) -> None:
        self.activity = observe_activity(
            self.activity, read_metrics(self.metrics, self.vllm_key), now
        )
        wants_cost = any(r.measure == "projected_cost_usd" for r in self.limits.active_rules())
        if self.cost_per_hr is None and wants_cost:
            self._read_cost()
        lease = lease_renewed_at(self.lease_file)
        reason = decide(self.limits, now, self.cost_per_hr, self.activity, lease)
        if reason is not None and self.reason is None:
            self.reason = reason
            log("terminate_decided", reason=reason, pod_id=self.api.pod_id)
        if self.reason is not None and self.done is None and now >= self.backoff.next_at:
            self._terminate(now)

    def _read_cost(self) -> None:
        try:
            self.cost_per_hr = self.api.cost_per_hr()
            log("cost_read", cost_per_hr=self.cost_per_hr)
        except (OSError, ValueError, KeyError, TypeError) as error:
            log("cost_unknown", error=str(error)[:300], note="budget unchecked until read")

    def _terminate(self, now: float) -> None:
        try:
            self.done = self.api.terminate()
        except Exception as error:  # whatever failed, billing may go on: try again later
            self.backoff = self.backoff.failed(now)
            log("terminate_failed", error=str(error)[:300], retry_in=self.backoff.next_at - now)
            return
        log("pod_ended", outcome=self.done, reason=self.reason)

    def sleep_for(self, now: float) -> float:
        if self.reason is not None and self.done is None:
            return max(0.05, min(self.limits.interval, self.backoff.next_at - now))
        return self.limits.interval


def _forward_signals(child: subprocess.Popen[bytes]) -> None:
    def forward(signum: int, _frame: object) -> None:
        log("signal_forwarded", signal=signum)
        if child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)


def main(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    command = argv or ["vllm", "serve"]
    limits = Limits.from_env(env)
    api = Api(
        env.get("PODMGR_GUARD_API_URL") or DEFAULT_API_URL,
        env.get("RUNPOD_POD_ID", ""),
        env.get("RUNPOD_API_KEY", ""),
    )
    guard = Guard(limits, api, metrics_url(env, command), vllm_key=env.get("VLLM_API_KEY", ""))
    command, child_env = _arm_middleware(guard, command, env)
    log("armed", pod_id=api.pod_id, api=api.base, command=command[:2], **_shown(limits))
    if not guard.vllm_key:
        log("no_vllm_key", note="the guard's middleware refuses every path but /health")
    if not api.pod_id or not api.key:
        log("unarmed", error="RUNPOD_POD_ID or RUNPOD_API_KEY missing: cannot end the pod")
    child = _start(command, child_env)
    while True:
        if api.pod_id and api.key:
            _tick(guard)
        pause = guard.sleep_for(time.time())
        if child is None:  # no vLLM, yet the pod bills: keep enforcing the limits
            time.sleep(pause)
            continue
        try:
            code = child.wait(timeout=pause)
        except subprocess.TimeoutExpired:
            continue
        log("child_exited", code=code)
        return code if code >= 0 else 128 - code


def _tick(guard: Guard) -> None:
    """One check; nothing may end the loop (the guard is the container's PID 1)."""
    try:
        guard.tick(time.time())
    except Exception as error:  # logged; the next tick tries again
        log("tick_failed", error=f"{type(error).__name__}: {error}"[:300])


def _start(command: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes] | None:
    """vLLM as the child, signals forwarded; None (logged) when it cannot start."""
    try:
        child = subprocess.Popen(command, env=dict(env))
    except OSError as error:
        log("child_failed_to_start", command=command[:2], error=str(error)[:300])
        return None
    _forward_signals(child)
    return child


def _arm_middleware(
    guard: Guard, command: list[str], env: Mapping[str, str]
) -> tuple[list[str], Mapping[str, str]]:
    """The command with the guard's middleware (and the lease when one is set); as it was,
    logged, when the module cannot be written (vLLM then guards only `/v1`)."""
    lease_file = env.get("PODMGR_GUARD_LEASE_FILE") or DEFAULT_LEASE_FILE
    wants_lease = any(r.measure == "lease_silence_seconds" for r in guard.limits.active_rules())
    lease = lease_file if wants_lease else None
    try:
        armed = with_middleware(command, env, os.path.dirname(lease_file) or ".", lease)
    except OSError as error:
        log(
            "middleware_unavailable",
            error=str(error)[:300],
            note="no key on non-/v1 paths, no lease",
        )
        return command, env
    guard.lease_file = lease
    return armed


def _shown(limits: Limits) -> dict[str, Any]:
    shown = {k: v for k, v in vars(limits).items() if v is not None and k != "rules"}
    shown["rules"] = [vars(rule) for rule in limits.active_rules()]
    return shown


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
