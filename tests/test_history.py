"""Session history (podmgr/history.py): appended 0600 lines, rotation, corrupt lines skipped."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from podmgr.cli import main
from podmgr.history import (
    PodSummary,
    SessionRecord,
    append_record,
    history_path,
    read_history,
    record_session_end,
)
from podmgr.state import PodRecord, Session, State


def ended_state(cost: float = 0.5) -> State:
    session = Session(started_at=100.0, deadline=9000.0, cost_usd=cost)
    session.ended_at, session.end_reason = 3700.0, "idle"
    pod = PodRecord(
        id="pod1", name="p", gpu_type_id="GPU A", cost_per_hr=0.5, created_at=100.0,
        ready_at=160.0, vllm_api_key="k-fake",
    )  # fmt: skip
    return State(session=session, pod=pod)


def test_session_end_is_appended_with_times_and_cost(tmp_path: Path) -> None:
    state_path = tmp_path / "state.json"
    record_session_end(state_path, ended_state(), now=3700.0)
    path = history_path(state_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    records, problems = read_history(path)
    assert problems == []
    (record,) = records
    assert record.end_reason == "idle" and record.pods[0].gpu_type_id == "GPU A"
    assert record.startup_seconds == 60.0 and record.serving_seconds == 3540.0
    assert record.billed_seconds == 3600.0 and record.cost_usd == 0.5


def test_corrupt_line_is_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    append_record(path, SessionRecord(started_at=1.0, ended_at=2.0, cost_usd=1.0))
    with path.open("a") as handle:
        handle.write("{not json\n")
    append_record(path, SessionRecord(started_at=3.0, ended_at=4.0, cost_usd=2.0))
    records, problems = read_history(path)
    assert [r.cost_usd for r in records] == [1.0, 2.0]
    assert len(problems) == 1 and problems[0].startswith("history.jsonl:2:")


def test_rotation_bounds_the_files_and_keeps_order(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    for index in range(20):
        record = SessionRecord(started_at=index, ended_at=index + 0.5)
        append_record(path, record, max_bytes=600, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "history.jsonl", "history.jsonl.1", "history.jsonl.2",
    ]  # fmt: skip
    assert all(p.stat().st_size <= 600 for p in tmp_path.iterdir())
    records, _ = read_history(path, keep=2)
    starts = [r.started_at for r in records]
    assert starts == sorted(starts) and starts[-1] == 19
    since, _ = read_history(path, since=18.0, keep=2)
    assert [r.started_at for r in since] == [18.0, 19.0]


def test_history_command_lists_sessions_and_reports_bad_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pod_config.json"
    config.write_text(json.dumps({"state_file": str(tmp_path / "state.json")}))
    now = time.time()
    path = tmp_path / "history.jsonl"
    append_record(path, SessionRecord(started_at=now - 100, ended_at=now - 10, cost_usd=0.25))
    with path.open("a") as handle:
        handle.write("garbage\n")
    assert main(["history", "--config", str(config), "--json"]) == 0
    out, err = capsys.readouterr()
    answer = json.loads(out)
    assert answer["total_usd"] == 0.25 and len(answer["sessions"]) == 1
    assert "history.jsonl:2: skipped" in err
    assert main(["history", "--config", str(config), "--since", "5s"]) == 0
    assert "0 sessions" in capsys.readouterr().out
    assert main(["history", "--config", str(config), "--since", "week"]) == 2


def test_cost_keeps_two_sessions_started_in_the_same_second_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pod_config.json"
    config.write_text(json.dumps({"state_file": str(tmp_path / "state.json")}))
    start = float(int(time.time()) - 600)  # both at this instant (a fast machine, a sim clock)
    path = tmp_path / "history.jsonl"
    for number, session_id in enumerate(("aaaaaaaaaaaa", "bbbbbbbbbbbb")):
        pod = PodSummary(id=f"pod{number}", gpu_type_id="GPU A", created_at=start, cost_usd=0.5)
        record = SessionRecord(
            started_at=start, ended_at=start + 300 + number, session_id=session_id,
            end_reason="idle", pods=[pod], cost_usd=0.5,
        )  # fmt: skip
        append_record(path, record)
    capsys.readouterr()
    for by, groups in (("session", 2), ("day", 1), ("gpu", 1)):
        assert main(["cost", "--config", str(config), "--by", by, "--no-runpod", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert len(report["groups"]) == groups, report
        assert sum(group["sessions"] for group in report["groups"]) == 2, report
    assert main(["history", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "aaaaaaaaaaaa" in out and "bbbbbbbbbbbb" in out and "idle: " in out
