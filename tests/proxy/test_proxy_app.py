"""The app's wiring, in process: one FastAPI app, `/v1` mounted raw, the upstream injected.

An in-process `Transport` stands in for the model server (no socket, no subprocess), which
is what handing the client to `create_app` is for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import orjson
import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from podmgr.config import Config
from podmgr.proxy import create_app

KEY = "sk-test-proxy-key"


@dataclass
class FakeResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.body

    async def read(self, limit: int | None = None) -> bytes:
        return self.body[:limit] if limit is not None else self.body


@dataclass
class FakeTransport:
    """Answers every request with a small JSON body and remembers what it was sent."""

    sent: list[tuple[str, str, bytes]] = field(default_factory=list)
    closed: bool = False

    @asynccontextmanager
    async def _exchange(self, method: str, url: str, body: bytes) -> AsyncIterator[FakeResponse]:
        self.sent.append((method, url, body))
        if url.endswith("/v1/chat/completions"):
            answer = {"id": "c1", "object": "chat.completion", "choices": [], "usage": {}}
            yield FakeResponse(200, orjson.dumps(answer))
        else:
            yield FakeResponse(200, b'{"object": "list", "data": []}')

    def request(
        self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> AsyncIterator[FakeResponse]:
        return self._exchange(method, url, body)  # type: ignore[return-value]

    async def close(self) -> None:
        self.closed = True


class CountingMiddleware:
    """Counts the requests that pass through FastAPI's middleware stack."""

    seen: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            CountingMiddleware.seen.append(scope["path"])
        await self.app(scope, receive, send)


def _config(tmp_path: Path, **fields: object) -> Config:
    return Config.model_validate(
        {
            "cache_dir": str(tmp_path / "cache"),
            "base_dir": str(tmp_path),
            "upstream_url": "http://model.invalid:8000",
            **fields,
        }
    )


@pytest.fixture
def fake() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def client(tmp_path: Path, fake: FakeTransport) -> Iterator[TestClient]:
    app = create_app(_config(tmp_path, proxy_api_keys=[KEY]), client=fake)  # type: ignore[arg-type]
    CountingMiddleware.seen = []
    app.add_middleware(CountingMiddleware)
    with TestClient(app) as test_client:
        yield test_client
    assert fake.closed, "the lifespan did not close the injected client"


def test_pass_through_keeps_the_whole_path_under_the_mount(
    client: TestClient, fake: FakeTransport
) -> None:
    """Mounted at /v1, the handler still sees the whole path: the upstream URL keeps /v1."""
    response = client.get("/v1/models?x=1", headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code == 200, response.text
    assert fake.sent == [("GET", "http://model.invalid:8000/v1/models?x=1", b"")]


def test_v1_requests_skip_fastapi_middleware(client: TestClient) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    assert client.get("/v1/models", headers=auth).status_code == 200
    assert client.get("/health").status_code == 200
    assert CountingMiddleware.seen == ["/health"]


def test_one_key_check_answers_both_sides_alike(client: TestClient) -> None:
    v1 = client.get("/v1/models", headers={"authorization": "Bearer wrong"})
    metrics = client.get("/metrics", headers={"authorization": "Bearer wrong"})
    assert v1.status_code == metrics.status_code == 401
    assert v1.json() == metrics.json()
    assert v1.json()["error"]["code"] == "invalid_api_key"
    assert client.get("/metrics", headers={"authorization": f"Bearer {KEY}"}).status_code == 200


def test_a_miss_then_a_hit_through_the_injected_client(
    client: TestClient, fake: FakeTransport
) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    first = client.post("/v1/chat/completions", json=body, headers=auth)
    assert first.status_code == 200, first.text
    assert first.headers["x-cache"] == "MISS"
    second = client.post("/v1/chat/completions", json=body, headers=auth)
    assert second.headers["x-cache"] == "HIT", second.headers
    assert second.json() == first.json()
    assert len(fake.sent) == 1, fake.sent
    metrics = client.get("/metrics", headers=auth).text
    assert 'podmgr_proxy_cache_results_total{result="hit"} 1.0' in metrics, metrics[:2000]


@pytest.mark.parametrize("keys", [[""], ["  "], ["", KEY]])
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no-header"),
        pytest.param("Bearer ", id="empty-bearer"),
        pytest.param("Bearer    ", id="blank-bearer"),
        pytest.param("Bearer", id="bare-word"),
        pytest.param("", id="empty-header"),
    ],
)
def test_a_missing_or_empty_bearer_never_matches_even_a_blank_key(
    tmp_path: Path, fake: FakeTransport, keys: list[str], authorization: str | None
) -> None:
    """`config validate` refuses blank keys; a config that holds one anyway (built without
    validation here) must not let a request without a key through: that request, on
    0.0.0.0 with wake_on_request, created a pod."""
    config = _config(tmp_path, proxy_api_keys=[KEY]).model_copy(update={"proxy_api_keys": keys})
    app = create_app(config, client=fake)  # type: ignore[arg-type]
    headers = {} if authorization is None else {"authorization": authorization}
    with TestClient(app) as test_client:
        for path in ("/v1/models", "/v1/chat/completions"):
            answer = test_client.post(path, headers=headers, json={"model": "m", "messages": []})
            assert answer.status_code == 401, (path, answer.text)
        assert fake.sent == []
        if KEY in keys:
            good = {"authorization": f"Bearer {KEY}"}
            assert test_client.get("/v1/models", headers=good).status_code == 200


def test_health_and_dashboard_of_an_upstream_url_config_name_that_server(
    client: TestClient,
) -> None:
    """No pod among the upstreams: /health shows the one upstream, ready, as static."""
    upstream = client.get("/health").json()["upstream"]
    assert upstream["ready"] is True and upstream["static"] is True
    assert upstream["url_host"] == "model.invalid:8000" and upstream["reason"] is None
    dashboard = client.get("/dashboard", headers={"authorization": f"Bearer {KEY}"}).text
    assert "ready (model.invalid:8000)" in dashboard
    assert "Upstream upstream" not in dashboard  # one upstream: no per-upstream rows
