"""`podmgr cost simulate`: the real plan() replayed over a trace (issue 14's done-when)."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from podmgr.cli import main
from podmgr.config import Config
from podmgr.whatif.replay import Prices, replay
from podmgr.whatif.runpod_model import StartupPace
from podmgr.whatif.trace import TraceRequest, read_trace
from podmgr.whatif.workweek import generate

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "traces" / "workweek.csv"
CONFIGS = ROOT / "traces" / "configs"
GPU = "NVIDIA GeForce RTX 4090"
PRICES = Prices({GPU: 0.69}, {GPU: 0.41}, "test")
PACE = StartupPace(150, 40, 60)


def simulate(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["cost", "simulate", "--trace", str(TRACE), "--json", *args]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def config(**values: Any) -> Config:
    return Config.model_validate({"gpu_type_id": [GPU], **values})


def idle_gaps(requests: list[TraceRequest], longer_than: float) -> int:
    return sum(1 for a, b in itertools.pairwise(requests) if b.at - a.at > longer_than)


def test_the_shipped_trace_is_what_the_documented_generator_writes() -> None:
    out = io.StringIO()
    generate(1, out)
    assert out.getvalue() == TRACE.read_text()


def test_always_on_bills_the_trace_span(capsys: pytest.CaptureFixture[str]) -> None:
    requests = read_trace(TRACE)
    span_hours = (requests[-1].at - requests[0].at) / 3600
    result = simulate(capsys, "--config", str(CONFIGS / "workday-idle15.json"))
    [row] = result["configs"]
    assert row["always_on"]["billed_hours"] == pytest.approx(span_hours, abs=1e-3)
    assert row["always_on"]["cost_usd"] == pytest.approx(span_hours * 0.69, abs=1e-3)
    assert result["span_hours"] == pytest.approx(span_hours, abs=1e-3)
    for key in ("billed_hours", "cost_usd", "sessions", "cold_starts", "wait_p50_seconds",
                "wait_p95_seconds", "fallback_requests"):  # fmt: skip
        assert key in row
    assert 0 < row["billed_hours"] < span_hours and row["sessions"] > 5


@pytest.mark.parametrize("idle", [600, 900, 1800])
def test_an_idle_timeout_bills_at_most_busy_time_plus_timeout_and_interval_per_gap(
    idle: int,
) -> None:
    """Per session: billed <= (its last request - its start) + start-up + idle timeout +
    one watchdog interval; summed, that is busy time + (idle timeout + interval) per gap."""
    requests = read_trace(TRACE)
    cfg = config(runtime_seconds=36000, max_cost_usd=10, idle_timeout_seconds=idle)
    result = replay(cfg, requests, PRICES, pace=PACE)
    interval = cfg.watchdog.interval_seconds
    startup = PACE.pull_seconds + PACE.download_seconds + PACE.load_seconds
    busy = 0.0
    for session in result.sessions:
        assert session.ended_at is not None and session.last_request_at is not None
        busy += session.last_request_at - session.started_at
        assert session.ended_at <= session.last_request_at + startup + idle + interval
    allowance = len(result.sessions) * (startup + idle + interval)
    assert result.billed_seconds <= busy + allowance
    assert len(result.sessions) <= idle_gaps(requests, idle) + 1
    assert result.unserved_requests == 0 and result.fallback_requests == 0


@pytest.mark.parametrize(
    ("runtime", "budget", "reason"), [(3600, 0.4, "budget"), (1800, 5.0, "deadline")]
)
def test_no_pod_outlives_its_session_deadline_or_budget(
    runtime: int, budget: float, reason: str
) -> None:
    requests = read_trace(TRACE)
    cfg = config(runtime_seconds=runtime, max_cost_usd=budget, idle_timeout_seconds=3600)
    result = replay(cfg, requests, PRICES, pace=PACE)
    assert reason in {s.end_reason for s in result.sessions}
    for session in result.sessions:
        assert session.ended_at is not None
        assert session.cost_usd <= budget + 1e-9
    # The pod's guard ends its pod at the deadline itself (podmgr/guard), the watchdog at
    # its next pass: no pod bills past its session's deadline.
    deadlines = sorted(s.deadline for s in result.sessions)
    for ended, _by in sorted(result.pod_ends):
        deadline = max(d for d in deadlines if d - runtime <= ended)
        assert ended <= deadline + 1e-6


def test_without_the_guard_the_deadline_holds_to_one_watchdog_interval() -> None:
    requests = read_trace(TRACE)
    cfg = config(runtime_seconds=3600, idle_timeout_seconds=1800, guard=False)
    result = replay(cfg, requests, PRICES, pace=PACE)
    for session in result.sessions:
        assert session.ended_at is not None
        assert session.ended_at <= session.deadline + cfg.watchdog.interval_seconds


def test_fallback_serves_while_the_pod_wakes_and_costs_its_tokens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = simulate(capsys, "--config", str(CONFIGS / "wake-fallback.json"))
    [row] = result["configs"]
    assert row["fallback_requests"] > 0 and row["fallback_cost_usd"] > 0
    assert row["waited_requests"] == 0 and row["wait_p50_seconds"] is None
    assert row["cost_usd"] == pytest.approx(
        row["pod_cost_usd"] + row["fallback_cost_usd"], abs=1e-3
    )
    assert row["pod_requests"] + row["fallback_requests"] + row["unserved_requests"] == 2087
    assert row["fallback_requests_without_tokens"] == 0  # the shipped trace has them all


def test_fallback_requests_without_token_counts_are_said_to_cost_nothing(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp\n1795424400\n1795424401\n")
    done = subprocess.run(
        [sys.executable, "-m", "podmgr", "cost", "simulate", "--trace", str(trace),
         "--config", str(CONFIGS / "wake-fallback.json")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "note: 2 fallback requests had no token counts" in done.stdout


def test_spot_preemptions_are_reproducible_by_seed(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--config", str(CONFIGS / "spot-idle15.json"), "--preemptions-per-hour", "0.5"]
    first = simulate(capsys, *args, "--seed", "7")["configs"][0]
    again = simulate(capsys, *args, "--seed", "7")["configs"][0]
    other = simulate(capsys, *args, "--seed", "8")["configs"][0]
    assert first == again and first["preemptions"] > 0
    # Each session makes a pod, and a preempted pod is resumed, unless its session ended
    # for idle at the pass that found it stopped (nobody to resume it for).
    assert first["cold_starts"] > first["sessions"]
    assert other != first


def test_a_malformed_line_is_named_and_nothing_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "trace.csv"
    bad.write_text("timestamp,model\n2026-11-23T09:00:00Z,m\nyesterday,m\n1795424400,m\n")
    before = bad.read_bytes()
    capsys.readouterr()
    assert main(["cost", "simulate", "--trace", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"{bad}:3: timestamp: 'yesterday'" in err
    assert bad.read_bytes() == before
    jsonl = tmp_path / "trace.jsonl"
    jsonl.write_text('{"timestamp": 1795424400}\n{"timestamp": 1795424460, "prompt_tokens": -3}\n')
    assert main(["cost", "simulate", "--trace", str(jsonl)]) == 2
    assert f"{jsonl}:2: prompt_tokens: -3 is negative" in capsys.readouterr().err


def test_traces_in_both_formats_and_both_time_notations_read_alike(tmp_path: Path) -> None:
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("timestamp,prompt_tokens\n1795424400,5\n2026-11-23T09:01:00,\n")
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"timestamp": "2026-11-23T09:00:00Z", "prompt_tokens": 5}\n'
                     '{"timestamp": 1795424460}\n')  # fmt: skip
    assert read_trace(csv_file) == read_trace(jsonl)


def test_the_cli_runs_a_week_as_a_real_process_and_prints_a_table() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "podmgr", "cost", "simulate", "--trace", str(TRACE),
         "--config", str(CONFIGS / "hourly-idle30.json")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    print(f"one-week replay as a process: {time.monotonic() - started:.1f}s")
    assert done.returncode == 0, done.stderr
    assert "always-on pod for comparison: 104.29 h" in done.stdout
    assert "cold starts" in done.stdout and done.stderr == ""


def _wake_with_fallback(idle: int) -> Config:
    return config(
        idle_timeout_seconds=idle,
        wake_on_request=True,
        upstreams=[
            {"name": "pod", "kind": "pod"},
            {"name": "hosted", "kind": "openai", "base_url": "https://example.invalid/v1",
             "price_input_per_million": 0.07, "price_output_per_million": 0.16},
        ],
    )  # fmt: skip


@pytest.mark.parametrize("idle", [20, 60, 120, 240, 600])
def test_short_idle_limits_end_sessions_for_idle_never_in_crash_loops(idle: int) -> None:
    """Idle 120 s on the work-week with a wake and a fallback ended 2 sessions in crash
    loops, each blocking wakes for the rest of its day: the guard ended its pod for idle,
    and the next pass read the pod gone as lost and replaced it until max_restarts."""
    result = replay(_wake_with_fallback(idle), read_trace(TRACE), PRICES, pace=PACE)
    ends = {s.end_reason for s in result.sessions}
    assert ends <= {"idle", "deadline"}, ends
    assert result.cold_starts == len(result.sessions)  # one pod a session: none replaced
    for pod in result.pods:
        if pod.ended_by == "pod" and pod.end_reason == "idle":
            served = max(pod.ready_at, pod.last_served_at or pod.ready_at)
            assert pod.ended_at is not None and pod.ended_at >= served + idle
            assert pod.ended_at >= pod.ready_at + idle  # never before it served


def test_the_guards_clock_in_the_model_sees_only_requests_the_pod_answered() -> None:
    """Requests a fallback answered (the pod not marked ready yet) never reached the pod's
    vLLM: its guard's idle clock runs from the load, as the real guard's does."""
    cfg = _wake_with_fallback(120)
    result = replay(cfg, read_trace(TRACE), PRICES, pace=PACE)
    guard_idle = [p for p in result.pods if p.ended_by == "pod" and p.end_reason == "idle"]
    assert guard_idle
    for pod in guard_idle:
        assert pod.ended_at == pytest.approx(
            max(pod.ready_at, pod.last_served_at or pod.ready_at) + 120
        )
