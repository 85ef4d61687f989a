"""`podmgr cost --by pod|model` and `podmgr history` on a history with two pods (issue 23);
an old line without `pod_name` reads as the pod "pod"."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from podmgr.cli import main
from podmgr.costs import build_report
from podmgr.history import (
    PodSummary,
    SessionRecord,
    append_record,
    read_history,
    session_record,
)
from podmgr.proxy.observe.history_page import render_history_text
from podmgr.state import PodRecord, Session, State

CHAT, FIM = "Qwen/Qwen2.5-Coder-32B-Instruct", "Qwen/Qwen2.5-Coder-1.5B"
START = float(int(time.time()) - 7200)


def write_config(tmp_path: Path) -> Path:
    pods = [
        {"name": "chat", "model": CHAT, "gpu_type_id": ["NVIDIA RTX A6000"]},
        {"name": "fim", "model": FIM, "gpu_type_id": ["NVIDIA GeForce RTX 4090"]},
    ]
    config = tmp_path / "pod_config.json"
    config.write_text(json.dumps({"state_file": str(tmp_path / "state.json"), "pods": pods}))
    return config


def pod(pod_id: str, name: str, gpu: str, cost: float) -> PodSummary:
    return PodSummary(id=pod_id, gpu_type_id=gpu, created_at=START, cost_usd=cost, pod_name=name)


def write_history(tmp_path: Path) -> None:
    """An old one-pod session (no pod_name in its line), then two sessions of two pods; fim
    was recreated once in the second (two pods of one name)."""
    path = tmp_path / "history.jsonl"
    old = SessionRecord(started_at=START, ended_at=START + 600, session_id="old000000000",
                        pods=[pod("o1", "pod", "GPU A", 0.1)], cost_usd=0.1)  # fmt: skip
    line = old.model_dump()
    for summary in line["pods"]:
        del summary["pod_name"]  # as written before issue 23
    with path.open("a") as file:
        file.write(json.dumps(line) + "\n")
    sessions = (
        ("s1aaaaaaaaaa", [pod("c1", "chat", "A6000", 0.4), pod("f1", "fim", "4090", 0.1)]),
        ("s2bbbbbbbbbb", [pod("c2", "chat", "A6000", 0.8), pod("f2", "fim", "4090", 0.05),
                          pod("f3", "fim", "4090", 0.15)]),
    )  # fmt: skip
    for number, (session_id, pods) in enumerate(sessions, start=1):
        record = SessionRecord(
            started_at=START + 1000 * number, ended_at=START + 1000 * number + 900,
            session_id=session_id, pods=pods, cost_usd=sum(p.cost_usd or 0 for p in pods),
        )  # fmt: skip
        append_record(path, record)


def cost(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["cost", "--config", str(config), "--no-runpod", *args]) == 0
    return capsys.readouterr().out


def test_cost_by_pod_and_by_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    write_history(tmp_path)
    by_pod = json.loads(cost(config, capsys, "--by", "pod", "--json"))
    groups = {group["key"]: group for group in by_pod["groups"]}
    assert {key: group["podmgr_usd"] for key, group in groups.items()} == {
        "chat": 1.2, "fim": 0.3, "pod": 0.1}  # fmt: skip
    assert groups["fim"]["pods"] == ["f1", "f2", "f3"] and groups["fim"]["sessions"] == 2
    assert by_pod["total_usd"] == pytest.approx(1.6)
    by_model = json.loads(cost(config, capsys, "--by", "model", "--json"))
    groups = {group["key"]: group for group in by_model["groups"]}
    # the old session's pod "pod" names no configured pod any more: its model is unknown
    assert {key: group["podmgr_usd"] for key, group in groups.items()} == {
        CHAT: 1.2, FIM: 0.3, "-": 0.1}  # fmt: skip
    assert groups[FIM]["pod_names"] == ["fim"] and groups["-"]["pod_names"] == ["pod"]
    text = cost(config, capsys, "--by", "model")
    line = next(line for line in text.splitlines() if line.startswith(CHAT))
    assert "$1.2000" in line and line.endswith("  2  chat"), text
    assert any(line.startswith("total") and "$1.6000" in line for line in text.splitlines())


def test_the_sessions_view_shows_pods_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    write_history(tmp_path)
    out = cost(config, capsys, "--by", "session")
    row = next(line for line in out.splitlines() if "s2bbbbbbbbbb" in line)
    assert row.endswith("chat, fim"), out
    assert main(["history", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    second = next(line for line in lines if "s2bbbbbbbbbb" in line)
    assert second.endswith("chat A6000, fim 4090, fim 4090"), lines
    old = next(line for line in lines if "old000000000" in line)
    assert old.endswith("GPU A"), lines  # a one-pod session prints as before


def test_an_old_line_reads_as_the_pod_named_pod(tmp_path: Path) -> None:
    write_history(tmp_path)
    records, problems = read_history(tmp_path / "history.jsonl")
    assert problems == [] and records[0].pods[0].pod_name == "pod"
    one_pod = build_report(records[:1], "model", models={"pod": "m"})
    assert [(group.key, group.podmgr_usd) for group in one_pod.groups] == [("m", 0.1)]


def test_a_two_pod_session_record_names_its_pods_and_sums_their_seconds() -> None:
    session = Session(started_at=START, deadline=START + 7200, cost_usd=0.0)
    chat = PodRecord(id="c1", name="p-c1", gpu_type_id="A6000", cost_per_hr=2.0,
                     created_at=START, vllm_api_key="k-fake")  # fmt: skip
    fim = PodRecord(id="f1", name="p-f1", gpu_type_id="4090", cost_per_hr=0.5,
                    created_at=START, vllm_api_key="k-fake")  # fmt: skip
    session.book_pod(chat, 1.0, "chat")  # 30 min at $2/h
    session.book_pod(fim, 0.5, "fim")  # 60 min at $0.5/h
    record = session_record(State(session=session, pods={"chat": chat, "fim": fim}), START + 3600)
    assert record is not None and record.cost_usd == 1.5
    assert [(pod.pod_name, pod.cost_usd) for pod in record.pods] == [("chat", 1.0), ("fim", 0.5)]
    assert record.billed_seconds == pytest.approx(1800 + 3600)  # each pod at its own price


def test_the_dashboards_history_page_names_the_pods(tmp_path: Path) -> None:
    write_history(tmp_path)
    records, _ = read_history(tmp_path / "history.jsonl")
    lines = render_history_text(records, []).splitlines()
    second = next(line for line in lines if "s2bbbbbbbbbb" in line)
    assert "  chat A6000, fim 4090  " in second, lines  # each pod's GPU once, after its name
    old = next(line for line in lines if "old000000000" in line)
    assert "  GPU A  " in old, lines
