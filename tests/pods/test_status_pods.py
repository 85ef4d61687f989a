"""`podmgr status` with two pods (issue 23): a block per pod by name with its phase, cost
and guard share, the session's totals, `--json` `pods` by name; a one-pod report keeps
exactly its keys. The simulator test runs the real CLI on a two-pod session."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wdkit import Harness

from podmgr.cli.status import SHARE_RULE, format_status, status_report
from podmgr.config import Config, build_config
from podmgr.state import PodRecord, Session, SessionPod, State, StateStore
from podmgr.watchdog.actions import EndSession

NOW = 1_800_000_000.0
CHAT, FIM = "Qwen/Qwen2.5-Coder-32B-Instruct", "Qwen/Qwen2.5-Coder-1.5B"
ONE_POD_KEYS = {"state_file", "state_readable", "session", "pod", "guard", "proxy", "history",
                "logs"}  # fmt: skip


def set_config(tmp_path: Path, budget: float | None = 1.0) -> Config:
    pods = [
        {"name": "chat", "model": CHAT, "gpu_type_id": ["NVIDIA RTX A6000"]},
        {"name": "fim", "model": FIM, "gpu_type_id": ["NVIDIA GeForce RTX 4090"],
         "idle_timeout_seconds": 120},
    ]  # fmt: skip
    return build_config(
        {"watchdog": {"state_file": "state.json"}, "proxy": {"port": 1}, "pods": pods,
         "limits": {"max_cost_usd": budget, "idle_timeout_seconds": 900}},
        base_dir=tmp_path, environ={},
    )  # fmt: skip


def record(pod_id: str, price: float, share: str) -> PodRecord:
    return PodRecord(id=pod_id, name=f"podmgr-{pod_id}", gpu_type_id="G", cost_per_hr=price,
                     created_at=NOW - 600, billed_until=NOW - 36, vllm_api_key="sk-fake",
                     phase="ready", guard={"max_cost_usd": share, "spent_usd": "0"})  # fmt: skip


def set_state() -> State:
    """chat runs with its share; fim idled out after costing $0.002."""
    session = Session(started_at=NOW - 900, deadline=NOW + 3000, cost_usd=0.012,
                      ended_pods={"fim": "idle"})  # fmt: skip
    session.pods = [
        SessionPod(id="c1", gpu_type_id="G", created_at=NOW - 600, cost_usd=0.01, pod_name="chat"),
        SessionPod(id="f1", gpu_type_id="G", created_at=NOW - 800, cost_usd=0.002, pod_name="fim"),
    ]
    return State(session=session, pods={"chat": record("c1", 1.0, "0.6")})


def test_each_pod_by_name_with_its_phase_cost_and_guard_share(tmp_path: Path) -> None:
    config = set_config(tmp_path)
    StateStore(config.state_path).save(set_state(), now=NOW)
    report = json.loads(json.dumps(status_report(config, now=NOW)))
    chat, fim = report["pods"]["chat"], report["pods"]["fim"]
    assert chat["model"] == CHAT and chat["phase"] == "ready" and chat["id"] == "c1"
    assert chat["cost_usd"] == pytest.approx(0.01 + 36 / 3600 * 1.0)  # booked + accrued
    assert chat["guard_share_usd"] == 0.6 and chat["guard"]["max_cost_usd"] == 0.6
    assert fim["phase"] == "down: idle" and fim["down"] == "idle" and fim["id"] is None
    assert set(fim) == set(chat)  # a pod without a record has every key, as null
    assert fim["cost_usd"] == pytest.approx(0.002) and fim["guard_share_usd"] is None
    assert fim["idle_timeout_seconds"] == 120 and chat["idle_timeout_seconds"] == 900
    totals = report["totals"]
    assert totals["cost_usd"] == pytest.approx(chat["cost_usd"] + fim["cost_usd"])
    assert totals["cost_usd"] == report["session"]["cost_usd"]  # one figure, every pod in it
    assert totals["max_cost_usd"] == 1.0 and totals["guard_shares_usd"] == 0.6
    assert totals["deadline"] == NOW + 3000 and totals["guard_share_rule"] == SHARE_RULE
    assert report["pod"]["id"] == "c1"  # `pod` stands for the first configured pod
    lines = format_status(report, config)
    text = "\n".join(lines)
    assert "pod chat: ready, " + CHAT in lines and "pod fim: down: idle, " + FIM in lines, text
    assert "guard share $0.6000" in text and "cost so far $0.0020" in text, text
    total = next(line for line in lines if line.startswith("total:"))
    assert "2 pods" in total and "of budget $1.0000" in total and SHARE_RULE in total, total


def test_a_pod_not_created_yet_and_a_session_not_started(tmp_path: Path) -> None:
    config = set_config(tmp_path, budget=None)
    state = set_state()
    state.session = state.session.model_copy(update={"ended_pods": {}}) if state.session else None
    StateStore(config.state_path).save(state, now=NOW)
    report = status_report(config, now=NOW)
    assert report["pods"]["fim"]["phase"] == "not created yet"
    assert report["totals"]["max_cost_usd"] is None
    assert any("(no budget)" in line for line in format_status(report, config))
    StateStore(config.state_path).save(State(), now=NOW)
    empty = status_report(config, now=NOW)
    assert {view["phase"] for view in empty["pods"].values()} == {"none"}


def test_a_one_pod_report_keeps_exactly_its_keys(tmp_path: Path) -> None:
    config = build_config({"watchdog": {"state_file": "state.json"}, "proxy": {"port": 1}},
                          base_dir=tmp_path, environ={})  # fmt: skip
    StateStore(config.state_path).save(State(pod=record("p1", 0.5, "5")), now=NOW)
    report = status_report(config, now=NOW)
    assert set(report) == ONE_POD_KEYS
    assert not any(line.startswith(("pod pod:", "total:")) for line in format_status(report))


# -- the real CLI on a two-pod simulator session -------------------------------------------


def two_pods(wd: Harness) -> None:
    shared = {key: wd.values.pop(key) for key in ("endpoint_url_template", "pod_name_prefix")}
    wd.values.pop("gpu_type_id")
    wd.values["pods"] = [
        {"name": "chat", "model": CHAT, "gpu_type_id": ["NVIDIA RTX A6000"], **shared},
        {"name": "fim", "model": FIM, "gpu_type_id": ["NVIDIA GeForce RTX 4090"], **shared},
    ]
    wd.configure(max_cost_usd=0.5)


def cli(wd: Harness, tmp_path: Path, *args: str) -> str:
    (tmp_path / "home").mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "podmgr", "status", *args, "--config", str(wd.config_path)],
        env=wd.sim.env(tmp_path / "home"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_status_shows_both_pods_and_their_guard_shares(wd: Harness, tmp_path: Path) -> None:
    two_pods(wd)
    wd.run("start")
    state = wd.state()
    assert set(state.pods) == {"chat", "fim"}
    report = json.loads(cli(wd, tmp_path, "--json", "--live"))
    pods = report["pods"]
    assert set(pods) == {"chat", "fim"}
    for name, view in pods.items():
        assert view["id"] == state.pods[name].id and view["live"]["exists"] is True
    shares = {name: view["guard_share_usd"] for name, view in pods.items()}
    assert all(isinstance(share, float) and share > 0 for share in shares.values()), shares
    assert sum(shares.values()) <= 0.5 and report["totals"]["guard_shares_usd"] <= 0.5
    price = {name: view["live"]["cost_per_hr"] for name, view in pods.items()}  # RunPod's
    cheap, dear = sorted(pods, key=price.__getitem__)
    assert price[cheap] < price[dear]
    assert shares[cheap] < shares[dear]  # price-weighted (watchdog/focus.py guard_budget)
    text = cli(wd, tmp_path)
    for name, view in pods.items():
        assert f"pod {name}: {view['phase']}, {view['model']}" in text, text
        assert f"{view['id']} (" in text and f"guard share ${shares[name]:.4f}" in text, text
    assert "total:   2 pods" in text and "of budget $0.5000" in text, text
    wd.run("shutdown")
    assert wd.alive() == []


def test_status_after_the_budget_ended_both_pods(wd: Harness, tmp_path: Path) -> None:
    # ~$0.00035 a second for both pods together: $0.0012 lasts a few seconds (as
    # test_two_pods_sim's budget test); the shares are read while both pods run.
    two_pods(wd)
    wd.configure(max_cost_usd=0.0012)
    wd.run("start")
    running = json.loads(cli(wd, tmp_path, "--json"))
    shares = [view["guard_share_usd"] for view in running["pods"].values()]
    assert len(shares) == 2 and all(share > 0 for share in shares) and sum(shares) <= 0.0012
    ended = None
    for _ in range(100):
        time.sleep(0.2)
        ended = next((a for a in wd.run().actions if isinstance(a, EndSession)), None)
        if ended:
            break
    assert ended is not None and ended.reason == "budget"
    report = json.loads(cli(wd, tmp_path, "--json"))
    assert report["session"]["end_reason"] == "budget"
    pods = report["pods"]
    assert {name: view["phase"] for name, view in pods.items()} == {"chat": "none", "fim": "none"}
    assert all(view["cost_usd"] > 0 for view in pods.values()), pods  # each pod's own cost
    total = sum(view["cost_usd"] for view in pods.values())
    # each figure is rounded to 6 decimals (session_cost.py): three roundings apart at most
    assert report["totals"]["cost_usd"] == pytest.approx(total, abs=2e-6)
    assert report["totals"]["guard_shares_usd"] == 0  # no pod runs, none holds a share
    text = cli(wd, tmp_path)
    assert "pod chat: none" in text and "pod fim: none" in text and "of budget $0.0012" in text
