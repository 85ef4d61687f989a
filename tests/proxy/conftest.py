"""Fixtures for the proxy's tests (helpers in proxykit.py): real processes, free ports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podmgr.sim.testkit import SimProcess

from .proxykit import (
    HERE,
    VLLM_KEY,
    FakeUpstream,
    ProxyProcess,
    SimPod,
    free_port,
    wait_http,
    write_pod_state,
)


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[FakeUpstream]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "fake_upstream.py"), str(port), VLLM_KEY],
        stdin=subprocess.DEVNULL,
    )
    upstream = FakeUpstream(f"http://127.0.0.1:{port}", process)
    try:
        wait_http(upstream.url + "/calls")
        yield upstream
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def reset_upstream(fake_upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    fake_upstream.control(token_delay=0.0, fail_status=None, drop_after=None)
    yield fake_upstream
    fake_upstream.control(token_delay=0.0, fail_status=None, drop_after=None)


@pytest.fixture
def make_proxy(tmp_path: Path) -> Iterator[Any]:
    """Factory: make_proxy(**config_fields) -> started ProxyProcess (stopped at teardown)."""
    made: list[ProxyProcess] = []

    def make(workdir: Path | None = None, start: bool = True, **fields: Any) -> ProxyProcess:
        directory = workdir or tmp_path / f"proxy{len(made)}"
        directory.mkdir(exist_ok=True)
        proxy = ProxyProcess(directory, **fields)
        made.append(proxy)
        return proxy.start() if start else proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture(scope="module")
def sim_pod() -> Iterator[SimPod]:
    """A simulator (edge timeout 1 s) with one serving pod that requires VLLM_KEY."""
    with SimProcess(
        pull_seconds=0.05, load_seconds=0.05, token_delay=0.0, edge_timeout_seconds=1.0
    ) as sim:
        pod_id = sim.create_pod(env={"VLLM_API_KEY": VLLM_KEY})
        sim.wait_serving(pod_id)
        yield SimPod(sim, pod_id, sim.pod_url(pod_id))


@pytest.fixture(scope="module")
def sim_proxy(sim_pod: SimPod, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """One proxy in front of `sim_pod` through the state file, shared by a module."""
    workdir = tmp_path_factory.mktemp("sim_proxy")
    proxy = ProxyProcess(workdir, upstream_timeout_seconds=30)
    write_pod_state(proxy.state_path, sim_pod.pod_id, sim_pod.url)
    proxy.start()
    yield proxy
    proxy.close()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "PODMGR_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("PODMGR_") or name in ("MAX_CACHE_SIZE", "CACHE_SIZE_BYTES"):
            monkeypatch.delenv(name, raising=False)
