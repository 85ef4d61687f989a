"""Start and stop the processes a benchmark measures: upstream, bare app, proxy."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from podmgr.sim.process import free_port, wait_http
from podmgr.state import PodRecord, Session, State, StateStore

__all__ = ["free_port", "serve_app", "serve_proxy"]

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def _process(args: list[str], ready_url: str, cwd: Path | None = None) -> Iterator[None]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        args, cwd=cwd or ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    try:
        try:
            wait_http(ready_url)
        except TimeoutError:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        yield
    finally:
        log.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def serve_app(kind: str, *extra: str) -> Iterator[str]:
    """`upstream`, `bare`, `bare-proxied`, `forwarder UPSTREAM` or `floor UPSTREAM`
    (bench/apps.py); yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    probe = url + ("/" if kind.startswith("bare") else "/v1/models")
    with _process([sys.executable, "-m", "bench.apps", kind, str(port), *extra], probe):
        yield url


def _write_ready_pod(path: Path, pod_url: str) -> None:
    """A state file naming a ready pod at `pod_url`, as the watchdog writes it."""
    now = time.time()
    pod = PodRecord(
        id="bench", name="podmgr-bench", gpu_type_id="NVIDIA GeForce RTX 4090",
        cost_per_hr=0.69, created_at=now - 60, ready_at=now - 30, phase="ready",
        endpoint_url=pod_url, vllm_api_key="bench-key-not-real", billed_until=now - 60,
    )  # fmt: skip
    session = Session(started_at=now - 60, deadline=now + 3600, cost_usd=0.05)
    StateStore(path).save(State(session=session, pod=pod))


@contextmanager
def serve_proxy(workdir: Path, pod_url: str | None = None, **fields: Any) -> Iterator[str]:
    """A `podmgr proxy` process with a config made of `fields`; yields its base URL.

    With `pod_url`, the upstream is a ready pod in the state file (as the watchdog writes
    it), which the proxy treats as behind RunPod's edge: completions go upstream as streams.
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    if pod_url is not None:
        _write_ready_pod(workdir / "state.json", pod_url)
    config = workdir / "pod_config.json"
    config.write_text(
        json.dumps({"proxy_port": port, "cache_dir": "cache", "state_file": "state.json",
                    "log_level": "warning", **fields})
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "podmgr", "proxy", "--config", str(config)]
    with _process(args, url + "/health", cwd=workdir):
        yield url
