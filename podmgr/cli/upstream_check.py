"""`podmgr upstreams test`: is each configured upstream there, does it take our key, what
does it serve? One `GET /models` per upstream with its key, as the tools this product grew
from "test a connection".

Each check ends in a `CheckResult`: ok with the HTTP status, latency and model ids, or the
reason it failed, in words a person can act on (a rejected key, unreachable, a TLS
problem, a timeout, not OpenAI-compatible). The pod is checked at the URL and with the key
the watchdog's state file names. A pod that is not serving (no session, a session ended
for idle: the usual state with `wake_on_request`; or still starting) is `down`: reported
as such, with whether a request would wake it (podmgr/proxy/wake.py's rules), and left out
of the exit code, which then reflects only the upstreams that should answer, so the
fallbacks can be checked while the pod is down by design. Keys never appear in a result.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from podmgr.config import Config
from podmgr.config.upstreams import UpstreamSpec, resolve_key
from podmgr.proxy.upstream.resolver import root_url, upstream_from_state
from podmgr.proxy.wake import wake_refusal
from podmgr.state import State, StateStore, pod_record

__all__ = ["EXIT_OK", "EXIT_REJECTED", "EXIT_UNREACHABLE", "CheckResult", "check_all", "exit_code"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REJECTED = 3
EXIT_UNREACHABLE = 6


@dataclass
class CheckResult:
    """What one upstream's `GET /models` showed."""

    name: str
    kind: str
    url_host: str | None
    ok: bool
    status: int | None = None
    latency_seconds: float | None = None
    models: list[str] = field(default_factory=list)
    reason: str | None = None
    exit_code: int = EXIT_OK
    down: bool = False  # the pod is not serving (by design or still starting): not checked

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "url_host": self.url_host,
            "ok": self.ok,
            "down": self.down,
            "status": self.status,
            "latency_seconds": self.latency_seconds,
            "models": self.models,
            "reason": self.reason,
        }


def _target(config: Config, spec: UpstreamSpec) -> tuple[str | None, str | None, str | None]:
    """(server root, key, why there is none: the pod is down) for `spec`."""
    if spec.kind == "pod":
        state = StateStore(config.state_path).peek()
        upstream = upstream_from_state(state, spec.pod_name)
        if upstream.base_url is None:
            return None, None, _pod_down(config, state, upstream.reason, spec.pod_name)
        auth = upstream.auth_header.decode() if upstream.auth_header else None
        return upstream.base_url, auth.removeprefix("Bearer ") if auth else None, None
    assert spec.base_url is not None
    key = resolve_key(spec)
    return root_url(spec.base_url), key, None


def _pod_down(config: Config, state: State | None, why: str | None, name: str = "pod") -> str:
    """What a person needs to know of the pod `name` that is not serving, and how it comes
    back."""
    session = state.session if state else None
    pod = pod_record(state, name)
    alone = session.ended_pods.get(name) if session is not None and session.active else None
    if alone is not None:  # a pod of several ended alone (issue 23): the session goes on
        down = f"not running: pod {name} ended alone in the active session ({alone})"
        if not config.limits.wake_on_request:
            return f"{down}; `podmgr up {name}` starts it again (wake_on_request is off)"
        refused = wake_refusal(config, state, time.time(), name)
        if refused is not None:
            return f"{down}; a request would not wake it: {refused}"
        return f"{down}; a request for its model would wake it (wake_on_request)"
    if session is not None and session.active:
        phase = f"phase {pod.phase}" if pod is not None else "no pod yet"
        return f"not serving yet: the session is active and its pod is starting ({phase})"
    if session is None:
        down = "not running: no GPU session"
    else:
        down = f"not running: the GPU session has ended ({session.end_reason or why})"
    if not config.limits.wake_on_request:
        return f"{down}; `podmgr up` starts one (wake_on_request is off)"
    refused = wake_refusal(config, state, time.time())
    if refused is not None:
        return f"{down}; a request would not wake it: {refused}"
    return f"{down}; a request to the proxy would wake it (wake_on_request)"


def _failed(result: CheckResult, reason: str, code: int) -> CheckResult:
    result.ok, result.reason, result.exit_code = False, reason, code
    return result


def _read(result: CheckResult, response: httpx.Response) -> CheckResult:
    result.status = response.status_code
    if response.status_code in (401, 403):
        return _failed(result, f"the key was rejected (HTTP {response.status_code})", 3)
    if response.status_code != 200:
        return _failed(result, f"GET /v1/models answered HTTP {response.status_code}", 1)
    try:
        listed = response.json().get("data")
    except (ValueError, AttributeError):
        listed = None
    if not isinstance(listed, list):
        return _failed(result, "not OpenAI-compatible: /v1/models is not a model list", 1)
    result.models = [str(item["id"]) for item in listed if isinstance(item, dict) and "id" in item]
    return result


def check_one(config: Config, spec: UpstreamSpec, timeout: float = 10.0) -> CheckResult:
    """`GET {root}/v1/models` for one upstream (see the module docstring)."""
    root, key, why = _target(config, spec)
    host = httpx.URL(root).host if root else None
    result = CheckResult(spec.name, spec.kind, host, ok=True)
    if root is None:  # only the pod has no URL: it is down
        result.ok, result.down, result.reason = False, True, why or "not running"
        return result
    headers = {"authorization": f"Bearer {key}"} if key else {}
    headers.update(spec.headers)
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout) as client:
            response = client.get(root + "/v1/models", headers=headers)
    except httpx.TimeoutException:
        return _failed(result, f"no answer within {timeout:g} s", EXIT_UNREACHABLE)
    except httpx.ConnectError as error:
        if isinstance(error.__context__, ssl.SSLError) or "SSL" in str(error):
            return _failed(result, "TLS failed (certificate or protocol)", EXIT_UNREACHABLE)
        return _failed(result, "unreachable (connection refused or no route)", EXIT_UNREACHABLE)
    except httpx.HTTPError as error:
        return _failed(result, f"the connection failed ({type(error).__name__})", 6)
    result.latency_seconds = round(time.perf_counter() - started, 4)
    return _read(result, response)


def check_all(config: Config, name: str | None = None) -> list[CheckResult]:
    """Check every configured upstream, or the one called `name` (KeyError if none is)."""
    specs = config.upstreams
    if name is not None:
        specs = [spec for spec in specs if spec.name == name]
        if not specs:
            raise KeyError(name)
    return [check_one(config, spec) for spec in specs]


def exit_code(results: list[CheckResult]) -> int:
    """0 when all that should answer passed (a `down` pod is not counted); 3 if a key was
    rejected; else 6 if one was unreachable; else 1."""
    codes = {result.exit_code for result in results if not result.down}
    for code in (EXIT_REJECTED, EXIT_UNREACHABLE, EXIT_FAILED):
        if code in codes:
            return code
    return EXIT_OK
