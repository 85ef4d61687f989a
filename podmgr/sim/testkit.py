"""The simulator's test kit: start `podmgr sim` as a real process and drive its control API.

    with SimProcess(pull_seconds=0.1, load_seconds=0.1) as sim:
        env = sim.env(tmp_path)              # for a child process using the runpod SDK
        sim.set_fault("capacity", count=1)
        ...
        assert all(p["status"] == "TERMINATED" for p in sim.ledger())

`wait_until(condition, "what")` polls a condition with a generous timeout and names what it
waited for when it gives up: tests wait for a state instead of sleeping and asserting.

Only the standard library is used, so the kit costs nothing to import. The simulator's
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
from types import TracebackType
from typing import IO, Any, TypeVar

T = TypeVar("T")

__all__ = ["SimProcess", "SimStartError", "free_port", "wait_until"]

START_TIMEOUT_SECONDS = 60.0  # only a failing start waits this long
STOP_TIMEOUT_SECONDS = 5.0
CONTROL_TIMEOUT_SECONDS = 10.0
# Generous on purpose: a wait ends as soon as its condition holds, so only a failing test
# pays this, while a CI machine shared with other jobs has stalled a process for 10 s.
WAIT_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server a test is about to start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], T],
    what: str,
    timeout: float = WAIT_TIMEOUT_SECONDS,
    interval: float = 0.02,
) -> T:
    """Call `condition` until it returns something truthy, and return that.

    Past `timeout` seconds raise TimeoutError naming `what` was awaited and the last value
    seen. Tests wait for a condition this way instead of sleeping a fixed time and asserting.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}; last seen: {value!r}")
        time.sleep(interval)


class SimStartError(RuntimeError):
    """The simulator did not print its start-up lines in time; the message holds its stderr."""


class SimProcess:
    """A running `python -m podmgr sim --port 0 ...`; a context manager."""

    base_url: str
    pod_url_template: str
    api_key: str

    def __init__(
        self,
        *,
        pull_seconds: float = 0.1,
        load_seconds: float = 0.1,
        token_delay: float = 0.0,
        edge_timeout_seconds: float = 100.0,
        api_keys: Sequence[str] = ("test-runpod-key-not-real",),
        faults: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        if not api_keys:
            raise ValueError("api_keys needs at least one key")
        self.api_key = api_keys[0]
        self.base_url = ""
        self.pod_url_template = ""
        self.startup_seconds: float | None = None
        args = [
            sys.executable, "-m", "podmgr", "sim", "--host", "127.0.0.1", "--port", "0",
            "--pull-seconds", str(pull_seconds), "--load-seconds", str(load_seconds),
            "--token-delay", str(token_delay), "--edge-timeout-seconds", str(edge_timeout_seconds),
        ]  # fmt: skip
        for key in api_keys:
            args += ["--api-key", key]
        for fault in faults:
            args += ["--fault", fault]
        self._args = [*args, *extra_args]
        self._start_timeout = start_timeout
        self._stderr: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # --- process ------------------------------------------------------------------------
    def start(self) -> SimProcess:
        """Spawn the simulator and wait for its two start-up lines."""
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
        return self

    def _read_announcement(self, deadline: float) -> dict[str, str]:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        values: dict[str, str] = {}
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while len(values) < 2:
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
                    if sep and name in ("RUNPOD_API_BASE_URL", "POD_URL_TEMPLATE"):
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

    # --- helpers for tests and scripts --------------------------------------------------
    def env(self, home: str | os.PathLike[str]) -> dict[str, str]:
        """os.environ plus RUNPOD_API_BASE_URL, RUNPOD_API_KEY and HOME=home (SDK isolation)."""
        return {
            **os.environ,
            "RUNPOD_API_BASE_URL": self.base_url,
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

    def wait_serving(self, pod_id: str, port: int = 8000, timeout: float = 60.0) -> float:
        """Poll the pod's /health until 200; seconds waited. TimeoutError past `timeout`."""
        started = time.monotonic()
        url = self.pod_url(pod_id, port) + "/health"
        while time.monotonic() - started < timeout:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except urllib.error.HTTPError:
                pass
            time.sleep(0.01)
        raise TimeoutError(f"pod {pod_id} not serving after {timeout} s")
