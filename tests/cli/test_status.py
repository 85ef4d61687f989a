"""`podmgr status`: one cost figure with the proxy's, numbers as numbers, the logs named,
and `--live` saying what it found (issue 22's "Smaller" list)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from podmgr.cli.status import format_status, status_report
from podmgr.config import Config, build_config
from podmgr.proxy.observe.health import _session_view
from podmgr.state import PodRecord, Session, State, StateStore

NOW = 1_800_000_000.0
GUARD = {"deadline": "1800003600.5", "max_cost_usd": "5", "idle_seconds": "900",
         "interval_seconds": "30", "spent_usd": "0.25",
         "rules": '[{"reason": "budget", "limit": 5.0}]', "note": "a text"}  # fmt: skip


def config_in(tmp_path: Path, **extra: object) -> Config:
    return build_config(
        {"watchdog": {"state_file": "state.json"}, "proxy": {"port": 1}, **extra},
        base_dir=tmp_path, environ={},
    )  # fmt: skip


def a_state() -> State:
    pod = PodRecord(id="pod1", name="podmgr-x", gpu_type_id="G", cost_per_hr=0.69,
                    created_at=NOW - 600, billed_until=NOW - 60, vllm_api_key="sk-fake",
                    phase="ready", guard=dict(GUARD))  # fmt: skip
    session = Session(started_at=NOW - 600, deadline=NOW + 3000, cost_usd=0.0031)
    return State(session=session, pod=pod)


def test_status_shows_the_cost_health_shows_at_the_same_moment(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    state = a_state()
    StateStore(config.state_path).save(state, now=NOW)
    report = status_report(config, now=NOW)
    expected = round(0.0031 + 60 / 3600 * 0.69, 6)  # booked by the last pass + accrued since
    assert report["session"]["cost_usd"] == pytest.approx(expected, abs=1e-9)
    assert (
        _session_view(SimpleNamespace(state=state), NOW)["cost_usd"]
        == report["session"]["cost_usd"]
    )
    lines = format_status(report, config)
    assert any(f"cost so far ${expected:.4f}" in line for line in lines), lines


def test_the_guards_limits_are_numbers_in_json(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    StateStore(config.state_path).save(a_state(), now=NOW)
    report = json.loads(json.dumps(status_report(config, now=NOW)))
    guard = report["pod"]["guard"]
    assert guard["max_cost_usd"] == 5 and guard["idle_seconds"] == 900
    assert guard["deadline"] == 1800003600.5 and guard["spent_usd"] == 0.25
    assert guard["rules"] == [{"reason": "budget", "limit": 5.0}] and guard["note"] == "a text"
    lines = format_status(report, config)
    assert any(
        "budget $5.00 ($0.25 spent before)" in line and "idle 900s" in line for line in lines
    )


def test_status_names_the_proxy_log_and_the_wake_log(tmp_path: Path) -> None:
    config = config_in(tmp_path, limits={"wake_on_request": True})
    report = status_report(config, now=NOW)
    assert report["logs"] == {
        "proxy": str(tmp_path / "proxy.log"),
        "wake": str(tmp_path / "wake.log"),
    }
    [line] = [line for line in format_status(report, config) if line.startswith("logs:")]
    assert str(tmp_path / "proxy.log") in line and " logs`" in line
    given = str(tmp_path / "my config.json")
    [line] = [line for line in format_status(report, config, given) if line.startswith("logs:")]
    assert f" logs --config '{given}'`" in line  # a hint that works when pasted


def test_live_without_a_pod_says_why_it_asked_nothing(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    report = status_report(config, now=NOW)
    report["live"] = None
    [line] = [line for line in format_status(report, config) if line.startswith("runpod:")]
    assert "None" not in line and "the state names no pod" in line
