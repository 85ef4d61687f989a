"""The simulator as a process: start `podmgr sim` and drive its control API.

    with SimProcess(pull_seconds=0.1, load_seconds=0.1) as sim:
        env = sim.env(home)                  # for a child process using the runpod SDK
        sim.set_fault("capacity", count=1)
        ...
        assert all(p["status"] == "TERMINATED" for p in sim.ledger())

`podmgr demo` runs the simulator this way, and so do the tests and bench/. Beside
`SimProcess`, the waits it is built on:
- `wait_http(url, ready=...)`: poll a URL until it answers (or until `ready(answer)`);
  `wait_until(check, what)` for any other condition. Both wait generously (60 s by
  default), return as soon as the condition holds, and say what they waited for when
  they give up: the suite runs on busy machines.
- `free_port()`: a port free on 127.0.0.1, for a server about to start.

Only the standard library is used, so the module is cheap to import. The simulator's
stderr (its JSON logs) goes to a temporary file, never to a pipe that could fill up; a
start-up failure raises `SimStartError` with that log.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, TypeVar

__all__ = [
    "DOCUMENT_RATE_LIMIT",
    "GENEROUS_RATE_LIMIT",
    "HttpAnswer",
    "SimProcess",
    "SimStartError",
    "free_port",
    "http_get",
    "wait_http",
    "wait_until",
]

# Generous on purpose: every wait returns as soon as its condition holds, and a loaded
# 2-core machine can take many seconds to start a Python process (issue 9, section 1).
WAIT_SECONDS = 60.0
START_TIMEOUT_SECONDS = WAIT_SECONDS
STOP_TIMEOUT_SECONDS = 10.0
CONTROL_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05

# REST v2 budget of a SimProcess unless told otherwise: the suite's fast passes must not be
# throttled. `DOCUMENT_RATE_LIMIT` is RunPod's example policy (podmgr/sim/ratelimit.py).
GENEROUS_RATE_LIMIT = "minute=100000,hour=1000000,day=10000000"
DOCUMENT_RATE_LIMIT = "minute=60,hour=3000,day=50000"

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server about to start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], T], what: str, timeout: float = WAIT_SECONDS, interval: float = POLL_SECONDS
) -> T:
    """Call `check` until it returns something truthy, and return that.

    TimeoutError after `timeout` seconds, naming `what` and the last value seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}; last seen: {value!r}")
        time.sleep(interval)


