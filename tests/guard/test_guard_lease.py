"""The guard's optional lease: served inside vLLM's app, renewed by each watchdog pass."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from wdkit import Harness

from guard.guardkit import create_guarded, guard_log, guard_sim, wait_ended
from podmgr.config import build_config
from podmgr.errors import ConfigError
from podmgr.guard.guard import MIDDLEWARE_MODULE, Activity, Limits, decide, with_middleware
from podmgr.sim.process import SimProcess, wait_until

T0 = 1_000_000.0


@pytest.mark.parametrize(
    ("renewed", "now", "ends"),
    [
        pytest.param(T0, T0 + 59, False, id="renewed-recently"),
        pytest.param(T0, T0 + 60, True, id="not-renewed-for-the-lease"),
        pytest.param(None, T0 + 999, False, id="no-lease-file"),
    ],
)
def test_decide_lease(renewed: float | None, now: float, ends: bool) -> None:
    reason = decide(Limits(lease_seconds=60), now, None, Activity(), renewed)
    assert (reason is not None and reason.startswith("lease:")) if ends else reason is None


def test_lease_is_off_by_default_and_needs_two_passes() -> None:
    assert build_config({}).guard.lease_seconds is None
    with pytest.raises(ConfigError, match="twice the watchdog's interval_seconds"):
        build_config({"guard_lease_seconds": 300, "watchdog_interval_seconds": 300})


def _middleware_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, Path]:
    lease = tmp_path / "g" / "lease"
    command, env = with_middleware(
        ["vllm", "serve", "--model", "m"], {}, str(lease.parent), str(lease)
    )
    assert command[-2:] == ["--middleware", f"{MIDDLEWARE_MODULE}.guard"]
    assert env["PYTHONPATH"] == str(lease.parent)
    assert env["PODMGR_GUARD_LEASE_FILE"] == str(lease)
    path = lease.parent / f"{MIDDLEWARE_MODULE}.py"
    spec = importlib.util.spec_from_file_location(MIDDLEWARE_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("VLLM_API_KEY", "vllm-key-fake")
    monkeypatch.setenv("PODMGR_GUARD_LEASE_FILE", str(lease))

    app = FastAPI()  # vLLM's app is a FastAPI app

    @app.get("/v1/models")
    async def models() -> PlainTextResponse:
        return PlainTextResponse("vllm")

    app.middleware("http")(module.guard)  # what vLLM does with a function --middleware
    return TestClient(app), lease


def test_the_lease_middleware_in_an_asgi_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, lease = _middleware_app(tmp_path, monkeypatch)
    os.utime(lease, (T0, T0))
    good = {"Authorization": "Bearer vllm-key-fake"}
    assert client.get("/v1/models", headers=good).text == "vllm"  # the rest reaches vLLM
    assert client.post("/podmgr/lease").status_code == 401
    assert client.post("/podmgr/lease", headers={"Authorization": "Bearer no"}).status_code == 401
    assert os.stat(lease).st_mtime == T0
    assert client.get("/podmgr/lease", headers=good).status_code == 405
    assert client.post("/podmgr/lease", headers=good).status_code == 200
    assert os.stat(lease).st_mtime > T0


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with guard_sim() as running:
        yield running


def _renew(sim: SimProcess, pod_id: str, key: str) -> int:
    url = sim.pod_url(pod_id) + "/podmgr/lease"
    return httpx.post(url, headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code


def test_an_unrenewed_lease_ends_the_pod(sim: SimProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    pod = create_guarded(sim, monkeypatch, guard_lease_seconds=4, watchdog_interval_seconds=1)
    wait_until(lambda: _renew(sim, pod["id"], "vllm-key-fake") == 200, "the lease endpoint")
    assert _renew(sim, pod["id"], "wrong-key") == 401
    renewed_until = time.time() + 6
    while time.time() < renewed_until:  # renewals keep it up past its lease
        assert _renew(sim, pod["id"], "vllm-key-fake") == 200, guard_log(sim, pod["id"])
        time.sleep(1)
    assert wait_ended(sim, pod["id"])["ended_by"] == "pod"
    assert "lease: the watchdog has not renewed it" in guard_log(sim, pod["id"])


@pytest.fixture
def wd_sim(sim: SimProcess) -> SimProcess:
    """`wd` runs on this module's simulator."""
    return sim


def test_watchdog_passes_renew_the_lease(wd: Harness) -> None:
    wd.configure(
        gpu_type_id="NVIDIA GeForce RTX 4090", model="sim-model", guard_lease_seconds=4,
        watchdog_interval_seconds=1,
    )  # fmt: skip
    wd.up()
    state = wd.state()
    assert state.pod is not None and state.pod.guard is not None
    assert state.pod.guard["lease_seconds"] == "4"
    passes_until = time.time() + 8
    while time.time() < passes_until:
        wd.run()
        time.sleep(1)
    assert [p["status"] for p in wd.ledger()] == ["RUNNING"], guard_log(wd.sim, state.pod.id)
    rec = wait_ended(wd.sim, state.pod.id)  # cron removed: no more passes
    assert rec["ended_by"] == "pod"
    assert "lease: the watchdog has not renewed it" in guard_log(wd.sim, state.pod.id)
