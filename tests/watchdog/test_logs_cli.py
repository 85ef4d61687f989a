"""`podmgr logs --follow`: a starting pod followed to serving, through a dropped stream.

The stream goes through a small TCP relay on loopback that the test can cut (every open
connection closed at once, as a network blip or RunPod's edge would): `podmgr logs` must
pick the stream up where it left off (`Last-Event-ID`), printing no line twice.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from podmgr.sim.process import SimProcess, free_port, wait_until


class Relay:
    """Forwards 127.0.0.1:<port> to a target port; `cut()` closes every open connection."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.open: list[socket.socket] = []
        self.accepted = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.open += [client, upstream]
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.open.clear()

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def slow_start() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=2.0, load_seconds=3.0) as process:
        yield process


def test_logs_follow_a_starting_pod_to_serving_through_a_dropped_stream(
    slow_start: SimProcess, tmp_path: Path
) -> None:
    sim = slow_start
    pod_id = sim.create_pod(name="podmgr-logs-test")
    config = tmp_path / "pod_config.json"
    config.write_text(json.dumps({"state_file": "state.json", "proxy_port": free_port()}))
    state = {
        "pod": {"id": pod_id, "name": "podmgr-logs-test", "gpu_type_id": "g",
                "created_at": 0.0, "vllm_api_key": "k-fake"},
    }  # fmt: skip
    (tmp_path / "state.json").write_text(json.dumps(state))
    port = int(sim.rest_url.rsplit(":", 1)[1].split("/")[0])
    relay = Relay(port)
    env = {**sim.env(tmp_path / "home"), "RUNPOD_REST_URL": f"http://127.0.0.1:{relay.port}/v2"}
    follow = subprocess.Popen(
        [sys.executable, "-m", "podmgr", "logs", "--follow", "--system", "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(follow.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        wait_until(lambda: any("Pulling image" in line for line in lines), "the pull's line", 60)
        relay.cut()  # mid-start: the stream drops
        wait_until(lambda: relay.accepted >= 2, "a reconnection", 60)
        sim.wait_serving(pod_id)
        wait_until(
            lambda: any("Application startup complete" in line for line in lines),
            "vLLM's serving line after the reconnection",
            60,
        )
        _terminate(sim, pod_id)
        follow.wait(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
        relay.close()
    err = follow.stderr.read() if follow.stderr else ""  # type: ignore[union-attr]
    assert follow.returncode == 0, err
    assert "reconnecting" in err and f"pod {pod_id} is gone" in err
    texts = [line.split(" ", 2)[-1] for line in lines]
    assert len(texts) == len(set(texts)), "a line was printed twice after the reconnection"
    pulled = next(i for i, t in enumerate(texts) if "Pulling image" in t)
    serving = next(i for i, t in enumerate(texts) if "Application startup complete" in t)
    assert pulled < serving


def _terminate(sim: SimProcess, pod_id: str) -> None:
    import httpx

    answer = httpx.delete(
        f"{sim.rest_url}/pods/{pod_id}",
        headers={"Authorization": f"Bearer {sim.api_key}"},
        timeout=30,
    )
    assert answer.status_code == 204, answer.text
