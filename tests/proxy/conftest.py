"""Fixtures for the proxy's tests (helpers in proxykit.py): real processes, free ports.

Every upstream is the project's simulator (tests/simkit.py `simulated_vllm`): a
serving pod whose vLLM requires VLLM_KEY, with the simulator's faults and traffic counters.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from simkit import SimUpstream, simulated_vllm, start_pod

from podmgr.sim.process import SimProcess

from .proxykit import VLLM_KEY, ProxyProcess

# The model the cache tests' bodies name; the simulated vLLM 404s any other (as vLLM does).
MODEL = "m"
# The models of the two-pod tests (config `pods`): a big chat model and a small fast one.
BIG, SMALL = "sim/coder-32b", "sim/coder-1.5b"


@pytest.fixture(scope="module")
def vllm_upstream() -> Iterator[SimUpstream]:
    """A simulated pod serving MODEL (edge limit 100 s, as RunPod's), shared by a module."""
    with simulated_vllm(api_key=VLLM_KEY, model=MODEL) as upstream:
        yield upstream


@pytest.fixture
def upstream(vllm_upstream: SimUpstream) -> Iterator[SimUpstream]:
    """`vllm_upstream` with no fault in force before and after the test."""
    vllm_upstream.clear_faults()
    yield vllm_upstream
    vllm_upstream.clear_faults()


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
def sim_pod() -> Iterator[SimUpstream]:
    """A simulator (edge timeout 1 s) with one serving pod that requires VLLM_KEY."""
    with simulated_vllm(api_key=VLLM_KEY, edge_timeout_seconds=1.0) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def sim_proxy(
    sim_pod: SimUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    """One proxy in front of `sim_pod` through the state file, shared by a module."""
    workdir = tmp_path_factory.mktemp("sim_proxy")
    proxy = ProxyProcess(workdir, upstream_timeout_seconds=30)
    sim_pod.write_state(proxy.state_path)
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


@pytest.fixture(scope="module")
def two_pods() -> Iterator[dict[str, SimUpstream]]:
    """One simulator with two serving pods, each with its own vLLM key and model."""
    with SimProcess(pull_seconds=0.05, load_seconds=0.05) as sim:
        yield {
            "chat": start_pod(sim, api_key="chat-vllm-key-not-real", model=BIG),
            "fast": start_pod(sim, api_key="fast-vllm-key-not-real", model=SMALL),
        }
