"""podmgr/costs.py: grouping sessions by UTC day, GPU and session, and RunPod beside it."""

from __future__ import annotations

import datetime as dt

from podmgr.costs import build_report, pod_costs, runpod_by_pod
from podmgr.history import PodSummary, SessionRecord


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def session(start: str, hours: float, *pods: tuple[str, str, float | None]) -> SessionRecord:
    begin = at(start)
    summaries = [
        PodSummary(id=pid, gpu_type_id=gpu, created_at=begin, cost_per_hr=1.0, cost_usd=usd)
        for pid, gpu, usd in pods
    ]
    total = sum(usd or 0.0 for _, _, usd in pods)
    return SessionRecord(
        started_at=begin, ended_at=begin + hours * 3600, pods=summaries, cost_usd=total or 0.5
    )


WEEK = [
    session("2026-11-23T09:00:00", 3, ("a", "RTX 4090", 2.07)),
    session("2026-11-23T23:30:00", 1, ("b", "RTX 4090", 0.69)),  # crosses midnight UTC
    session("2026-11-25T13:00:00", 4, ("c", "A6000", 1.0), ("d", "RTX 4090", 1.5)),
]


def test_by_day_puts_a_session_on_the_utc_day_it_started() -> None:
    report = build_report(WEEK, "day")
    assert [(g.key, round(g.podmgr_usd, 2), len(g.sessions)) for g in report.groups] == [
        ("2026-11-23", 2.76, 2),
        ("2026-11-25", 2.5, 1),
    ]
    assert round(report.total_usd, 2) == 5.26 and report.runpod_total_usd is None


def test_by_gpu_splits_a_session_by_its_pods() -> None:
    report = build_report(WEEK, "gpu")
    assert {g.key: round(g.podmgr_usd, 2) for g in report.groups} == {
        "A6000": 1.0,
        "RTX 4090": 4.26,
    }
    assert {g.key: len(g.sessions) for g in report.groups} == {"A6000": 1, "RTX 4090": 3}


def test_runpod_amounts_go_beside_the_group_of_their_pod_and_strangers_apart() -> None:
    billed = runpod_by_pod(
        [("a", 1.0), ("a", 1.06), ("b", 0.69), ("c", 1.0), ("d", 1.49), ("x", 3.0), (None, 9.0)]
    )
    report = build_report(WEEK, "session", runpod=billed, known_pods={"old"})
    assert [round(g.runpod_usd or 0, 2) for g in report.groups] == [2.06, 0.69, 2.49]
    assert report.runpod_other_pods == {"x": 3.0}
    assert round(report.runpod_total_usd or 0, 2) == 5.24
    summary = report.as_json(at("2026-11-01T00:00:00"))
    assert summary["difference_usd"] == round(5.26 - 5.24, 6)
    assert summary["runpod_other_usd"] == 3.0 and summary["since"] == "2026-11-01T00:00:00Z"


def test_a_pod_runpod_never_billed_counts_zero_beside_it() -> None:
    report = build_report(WEEK[:1], "day", runpod={})
    assert report.groups[0].runpod_usd == 0.0 and report.runpod_total_usd == 0.0


def test_records_without_per_pod_costs_put_the_session_cost_on_the_last_pod() -> None:
    old = session("2026-11-23T09:00:00", 1, ("a", "A6000", None), ("b", "RTX 4090", None))
    assert [(pod.id, cost) for pod, cost in pod_costs(old)] == [("a", 0.0), ("b", 0.5)]
    empty = SessionRecord(started_at=0, ended_at=10, cost_usd=0.25)
    assert [(pod.id, cost) for pod, cost in pod_costs(empty)] == [("-", 0.25)]
    report = build_report([empty], "gpu")
    assert report.groups[0].key == "-" and report.groups[0].pods == []


def test_two_sessions_started_in_the_same_second_stay_apart() -> None:
    """A fast machine started two sessions within one second: `--by session` merged them."""
    first = session("2026-11-23T09:00:00", 1, ("a", "RTX 4090", 0.69))
    second = session("2026-11-23T09:00:00", 1, ("b", "RTX 4090", 0.69))
    first, second = (
        first.model_copy(update={"session_id": "s1"}),
        second.model_copy(update={"session_id": "s2"}),
    )
    report = build_report([first, second], "session")
    assert len(report.groups) == 2
