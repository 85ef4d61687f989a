"""A flight's one state, driven by an in-process `Transport` (no socket): each row is one
way an upstream answer can go, and the state and failure it must end in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from podmgr.proxy.cache.key import decide
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.forward.coalescer import Coalescer
from podmgr.proxy.forward.flight import Flight, FlightState, UpstreamCall
from podmgr.proxy.observe.metrics import ProxyMetrics, Snapshot
from podmgr.proxy.upstream.transport import UpstreamDropped

SSE = "text/event-stream"
CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
DONE = b"data: [DONE]\n\n"
VLLM_ERROR = b'data: {"error":{"message":"boom","code":400}}\n\n'


@dataclass
class Scripted:
    status: int
    content_type: str
    pieces: list[bytes]
    fail_after: bool = False  # the connection drops after the pieces
    headers: list[tuple[str, str]] = field(default_factory=list)

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            await asyncio.sleep(0)
            yield piece
        if self.fail_after:
            raise UpstreamDropped("the model server closed the connection")

    async def read(self, limit: int | None = None) -> bytes:
        return b"".join([piece async for piece in self.chunks()])


@dataclass
class OneAnswer:
    answer: Scripted

    @asynccontextmanager
    async def _exchange(self) -> AsyncIterator[Scripted]:
        yield self.answer

    def request(self, *_args: object, **_kwargs: object) -> AsyncIterator[Scripted]:
        return self._exchange()  # type: ignore[return-value]

    async def close(self) -> None:
        return None


CASES = [
    pytest.param(Scripted(200, "application/json", [b'{"id":"x"}']), "complete", None, id="json"),
    pytest.param(Scripted(200, SSE, [CHUNK, DONE]), "complete", None, id="stream"),
    pytest.param(Scripted(500, "application/json", [b"{}"]), "failed", 502, id="status-500"),
    pytest.param(Scripted(200, SSE, [CHUNK]), "failed", 502, id="stream-without-done"),
    pytest.param(Scripted(200, SSE, [CHUNK], fail_after=True), "failed", 502, id="stream-dropped"),
    pytest.param(Scripted(200, SSE, [CHUNK, VLLM_ERROR, DONE]), "failed", 400, id="vllm-error"),
    # The whole stream came, [DONE] included; the connection broke before the HTTP
    # message's own end: the clients have their answer, no error event may follow [DONE].
    pytest.param(
        Scripted(200, SSE, [CHUNK, DONE], fail_after=True), "complete", None, id="drop-after-done"
    ),
]


@pytest.mark.parametrize(("answer", "state", "status"), CASES)
async def test_a_flight_ends_in_one_state(
    tmp_path: Path, answer: Scripted, state: str, status: int | None
) -> None:
    cache = CacheStore(tmp_path / "cache", 100, 10**6, 10**6)
    await cache.open()
    coalescer = Coalescer(
        OneAnswer(answer),  # type: ignore[arg-type]
        cache,
        ProxyMetrics(lambda: Snapshot(0, 0, None, False)),
    )
    decision = decide("chat/completions", {"model": "m", "messages": []}, None, "all")
    flight: Flight = coalescer.start(
        UpstreamCall("chat/completions", "http://upstream.invalid/v1/x", b"{}", {}),
        decision,
        share=True,
    )
    try:
        await asyncio.wait_for(flight.wait_done(), timeout=10)
        await asyncio.wait_for(flight.task, timeout=10)
        assert flight.state is FlightState(state)
        assert (flight.failure.status if flight.failure else None) == status
        assert (decision.key in cache) == (state == "complete"), "stored iff complete"
        if state == "complete":
            assert flight.stream_tail() == b""
        assert len(coalescer) == 0 and coalescer.get(decision.key) is None
    finally:
        await cache.close()
