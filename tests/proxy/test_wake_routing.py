"""In process: which requests wake the pod (issue 13). A fake transport answers every
upstream call, and the wake's command is `true`, so nothing is started for real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from podmgr.config import Config
from podmgr.proxy import app as app_module
from podmgr.proxy import create_app
from podmgr.proxy.wake import Waker

from .test_proxy_app import FakeTransport


class HarmlessWaker(Waker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.command = ["true"]


def _app(tmp_path: Path) -> TestClient:
    config = Config.model_validate(
        {
            "cache_dir": str(tmp_path / "cache"),
            "state_file": str(tmp_path / "state.json"),
            "base_dir": str(tmp_path),
            "wake_on_request": True,
            "cache_mode": "off",
            "upstreams": [
                {"name": "pod", "kind": "pod", "models": ["big"]},
                {"name": "local", "kind": "openai", "base_url": "http://local.invalid:1"},
            ],
        }
    )
    fake: Any = FakeTransport()
    return TestClient(create_app(config, client=fake, config_path=tmp_path / "c.json"))


def test_only_a_model_the_pod_serves_wakes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "Waker", HarmlessWaker)
    body = {"messages": [{"role": "user", "content": "x"}]}
    with _app(tmp_path) as client:
        answer = client.post("/v1/chat/completions", json={**body, "model": "small"})
        assert answer.headers["x-upstream"] == "local"
        assert client.get("/health").json()["wake"]["wakes"] == 0
        answer = client.post("/v1/chat/completions", json={**body, "model": "big"})
        assert answer.headers["x-upstream"] == "local"
        assert client.get("/health").json()["wake"]["wakes"] == 1


def test_with_two_pods_a_request_wakes_only_the_pod_of_its_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23: both pods cold, a fallback serving anything; a request for the small model
    is answered by the fallback and wakes `fast` only, then one for the big model `chat`."""
    monkeypatch.setattr(app_module, "Waker", HarmlessWaker)
    config = Config.model_validate(
        {
            "cache_dir": str(tmp_path / "cache"),
            "state_file": str(tmp_path / "state.json"),
            "base_dir": str(tmp_path),
            "wake_on_request": True,
            "cache_mode": "off",
            "pods": [{"name": "chat", "model": "big"}, {"name": "fast", "model": "small"}],
            "upstreams": [
                {"name": "chat", "kind": "pod"},
                {"name": "fast", "kind": "pod"},
                {"name": "local", "kind": "openai", "base_url": "http://local.invalid:1"},
            ],
        }
    )
    fake: Any = FakeTransport()
    body = {"messages": [{"role": "user", "content": "x"}]}
    with TestClient(create_app(config, client=fake, config_path=tmp_path / "c.json")) as client:
        answer = client.post("/v1/chat/completions", json={**body, "model": "small"})
        assert answer.headers["x-upstream"] == "local"
        wake = client.get("/health").json()["wake"]
        assert (wake["wakes"], wake["pod"]) == (1, "fast")
        client.post("/v1/chat/completions", json={**body, "model": "big"})
        wake = client.get("/health").json()["wake"]
        assert (wake["wakes"], wake["pod"]) == (2, "chat")
        models = client.get("/v1/models").json()["data"]
        assert {"big", "small"} <= {model["id"] for model in models}
