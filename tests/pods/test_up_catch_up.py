"""`podmgr up` with several pods says serving only once the proxy routes each ready pod
(issue 23): the proxy reads the state on its own schedule, and the end-to-end test saw a
first request for the big model get 503 "the GPU pod chat is starting" right after `up`.
`proxy_serves_pods` waits for the proxy's /health `pods` to show each pod ready with its id;
here the proxy is a stand-in /health on a free loopback port whose answer the test sets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from podmgr.config import Config, build_config
from podmgr.watchdog.proxy_probe import proxy_serves_pods

PODS = [{"name": "chat", "model": "big"}, {"name": "fim", "model": "small"}]


class Health(BaseHTTPRequestHandler):
    body: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        data = json.dumps(type(self).body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[Config, type[Health]]]:
    handler = type("ThisHealth", (Health,), {"body": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = build_config(
        {"pods": PODS, "proxy_port": server.server_address[1]}, base_dir=tmp_path, environ={}
    )
    try:
        yield config, handler
    finally:
        server.shutdown()
        server.server_close()


def _pods(**views: dict[str, str] | None) -> dict[str, Any]:
    return {"status": "ok", "pods": views}


def test_serves_once_each_pod_is_ready_with_its_id(proxy: tuple[Config, type[Health]]) -> None:
    config, health = proxy
    health.body = _pods(chat={"id": "c1", "phase": "ready"}, fim={"id": "f1", "phase": "ready"})
    assert proxy_serves_pods(config, {"chat": "c1", "fim": "f1"}, timeout=5)


@pytest.mark.parametrize(
    "views",
    [
        pytest.param({"chat": {"id": "c1", "phase": "starting"}, "fim": {"id": "f1",
                      "phase": "ready"}}, id="one-still-starting-in-the-proxy"),
        pytest.param({"chat": {"id": "c0", "phase": "ready"}, "fim": {"id": "f1",
                      "phase": "ready"}}, id="an-older-pod"),
        pytest.param({"chat": {"id": "c1", "phase": "ready"}, "fim": None}, id="one-unknown"),
    ],
)  # fmt: skip
def test_not_while_the_proxy_lags_behind_the_state(
    proxy: tuple[Config, type[Health]], views: dict[str, Any]
) -> None:
    config, health = proxy
    health.body = _pods(**views)
    assert not proxy_serves_pods(config, {"chat": "c1", "fim": "f1"}, timeout=0.5)