@dataclass(frozen=True)
class HttpAnswer:
    """A status and a body (error statuses included: they are answers too)."""

    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(url: str, timeout: float = CONTROL_TIMEOUT_SECONDS, context: Any = None) -> HttpAnswer:
    """GET `url`; any HTTP status is an answer, a connection failure raises OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return HttpAnswer(response.status, response.read())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, error.read())


def wait_http(
    url: str,
    *,
    ready: Callable[[HttpAnswer], bool] | None = None,
    what: str = "",
    timeout: float = WAIT_SECONDS,
    context: Any = None,
) -> HttpAnswer:
    """Poll GET `url` until it answers at all, or with `ready(answer)` true; that answer.

    `context` is an `ssl.SSLContext` for https URLs. TimeoutError names `what` (default:
    the URL) and the last answer or connection error.
    """
    last: list[object] = [None]

    def attempt() -> HttpAnswer | None:
        try:
            answer = http_get(url, timeout=min(10.0, timeout), context=context)
        except OSError as error:
            last[0] = error
            return None
        last[0] = f"HTTP {answer.status} {answer.body[:200]!r}"
        return answer if ready is None or ready(answer) else None

    try:
        answer = wait_until(attempt, what or f"{url} to answer", timeout)
    except TimeoutError as error:
        raise TimeoutError(f"{error}; last answer: {last[0]}") from None
    assert answer is not None  # wait_until returns only a truthy value
    return answer


# The start-up lines of `podmgr sim` (podmgr/sim/server.py announce_lines).
_ANNOUNCED = ("RUNPOD_API_BASE_URL", "POD_URL_TEMPLATE", "RUNPOD_REST_URL")


class SimStartError(RuntimeError):
    """The simulator did not print its start-up lines in time; the message holds its stderr."""


class SimProcess:
    """A running `python -m podmgr sim --port 0 ...`; a context manager."""

    base_url: str
    pod_url_template: str
    rest_url: str
    api_key: str

    def __init__(
        self,
        *,
        pull_seconds: float = 0.1,
        load_seconds: float = 0.1,
        download_seconds: float = 0.0,
        token_delay: float = 0.0,
        edge_timeout_seconds: float = 100.0,
        api_keys: Sequence[str] = ("test-runpod-key-not-real",),
        read_only_keys: Sequence[str] = (),
        faults: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT_SECONDS,
        rate_limit: str = GENEROUS_RATE_LIMIT,
    ) -> None:
        if not api_keys:
            raise ValueError("api_keys needs at least one key")
        self.api_key = api_keys[0]
        self.base_url = ""
        self.pod_url_template = ""
        self.rest_url = ""
        self.startup_seconds: float | None = None
        args = [
            sys.executable, "-m", "podmgr", "sim", "--host", "127.0.0.1", "--port", "0",
            "--pull-seconds", str(pull_seconds), "--load-seconds", str(load_seconds),
            "--download-seconds", str(download_seconds),
            "--token-delay", str(token_delay), "--edge-timeout-seconds", str(edge_timeout_seconds),
        ]  # fmt: skip
        for key in api_keys:
            args += ["--api-key", key]
        for key in read_only_keys:
            args += ["--read-only-key", key]
        for fault in faults:
            args += ["--fault", fault]
        args += ["--rate-limit", rate_limit]
        self._args = [*args, *extra_args]
        self._start_timeout = start_timeout
        self._stderr: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # --- process ------------------------------------------------------------------------
    def start(self) -> SimProcess:
        """Spawn the simulator and wait for its three start-up lines."""
        # Lives as long as the process; closed by stop().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        started = time.monotonic()
        self._process = subprocess.Popen(
            self._args, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL
        )
        try:
            values = self._read_announcement(started + self._start_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self.base_url = values["RUNPOD_API_BASE_URL"]
        self.pod_url_template = values["POD_URL_TEMPLATE"]
        self.rest_url = values["RUNPOD_REST_URL"]
        return self

    def _read_announcement(self, deadline: float) -> dict[str, str]:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        values: dict[str, str] = {}
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while len(values) < len(_ANNOUNCED):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SimStartError(f"simulator did not start in time:\n{self.stderr_text()}")
                if not selector.select(remaining):
                    continue
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
                    raise SimStartError(
                        f"simulator exited with {self._process.returncode}:\n{self.stderr_text()}"
                    )
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    name, sep, value = line.decode().strip().partition("=")
                    if sep and name in _ANNOUNCED:
                        values[name] = value
        return values

    def stderr_text(self) -> str:
        """Everything the simulator logged so far."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- its env, its pods' URLs and its control API (/_sim/*) ---------------------------
    def env(self, home: str | os.PathLike[str]) -> dict[str, str]:
        """os.environ plus RUNPOD_API_BASE_URL, RUNPOD_REST_URL, RUNPOD_API_KEY and HOME=home."""
        return {
            **os.environ,
            "RUNPOD_API_BASE_URL": self.base_url,
            "RUNPOD_REST_URL": self.rest_url,
            "RUNPOD_API_KEY": self.api_key,
            "HOME": os.fspath(home),
        }

    def pod_url(self, pod_id: str, port: int = 8000) -> str:
        """The pod's URL (as `https://{pod_id}-{port}.proxy.runpod.net` would be)."""
        return self.pod_url_template.format(pod_id=pod_id, port=port)

    def _call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT_SECONDS) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise RuntimeError(f"{method} {path} -> {error.code}: {detail}") from None

    def ledger(self) -> list[dict[str, Any]]:
        """One record per pod ever created (see GET /_sim/ledger)."""
        records: list[dict[str, Any]] = self._call("GET", "/_sim/ledger")["pods"]
        return records

    def graphql_requests(self) -> int:
        """POST /graphql requests the simulator received so far (see GET /_sim/requests)."""
        return int(self._call("GET", "/_sim/requests")["graphql"])

    def pod_phase(self, pod_id: str) -> dict[str, Any]:
        """The pod's start-up phase and weights (see GET /_sim/pods/{id})."""
        answer: dict[str, Any] = self._call("GET", f"/_sim/pods/{pod_id}")
        return answer

    def rest_requests(self) -> int:
        """Requests to the REST API v2 (/v2/...) so far, any key."""
        return int(self._call("GET", "/_sim/requests")["rest"])

    def api_requests(self) -> dict[str, int]:
        """API requests so far: {"graphql", "rest", "v1", "v2"} (see GET /_sim/requests)."""
        counts: dict[str, int] = self._call("GET", "/_sim/requests")
        return counts

    def total_cost(self) -> float:
        return float(self._call("GET", "/_sim/ledger")["total_cost_usd"])

    def set_fault(
        self, fault: str, *, probability: float | None = None, count: int | None = None,
        **params: Any,
    ) -> None:  # fmt: skip
        """Add a fault (no probability and no count: it fires on every matching call)."""
        body: dict[str, Any] = {"fault": fault, **params}
        if probability is not None:
            body["probability"] = probability
        if count is not None:
            body["count"] = count
        self._call("POST", "/_sim/faults", body)

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sim/faults")

    def faults(self) -> list[dict[str, Any]]:
        """Faults in force: fault, probability, count, remaining, fired, params."""
        faults: list[dict[str, Any]] = self._call("GET", "/_sim/faults")["faults"]
        return faults

    def crash_pod(self, pod_id: str) -> None:
        self._call("POST", f"/_sim/pods/{pod_id}/crash")

    def crash_container(self, pod_id: str) -> None:
        """The pod's container dies; the pod stays RUNNING (see POST /_sim/pods/{id}/...)."""
        self._call("POST", f"/_sim/pods/{pod_id}/crash-container")

    def kill_vllm(self, pod_id: str) -> None:
        self._call("POST", f"/_sim/pods/{pod_id}/kill-vllm")

    # --- shortcuts that skip the runpod SDK (it costs ~1.5 s to import) ----------------
    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a GraphQL request with the first key; the whole answer (data and errors)."""
        body = {"query": query, "variables": variables or {}}
        auth = {"Authorization": f"Bearer {self.api_key}"}
        answer: dict[str, Any] = self._call("POST", "/graphql", body, auth)
        return answer

    def create_pod(
        self,
        *,
        name: str = "podmgr-test",
        gpu_type_id: str = "NVIDIA GeForce RTX 4090",
        model: str = "sim-model",
        env: dict[str, str] | None = None,
        cloud_type: str = "SECURE",
    ) -> str:
        """Create a pod serving `model` on port 8000 (as the watchdog would); its id."""
        pod_input = {
            "name": name,
            "imageName": "vllm/vllm-openai:latest",
            "gpuTypeId": gpu_type_id,
            "cloudType": cloud_type,
            "gpuCount": 1,
            "dockerArgs": f"--model {model} --host 0.0.0.0 --port 8000",
            "ports": "8000/http",
            "env": [{"key": k, "value": v} for k, v in (env or {}).items()],
        }
        answer = self.graphql(
            "mutation Deploy($input: PodFindAndDeployOnDemandInput) "
            "{ podFindAndDeployOnDemand(input: $input) { id } }",
            {"input": pod_input},
        )
        if answer.get("errors"):
            raise RuntimeError(answer["errors"][0]["message"])
        pod_id: str = answer["data"]["podFindAndDeployOnDemand"]["id"]
        return pod_id

    def wait_serving(self, pod_id: str, port: int = 8000, timeout: float = WAIT_SECONDS) -> float:
        """Poll the pod's /health until 200; seconds waited. TimeoutError past `timeout`."""
        started = time.monotonic()
        wait_http(
            self.pod_url(pod_id, port) + "/health",
            ready=lambda answer: answer.status == 200,
            what=f"pod {pod_id} to serve (/health 200)",
            timeout=timeout,
        )
        return time.monotonic() - started

    def pod_traffic(self, pod_id: str) -> dict[str, Any]:
        """What reached the pod's URL: received, model_calls, cancelled, recent requests."""
        traffic: dict[str, Any] = self._call("GET", f"/_sim/pods/{pod_id}/requests")
        return traffic
