"""The stand-in `vllm` executable on a simulated pod's PATH: vLLM's app shell and middlewares.

`podmgr sim --run-guards` runs a pod's guard start command for real; the guard starts
`vllm serve ...` as its child, and this is what it finds. As vLLM v0.8.5's `build_app`
(vllm/entrypoints/openai/api_server.py) does, it builds a FastAPI app and adds every
`--middleware module.attr` (the option repeats; the module is imported from PYTHONPATH): a
class with `app.add_middleware`, an `async def` with `app.middleware("http")`, anything else
refused with a ValueError. The guard's middleware (podmgr/guard/guard.py) arrives that way.

It listens on the port the simulator mapped for the pod's localhost (`SIM_VLLM_PORT`: many
pods share one machine, so each gets its own, as a container's port would be its own) and
answers `/health` and `/metrics` itself; the metrics are the pod's request counters as the
simulator counted them at the pod's URL (GET /_sim/pods/{id}/metrics). Every other request
its middlewares let through reaches a catch-all route that answers with `PASS_HEADER`: the
simulator's edge (podmgr/sim/edge.py) then has the simulated vLLM (podmgr/sim/vllm.py)
answer it, streams and faults included. The simulator runs this with its own interpreter,
which has FastAPI and uvicorn (vLLM's image has them too).

Before the simulated model has loaded (the pod's phase, GET /_sim/pods/{id}, is not yet
`serving`) `/metrics` answers 503: real vLLM's HTTP server starts only after loading
(`vllm/entrypoints/openai/api_server.py` builds the engine client before it serves), so
no `/metrics` answer exists then, and the pod's guard starts its idle clock on the first
answer. This stand-in answering during the load let a guard with a short idle limit end
its pod before it ever served.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any, cast

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response

from podmgr.sim.reply import PASS_HEADER

__all__ = ["build_app", "main", "middlewares_of"]

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


def middlewares_of(argv: list[str]) -> list[str]:
    """The values of every `--middleware` option (vLLM's is `action="append"`)."""
    found = []
    for index, word in enumerate(argv):
        if word == "--middleware" and index + 1 < len(argv):
            found.append(argv[index + 1])
        elif word.startswith("--middleware="):
            found.append(word.split("=", 1)[1])
    return found


def _add_middleware(app: FastAPI, middleware: str) -> None:
    """What vLLM v0.8.5's build_app does with one `--middleware` value."""
    module_path, object_name = middleware.rsplit(".", 1)
    imported: Any = getattr(importlib.import_module(module_path), object_name)
    if inspect.isclass(imported):
        app.add_middleware(cast(Any, imported))  # any ASGI middleware class
    elif inspect.iscoroutinefunction(imported):
        app.middleware("http")(imported)
    else:
        raise ValueError(f"Invalid middleware {middleware}. Must be a function or a class.")


LOADED_PHASES = frozenset({"serving", "dead"})  # the model loaded (vLLM may have died since)


class _Loaded:
    """Whether the simulated model has loaded: asked of the simulator until it has."""

    def __init__(self, phase_url: str) -> None:
        self.phase_url = phase_url
        self.loaded = False

    def __call__(self) -> bool:
        if not self.loaded:
            try:
                phase = httpx.get(self.phase_url, timeout=5).json().get("phase")
            except (httpx.HTTPError, ValueError):
                return False
            self.loaded = phase in LOADED_PHASES
        return self.loaded


def build_app(metrics_url: str, middlewares: list[str], phase_url: str | None = None) -> FastAPI:
    app = FastAPI()
    loaded: Callable[[], bool] = _Loaded(phase_url) if phase_url else (lambda: True)

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/metrics")
    def metrics() -> Response:  # a plain def: FastAPI runs it in its thread pool
        if not loaded():
            return PlainTextResponse("model loading", status_code=503)
        try:
            answer = httpx.get(metrics_url, timeout=5)
            answer.raise_for_status()
        except httpx.HTTPError as error:
            return PlainTextResponse(str(error), status_code=503)
        return Response(answer.content, media_type="text/plain; version=0.0.4")

    @app.api_route("/{path:path}", methods=_METHODS)
    async def to_vllm(path: str) -> Response:
        return Response(status_code=200, headers={PASS_HEADER: "1"})

    for middleware in middlewares:
        _add_middleware(app, middleware)
    return app


def main(argv: list[str]) -> int:
    if argv[:1] != ["serve"]:
        sys.stderr.write("stand-in vllm: only `vllm serve ...` is simulated\n")
        return 2
    port = int(os.environ["SIM_VLLM_PORT"])
    control, pod_id = os.environ["SIM_CONTROL_URL"], os.environ["RUNPOD_POD_ID"]
    app = build_app(
        f"{control}/_sim/pods/{pod_id}/metrics",
        middlewares_of(argv),
        phase_url=f"{control}/_sim/pods/{pod_id}",
    )
    sys.stdout.write(f"stand-in vllm serving on 127.0.0.1:{port}\n")
    sys.stdout.flush()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0
