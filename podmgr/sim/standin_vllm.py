"""The stand-in `vllm` executable on a simulated pod's PATH (standard library only).

`podmgr sim --run-guards` runs a pod's guard start command for real; the guard starts
`vllm serve ...` as its child, and this is what it finds. It listens on the port the
simulator mapped for the pod's localhost (`SIM_VLLM_PORT`: many pods share one machine,
so each gets its own, as a container's port would be its own) and serves `/health` and
`/metrics`; the metrics are the pod's request counters as the simulator counted them at
the pod's URL (GET /_sim/pods/{id}/metrics). The OpenAI routes stay in the simulator's
process (podmgr/sim/vllm.py): the pod URL answers them while this process runs.

Before the simulated model has loaded (the pod's phase, GET /_sim/pods/{id}, is not yet
`serving`) `/metrics` answers 503: real vLLM's HTTP server starts only after loading
(`vllm/entrypoints/openai/api_server.py` builds the engine client before it serves), so
no `/metrics` answer exists then, and the pod's guard starts its idle clock on the first
answer. This stand-in answering during the load let a guard with a short idle limit end
its pod before it ever served.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["main"]


LOADED_PHASES = frozenset({"serving", "dead"})  # the model loaded (vLLM may have died since)


class _Handler(BaseHTTPRequestHandler):
    metrics_url = ""
    phase_url = ""
    loaded = False  # once the model has loaded, it stays loaded for this process
    lease = False  # started with `--middleware podmgr_lease.renew` (the guard's lease)

    def do_POST(self) -> None:
        """The guard's lease middleware, as podmgr/guard/guard.py LEASE_MIDDLEWARE does it."""
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path != "/podmgr/lease" or not self.lease:
            self._send(404, b'{"detail":"Not Found"}', "application/json")
            return
        key = os.environ.get("VLLM_API_KEY", "")
        given = self.headers.get("Authorization", "")
        if not key or not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            self._send(401, b'{"error":"Unauthorized"}', "application/json")
            return
        path = os.environ["PODMGR_GUARD_LEASE_FILE"]
        with open(path, "a", encoding="utf-8"):
            pass
        os.utime(path)
        self._send(200, b'{"renewed":true}', "application/json")

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, b"", "text/plain")
        elif self.path == "/metrics":
            if not self._model_loaded():
                self._send(503, b"model loading", "text/plain")
                return
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
                    body = response.read()
            except OSError as error:
                self._send(503, str(error).encode(), "text/plain")
                return
            self._send(200, body, "text/plain; version=0.0.4")
        else:
            self._send(404, b'{"detail":"Not Found"}', "application/json")

    @classmethod
    def _model_loaded(cls) -> bool:
        if not cls.loaded:
            try:
                with urllib.request.urlopen(cls.phase_url, timeout=5) as response:
                    phase = json.loads(response.read()).get("phase")
            except (OSError, ValueError):
                return False
            cls.loaded = phase in LOADED_PHASES
        return cls.loaded

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # stdlib's name
        pass


def main(argv: list[str]) -> int:
    if argv[:1] != ["serve"]:
        sys.stderr.write("stand-in vllm: only `vllm serve ...` is simulated\n")
        return 2
    port = int(os.environ["SIM_VLLM_PORT"])
    control, pod_id = os.environ["SIM_CONTROL_URL"], os.environ["RUNPOD_POD_ID"]
    _Handler.metrics_url = f"{control}/_sim/pods/{pod_id}/metrics"
    _Handler.phase_url = f"{control}/_sim/pods/{pod_id}"
    _Handler.lease = "podmgr_lease.renew" in argv
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    sys.stdout.write(f"stand-in vllm serving on 127.0.0.1:{port}\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0
