"""What reached a simulated pod's URL: counters and the latest requests, for tests.

This is instrumentation, not RunPod or vLLM behaviour. It exists for the proxy's tests
(issue 9, section 4: the simulator replaced tests/proxy/fake_upstream.py, whose call
counters these are), which must prove things such as "a refused request never reached the
pod", "six coalesced clients cost one generation" and "the pod stopped generating when the
client left". Read it with `GET /_sim/pods/{id}/requests`.

- `received`: every request that reached the pod's URL, whatever became of it.
- `model_calls`: completions and embeddings the simulated vLLM accepted and answered 200.
- `cancelled`: answers abandoned because the client hung up before they ended.
- `recent`: the last `RECENT_LIMIT` requests (method, path, query, body text, outcome).
  The Authorization header is never kept: only whether it matched the pod's key.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["MODEL_PATHS", "RECENT_LIMIT", "PodTraffic", "RequestRecord", "body_text"]

RECENT_LIMIT = 200
BODY_LIMIT = 16 * 1024
# Routes on which vLLM runs the model (what a pay-per-token upstream would bill).
MODEL_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/invocations"}
)

Outcome = Literal["pending", "answered", "cancelled", "cut", "edge_timeout", "not_serving"]


@dataclass
class RequestRecord:
    """One request as the pod's URL saw it."""

    method: str
    path: str
    query: str
    authorized: bool | None  # None: the pod requires no key
    body: str = ""
    # False while the pod's own middlewares (a guard's) have not let it through to vLLM.
    admitted: bool = True
    status: int | None = None
    outcome: Outcome = "pending"


@dataclass
class PodTraffic:
    """Counters and recent requests of one pod."""

    received: int = 0
    model_calls: int = 0
    cancelled: int = 0
    recent: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=RECENT_LIMIT))

    def receive(self, method: str, path: str, query: str, authorized: bool | None) -> RequestRecord:
        record = RequestRecord(method, path, query, authorized)
        self.received += 1
        self.recent.append(record)
        return record

    def answered(self, record: RequestRecord, status: int, outcome: Outcome = "answered") -> None:
        record.status, record.outcome = status, outcome
        if outcome == "answered" and status == 200 and record.path in MODEL_PATHS:
            self.model_calls += 1

    def abandoned(self, record: RequestRecord) -> None:
        """The client left before the answer ended (vLLM then aborts the generation)."""
        record.outcome = "cancelled"
        self.cancelled += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "model_calls": self.model_calls,
            "cancelled": self.cancelled,
            "recent": [asdict(record) for record in self.recent],
        }


def body_text(body: bytes) -> str:
    """The request body as kept in a record: text, at most BODY_LIMIT bytes."""
    return body[:BODY_LIMIT].decode(errors="replace")
