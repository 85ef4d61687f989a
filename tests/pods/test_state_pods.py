"""The state keyed by pod name (issue 23), and a schema-1 file read as the pod "pod"."""

from __future__ import annotations

import json
from pathlib import Path

from podmgr.state import (
    ONE_POD,
    SCHEMA_VERSION,
    PendingCreate,
    PodRecord,
    Session,
    State,
    StateStore,
)


def _record(pod_id: str) -> PodRecord:
    return PodRecord(
        id=pod_id, name=f"podmgr-{pod_id}", gpu_type_id="NVIDIA A40", created_at=1.0,
        vllm_api_key="k" * 20,
    )  # fmt: skip


def test_a_schema_1_file_reads_as_the_records_of_pod(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    old = {
        "schema_version": 1,
        "pod": json.loads(_record("abc").model_dump_json()),
        "pending_create": {"name": "podmgr-new", "gpu_type_id": "NVIDIA A40", "at": 5.0},
        "last_request_at": 7.0,
    }
    store.path.write_text(json.dumps(old))
    state = store.load(now=10.0)
    assert state.schema_version == SCHEMA_VERSION == 2
    assert list(state.pods) == [ONE_POD] and state.pods[ONE_POD].id == "abc"
    assert state.pending_creates[ONE_POD].name == "podmgr-new"
    assert state.last_request_at == 7.0
    assert not any(entry.action == "state_recovered" for entry in state.history)
    store.save(state, now=11.0)
    saved = json.loads(store.path.read_text())
    assert saved["schema_version"] == 2 and "pod" not in saved and "pending_create" not in saved
    assert store.load().pods[ONE_POD].id == "abc"


def test_an_unknown_schema_is_still_moved_aside(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.path.write_text(json.dumps({"schema_version": 3}))
    state = store.load(now=10.0)
    assert state.pods == {} and state.history[-1].action == "state_recovered"


def test_pods_by_name_and_the_one_pod_view() -> None:
    chat, fim = _record("chat1"), _record("fim1")
    state = State(pods={"chat": chat, "fim": fim})
    assert state.pod is None  # the one-pod view is the pod named "pod" only
    state.pod = _record("one")
    assert set(state.pods) == {"chat", "fim", ONE_POD}
    state.pod.phase = "ready"  # the view is the record itself
    assert state.pods[ONE_POD].phase == "ready"
    state.pod = None
    assert set(state.pods) == {"chat", "fim"}


def test_model_copy_updates_the_one_pod_view_and_keeps_the_others() -> None:
    pending = PendingCreate(name="podmgr-x", gpu_type_id="g", at=1.0)
    state = State(pods={"chat": _record("chat1")}, pending_create=pending)
    copy = state.model_copy(update={"pod": _record("one"), "pending_create": None})
    assert set(copy.pods) == {"chat", ONE_POD} and copy.pending_creates == {}
    assert state.pending_create == pending and ONE_POD not in state.pods


def test_the_session_books_each_pod_under_its_name() -> None:
    session = Session(started_at=0.0, deadline=100.0)
    session.book_pod(_record("chat1"), 1.5, pod_name="chat")
    session.book_pod(_record("fim1"), 0.25, pod_name="fim")
    session.book_pod(_record("chat1"), 0.5, pod_name="chat")
    assert session.cost_usd == 2.25  # the budget rule reads the sum over every pod
    assert [(pod.pod_name, pod.cost_usd) for pod in session.pods] == [("chat", 2.0), ("fim", 0.25)]


def test_counting_for_keeps_each_pods_counters_and_the_totals() -> None:
    from podmgr.watchdog.focus import counting_for, session_for_pod

    session = Session(started_at=0.0, deadline=100.0, restarts=1, last_restart_at=5.0)
    with counting_for(session, "fim"):
        assert session.restarts == 0  # fim's own
        session.restarts += 1
        session.last_restart_at = 9.0
    with counting_for(session, "chat"):
        session.preemptions = 1
    assert session.restarts == 2 and session.last_restart_at == 9.0 and session.preemptions == 1
    assert session.counters["fim"].restarts == 1 and session.counters["chat"].restarts == 0
    assert session_for_pod(session, "fim").restarts == 1
    assert session_for_pod(session, "chat").preemptions == 1
