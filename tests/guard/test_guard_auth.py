"""The guard's middleware in vLLM's app: the pod's key on every path but /health.

vLLM v0.8.5 checks its key on `/v1` only; `/invocations`, `/tokenize`, `/metrics`, `/score`,
`/pooling`, `/rerank`, ... answer anyone with the pod URL (RUNPOD_FACTS.md). Whenever the
guard runs, its middleware (podmgr/guard/guard.py `MIDDLEWARE`, added with vLLM's
`--middleware`) refuses those without the key, so strangers never reach vLLM nor keep the
pod busy. Shown in an ASGI app as vLLM builds it, in the stand-in vLLM that applies
`--middleware` as vLLM does (podmgr/sim/standin_vllm.py), and at a guarded pod's URL.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from starlette.middleware.base import BaseHTTPMiddleware

from guard.guardkit import create_guarded, guard_log, guard_sim, record, wait_ended
from podmgr.guard.guard import MIDDLEWARE_MODULE, with_middleware
from podmgr.sim.process import SimProcess, wait_until
from podmgr.sim.reply import PASS_HEADER
from podmgr.sim.standin_vllm import build_app, middlewares_of

KEY = "vllm-key-fake"  # guardkit.create_guarded's pod key
GOOD = {"Authorization": f"Bearer {KEY}"}
UNGUARDED_BY_VLLM = [
    "/invocations", "/tokenize", "/detokenize", "/metrics", "/score", "/pooling", "/rerank",
    "/v2/rerank", "/version", "/ping",
]  # fmt: skip
REFUSED = {"object": "error", "message": "Unauthorized", "type": "Unauthorized", "param": None,
           "code": 401}  # fmt: skip


def _module(folder: Path, lease: str | None = None) -> ModuleType:
    command, env = with_middleware(["vllm", "serve"], {"PYTHONPATH": "/x"}, str(folder), lease)
    assert command == ["vllm", "serve", "--middleware", f"{MIDDLEWARE_MODULE}.guard"]
    assert env["PYTHONPATH"] == f"{folder}:/x"
    assert ("PODMGR_GUARD_LEASE_FILE" in env) == (lease is not None)
    spec = importlib.util.spec_from_file_location(
        MIDDLEWARE_MODULE, folder / "podmgr_guard_middleware.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vllm_like_app(module: ModuleType) -> TestClient:
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def anything(path: str) -> PlainTextResponse:
        return PlainTextResponse(f"vllm /{path}")

    app.middleware("http")(module.guard)  # vLLM's build_app with a function --middleware
    return TestClient(app)


@pytest.mark.parametrize("path", [*UNGUARDED_BY_VLLM, "/v1/models", "/podmgr/lease", "/x"])
def test_every_path_but_health_needs_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    monkeypatch.delenv("PODMGR_GUARD_LEASE_FILE", raising=False)
    client = _vllm_like_app(_module(tmp_path))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        refused = client.post(path, headers=headers)
        assert refused.status_code == 401 and refused.json() == REFUSED
    admitted = client.post(path, headers=GOOD)
    assert (admitted.status_code, admitted.text) == (200, f"vllm {path}")  # no lease: vLLM's
    assert client.get("/health").text == "vllm /health"


def test_without_a_key_everything_but_health_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    client = _vllm_like_app(_module(tmp_path))
    assert client.post("/invocations", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.get("/health").status_code == 200


class _Tag(BaseHTTPMiddleware):
    async def dispatch(self, request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-tag"] = "1"
        return response


def test_the_stand_in_applies_middleware_as_vllm_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _module(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    monkeypatch.setitem(sys.modules, "tagmod", ModuleType("tagmod"))
    sys.modules["tagmod"]._Tag = _Tag  # type: ignore[attr-defined]
    argv = ["serve", "--middleware", "tagmod._Tag", f"--middleware={MIDDLEWARE_MODULE}.guard"]
    assert middlewares_of(argv) == ["tagmod._Tag", f"{MIDDLEWARE_MODULE}.guard"]
    client = TestClient(build_app("http://127.0.0.1:9/metrics", middlewares_of(argv)))
    assert client.post("/tokenize").status_code == 401  # the function middleware
    passed = client.post("/tokenize", headers=GOOD)
    assert passed.headers[PASS_HEADER] == "1" and passed.headers["x-tag"] == "1"  # the class
    assert client.get("/health").status_code == 200
    sys.modules["tagmod"].plain = 3  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="Must be a function or a class"):
        build_app("http://127.0.0.1:9/metrics", ["tagmod.plain"])


# --- at a guarded pod's URL (podmgr sim --run-guards) -----------------------------------
@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with guard_sim() as running:
        yield running


@pytest.fixture(scope="module")
def pod(sim: SimProcess) -> Iterator[dict[str, Any]]:
    monkeypatch = pytest.MonkeyPatch()
    try:
        created = create_guarded(sim, monkeypatch)  # no lease: the middleware is there anyway
        wait_until(
            lambda: (
                httpx.get(sim.pod_url(created["id"]) + "/v1/models", headers=GOOD).status_code
                == 200
            ),
            "the guarded pod to serve",
        )
        yield created
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/invocations", {"messages": [{"role": "user", "content": "hi"}]}, 200),
        ("POST", "/tokenize", {"prompt": "def f(): pass"}, 200),
        ("GET", "/metrics", None, 200),
        ("POST", "/score", {"text_1": "a", "text_2": "b"}, 400),
        ("POST", "/pooling", {"input": "a"}, 400),
        ("POST", "/rerank", {"query": "a", "documents": ["b"]}, 400),
        ("POST", "/v2/rerank", {"query": "a", "documents": ["b"]}, 400),
        ("POST", "/detokenize", {"tokens": [1, 2]}, 200),
        ("GET", "/version", None, 200),
        ("GET", "/v1/models", None, 200),
    ],
)
def test_a_guarded_pods_routes_need_the_key(
    sim: SimProcess, pod: dict[str, Any], method: str, path: str, body: Any, status: int
) -> None:
    url = sim.pod_url(pod["id"]) + path
    before = sim.pod_traffic(pod["id"])["model_calls"]
    refused = httpx.request(method, url, json=body, timeout=30)
    assert refused.status_code == 401 and refused.json() == REFUSED
    assert sim.pod_traffic(pod["id"])["model_calls"] == before  # it never reached vLLM
    answer = httpx.request(method, url, json=body, headers=GOOD, timeout=30)
    assert answer.status_code == status, answer.text
    if status == 400:  # what vLLM says of a route of another task
        assert answer.json()["message"].startswith("The model does not support")
    if path == "/metrics":
        assert "vllm:request_success_total" in answer.text
    assert httpx.get(sim.pod_url(pod["id"]) + "/health", timeout=30).status_code == 200


def test_strangers_do_not_keep_a_guarded_pod_busy(
    sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests without the key, all the while: the pod still ends for idleness."""
    created = create_guarded(sim, monkeypatch, idle_timeout_seconds=3)
    url = sim.pod_url(created["id"]) + "/invocations"
    stop = threading.Event()

    def stranger() -> None:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):  # not serving yet, or gone
                httpx.post(url, json={"prompt": "x", "max_tokens": 2}, timeout=10)
            stop.wait(0.2)

    worker = threading.Thread(target=stranger, daemon=True)
    worker.start()
    try:
        rec = wait_ended(sim, created["id"])
    finally:
        stop.set()
        worker.join(timeout=30)
    assert rec["ended_by"] == "pod"
    assert "idle: no request" in guard_log(sim, created["id"])
    traffic = sim.pod_traffic(created["id"])
    refused = [r for r in traffic["recent"] if r["path"] == "/invocations" and r["status"] == 401]
    assert refused and traffic["model_calls"] == 0
    assert record(sim, created["id"])["status"] == "TERMINATED"
