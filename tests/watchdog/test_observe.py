"""observe() with a stand-in RunPod client: a failed listing, unknown statuses (issue 10)."""

from __future__ import annotations

from typing import Any

import pytest

from podmgr.errors import AuthError, TransientApiError
from podmgr.runpod.values import PodInfo
from podmgr.watchdog import observe as observe_module
from podmgr.watchdog.observe import observe
from podmgr.watchdog.observed import ProxyView

from .helpers import CID, config, live, record, session, state


class StandInClient:
    """list_pods fails with `listing` (if set); get_pod answers from `pods` or fails."""

    def __init__(
        self, pods: list[PodInfo], listing: Exception | None = None, by_id: Exception | None = None
    ) -> None:
        self.pods, self.listing, self.by_id = pods, listing, by_id
        self.calls: list[str] = []

    def list_pods(self) -> list[PodInfo]:
        self.calls.append("list_pods")
        if self.listing is not None:
            raise self.listing
        return self.pods

    def get_pod(self, pod_id: str) -> PodInfo | None:
        self.calls.append(f"get_pod {pod_id}")
        if self.by_id is not None:
            raise self.by_id
        return next((p for p in self.pods if p.id == pod_id), None)


class NoProxy:
    def view(self, _pid: int | None) -> ProxyView:
        return ProxyView()


class NoSleep:
    def now(self) -> float:
        return 0.0

    def sleep(self, _seconds: float) -> None:
        pass


def look(client: StandInClient, pod_phase: str = "starting") -> Any:
    return observe(
        config(),
        state(session(), record(phase=pod_phase)),
        client=client,  # type: ignore[arg-type]
        supervisor=NoProxy(),  # type: ignore[arg-type]
        cid=CID,
        probe=lambda _url: (200, "health 200"),
        clock=NoSleep(),
    )


def test_failed_listing_reads_the_states_pod_by_id() -> None:
    failure = TransientApiError("Something went wrong")
    client = StandInClient([live(), live("p2")], listing=failure)
    seen = look(client)
    assert seen.listing_error is failure
    assert [p.id for p in seen.pods] == ["p1"]  # the state's pod only: strays are unseen
    assert client.calls == ["list_pods", "get_pod p1"]


def test_failed_listing_and_failed_read_raise_the_listing_error() -> None:
    failure = TransientApiError("Something went wrong")
    client = StandInClient([live()], listing=failure, by_id=AuthError("no"))
    with pytest.raises(TransientApiError) as caught:
        look(client)
    assert caught.value is failure


def test_a_rejected_key_is_raised_at_once() -> None:
    client = StandInClient([live()], listing=AuthError("RunPod rejected the API key"))
    with pytest.raises(AuthError):
        look(client)
    assert client.calls == ["list_pods"]


class Recorder:
    """Stands in for the module's structlog logger (which may be cached by earlier tests)."""

    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **values: Any) -> None:
        self.warnings.append((event, values))


def test_unknown_status_is_logged_and_not_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    odd = PodInfo(id="p1", name="podmgr-p1", status="HIBERNATING", env=live().env, has_runtime=True)
    recorder = Recorder()
    monkeypatch.setattr(observe_module, "log", recorder)
    seen = look(StandInClient([odd]), pod_phase="ready")
    assert seen.pod_healthy is None and seen.listing_error is None
    assert recorder.warnings == [("unknown_pod_status", {"pod_id": "p1", "status": "HIBERNATING"})]
