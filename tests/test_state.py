"""The state file: atomic 0600 writes, the watchdog lock, corrupt files moved aside."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from podmgr.errors import LockHeldError
from podmgr.state import HISTORY_LIMIT, PodRecord, Session, State, StateStore


def sample_state() -> State:
    state = State(session=Session(started_at=100.0, deadline=3700.0))
    state.pod = PodRecord(
        id="pod123", name="podmgr-x", gpu_type_id="A", created_at=101.0, vllm_api_key="k-fake"
    )
    return state


def test_round_trip_and_mode(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "sub" / "state.json")
    store.save(sample_state(), now=5.0)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    loaded = store.load()
    assert loaded.pod is not None and loaded.pod.id == "pod123"
    assert loaded.updated_at == 5.0
    assert list(store.path.parent.glob(".state.json.*")) == []


def test_missing_file_is_empty_state(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    assert store.load() == State()
    assert store.peek() is None


@pytest.mark.parametrize("garbage", [b"", b"{", b"[]", b'{"schema_version": 99}', b"\xff\xfe"])
def test_corrupt_file_is_moved_aside_not_overwritten(tmp_path: Path, garbage: bytes) -> None:
    store = StateStore(tmp_path / "state.json")
    store.path.write_bytes(garbage)
    assert store.peek() is None
    assert store.path.exists(), "peek must not move anything"
    state = store.load(now=0.0)
    assert state.pod is None
    assert state.history[-1].action == "state_recovered"
    aside = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage
    assert not store.path.exists()
    store.path.write_bytes(garbage)
    store.load(now=0.0)
    assert len(list(tmp_path.glob("state.json.corrupt-*"))) == 2


def test_lock_is_exclusive(tmp_path: Path) -> None:
    first = StateStore(tmp_path / "state.json")
    second = StateStore(tmp_path / "state.json")
    with first.locked():
        with pytest.raises(LockHeldError) as caught, second.locked():
            pass
        assert caught.value.exit_code == 0
    with second.locked():
        pass


def test_history_is_bounded() -> None:
    state = State()
    for index in range(HISTORY_LIMIT + 10):
        state.record(float(index), "noop")
    assert len(state.history) == HISTORY_LIMIT
    assert state.history[0].at == 10.0


def test_key_is_not_in_repr() -> None:
    assert "k-fake" not in repr(sample_state())
