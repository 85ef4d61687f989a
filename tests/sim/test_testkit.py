"""The test kit's own helpers: waits that say what they waited for, the state writer."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from simkit import write_pod_state

from podmgr.sim.process import free_port, wait_http, wait_until
from podmgr.state import StateStore


class _Teapot(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(418)
        self.end_headers()
        self.wfile.write(b"short and stout")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def teapot() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Teapot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_wait_until_returns_the_first_truthy_value() -> None:
    seen = iter([0, None, "", 7, 8])
    assert wait_until(lambda: next(seen), "a number") == 7


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match=r"waited 0.2 s for the moon; last seen: 0"):
        wait_until(lambda: 0, "the moon", timeout=0.2)


def test_wait_http_takes_any_status_as_an_answer(teapot: str) -> None:
    answer = wait_http(teapot + "/")
    assert (answer.status, answer.body) == (418, b"short and stout")


def test_wait_http_waits_for_ready_and_reports_the_last_answer(teapot: str) -> None:
    with pytest.raises(TimeoutError, match=r"for tea to be served.*HTTP 418"):
        wait_http(
            teapot + "/", ready=lambda a: a.status == 200, what="tea to be served", timeout=0.3
        )


def test_wait_http_reports_a_server_that_never_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    with pytest.raises(TimeoutError, match=rf"{url} to answer.*Connection refused"):
        wait_http(url, timeout=0.3)


def test_write_pod_state_is_what_the_proxy_reads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_pod_state(path, "pod1", "http://127.0.0.1:9/pods/pod1-8000", api_key="k-not-real")
    state = StateStore(path).peek()
    assert state is not None and state.pod is not None and state.session.active
    pod = state.pod
    assert (pod.id, pod.phase, pod.vllm_api_key) == ("pod1", "ready", "k-not-real")
    assert state.pod.endpoint_url == "http://127.0.0.1:9/pods/pod1-8000"
    write_pod_state(path, "pod1", None, api_key="k-not-real", phase="starting")
    starting = StateStore(path).peek()
    assert starting is not None and starting.pod is not None
    assert (starting.pod.phase, starting.pod.ready_at) == ("starting", None)
