"""Helpers for the simulator's REST v2 tests: create bodies, actions, waits, SSE reads.

Every wait is generous and returns as soon as its condition holds (the suite runs on busy
machines); SSE reads are bounded by a deadline, never by a count of bytes alone.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

RTX_4090 = "NVIDIA GeForce RTX 4090"
H100 = "NVIDIA H100 80GB HBM3"
IMAGE = "vllm/vllm-openai:v0.8.5"
WAIT = 60.0


def create_body(**overrides: Any) -> dict[str, Any]:
    """A CreatePodRequest for a vLLM pod on one RTX 4090."""
    body: dict[str, Any] = {
        "name": "podmgr-v2",
        "image": IMAGE,
        "args": "--model sim-model --port 8000",
        "env": {"VLLM_API_KEY": "pod-key-not-real", "PODMGR_MANAGED": "1"},
        "ports": ["8000/http"],
        "disk": 40,
        "gpu": {"id": RTX_4090, "count": 1},
    }
    body.update(overrides)
    return body


def create(rest: httpx.Client, **overrides: Any) -> dict[str, Any]:
    answer = rest.post("/pods", json=create_body(**overrides))
    assert answer.status_code == 201, answer.text
    pod: dict[str, Any] = answer.json()
    return pod


def act(rest: httpx.Client, pod_id: str, action: str) -> httpx.Response:
    return rest.post(f"/pods/{pod_id}/action", json={"action": action})


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}; last: {value!r}")
        time.sleep(0.05)


def wait_status(rest: httpx.Client, pod_id: str, status: str) -> dict[str, Any]:
    def pod() -> dict[str, Any] | None:
        body: dict[str, Any] = rest.get(f"/pods/{pod_id}").json()
        return body if body.get("status") == status else None

    found: dict[str, Any] = wait_for(f"pod {pod_id} to be {status}", pod)
    return found


def problem_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    """The answer's problem body, checked for RFC 9457's shape and `status`."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["title"] and isinstance(body["detail"], str)
    return body


def parse_events(text: str) -> list[dict[str, Any]]:
    """SSE text -> [{"id", **data}] for each complete event."""
    events = []
    for block in text.split("\n\n")[:-1]:
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append({"id": fields["id"], **json.loads(fields["data"])})
    return events


def read_events(
    client: httpx.Client,
    path: str,
    *,
    until: Callable[[list[dict[str, Any]]], bool] = lambda _events: False,
    timeout: float = 20.0,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Read an SSE stream until `until(events)`, its end, or `timeout` seconds.

    A thread reads the stream into a queue, so the deadline holds while the server is
    silent. Returns the events and whether the server ended the stream.
    """
    chunks: queue.Queue[str | None] = queue.Queue()
    with client.stream("GET", path, params=params, headers=headers) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")

        def pump() -> None:
            try:
                for chunk in answer.iter_text():
                    chunks.put(chunk)
            except (httpx.HTTPError, RuntimeError):
                return  # closed by the reader
            chunks.put(None)

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        text = ""
        ended = False
        while time.monotonic() < deadline and not until(parse_events(text)):
            try:
                chunk = chunks.get(timeout=0.2)
            except queue.Empty:
                continue
            if chunk is None:
                ended = True
                break
            text += chunk
    thread.join(timeout=1.0)  # a reader blocked on a silent stream ends with the server
    return parse_events(text), ended
