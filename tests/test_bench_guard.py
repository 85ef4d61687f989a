"""The bench guard's comparison (bench/guard.py): which ratios regress against the stored
figures, and what gets stored. Pure logic on given numbers: nothing here is timed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench.guard import TOLERANCE, check, machine_class, record, report, stored_ratios
from bench.load import LoadResult


def test_a_ratio_more_than_ten_percent_below_its_figure_regresses() -> None:
    stored = {"cache_hit": 0.80, "pass_through": 0.43, "edge_safe": 0.20}
    measured = {"cache_hit": 0.71, "pass_through": 0.39, "edge_safe": 0.25, "new_one": 0.5}
    checks = {item.name: item for item in check(stored, measured)}
    assert checks["cache_hit"].regressed  # -11.25 %
    assert not checks["pass_through"].regressed  # -9.3 %: inside the tolerance
    assert not checks["edge_safe"].regressed  # faster is never a regression
    assert checks["new_one"].stored is None and not checks["new_one"].regressed
    assert checks["cache_hit"].change == pytest.approx(0.71 / 0.80 - 1)


def test_the_tolerance_is_ten_percent_of_the_stored_figure() -> None:
    assert TOLERANCE == 0.10
    just_inside = check({"r": 1.0}, {"r": 0.9001})[0]
    just_outside = check({"r": 1.0}, {"r": 0.8999})[0]
    assert not just_inside.regressed
    assert just_outside.regressed


def test_report_fails_loudly_on_a_regression_and_passes_otherwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "baselines.json"
    machine = machine_class()
    path.write_text(json.dumps({machine: {"ratios": {"cache_hit": 0.8, "pass_through": 0.45}}}))
    assert report({"cache_hit": 0.60, "pass_through": 0.45}, recording=False, path=path) == 1
    out = capsys.readouterr().out
    assert "BENCH REGRESSION" in out and "-25.0%" in out
    assert report({"cache_hit": 0.78, "pass_through": 0.44}, recording=False, path=path) == 0
    assert "BENCH REGRESSION" not in capsys.readouterr().out


def test_record_stores_this_machine_class_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps({"other-class": {"ratios": {"cache_hit": 0.5}}}))
    assert report({"cache_hit": 0.8123}, recording=True, path=path) == 0
    assert stored_ratios(machine_class(), path) == {"cache_hit": 0.812}
    assert stored_ratios("other-class", path) == {"cache_hit": 0.5}
    assert stored_ratios("unknown-class", path) == {}


def test_without_a_stored_figure_the_run_passes(tmp_path: Path) -> None:
    assert report({"cache_hit": 0.1}, recording=False, path=tmp_path / "none.json") == 0
    record("x", {"cache_hit": 0.1}, tmp_path / "made.json")
    assert json.loads((tmp_path / "made.json").read_text())["x"]["ratios"] == {"cache_hit": 0.1}


def test_a_guarded_ratio_is_the_median_of_its_rounds_ratios() -> None:
    def rounds(*rps: float) -> list[LoadResult]:
        return [LoadResult(value, 1.0, 0) for value in rps]

    # Round 2 ran beside a burst of other work: its ratio (0.1) moves the mean, not the median.
    proxy = rounds(440.0, 100.0, 450.0, 430.0)
    direct = rounds(1000.0, 1000.0, 1000.0, 1000.0)
    assert bench_main._ratio(proxy, direct) == pytest.approx(0.435)  # (0.43 + 0.44) / 2
    # Each round's figures are paired with each other, not the medians of the columns.
    assert bench_main._ratio(rounds(2.0, 6.0), rounds(1.0, 6.0)) == pytest.approx(1.5)


def test_rounds_alternate_their_order_so_a_drift_falls_on_every_url_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []

    def fake_load(url: str, connections: int, seconds: float, bodies: object) -> LoadResult:
        order.append(url)
        return LoadResult(float(len(order)), 1.0, 0)

    monkeypatch.setattr(bench_main, "run_load", fake_load)  # a stand-in for wrk: no timing
    monkeypatch.setattr(bench_main, "ROUNDS", 4)
    measured = bench_main._interleaved(["a", "b", "c"], None)
    assert order == ["a", "b", "c", "c", "b", "a", "a", "b", "c", "c", "b", "a"]
    assert [[result.rps for result in rounds] for rounds in measured] == [
        [1.0, 6.0, 7.0, 12.0],
        [2.0, 5.0, 8.0, 11.0],
        [3.0, 4.0, 9.0, 10.0],
    ]
