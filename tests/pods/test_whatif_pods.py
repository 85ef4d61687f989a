"""`podmgr cost simulate` with several models (issue 23): the trace's `model` column sends
each request to its pod, `plan_set()` decides, the output is per pod and in total."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podmgr.config import Config
from podmgr.whatif.pods import replay_pods
from podmgr.whatif.replay import Prices, ReplayResult
from podmgr.whatif.runpod_model import StartupPace
from podmgr.whatif.trace import TraceRequest, read_trace

ROOT = Path(__file__).resolve().parents[2]
BIG_GPU = "NVIDIA A100 80GB PCIe"
SMALL_GPU = "NVIDIA GeForce RTX 4090"
BIG, SMALL = "org/big-model", "org/small-model"
PRICES = {"chat": Prices({BIG_GPU: 1.64}, {}, "test"), "fim": Prices({SMALL_GPU: 0.69}, {}, "test")}
PACE = StartupPace(150, 40, 60)
STARTUP = 250.0
T0 = 1_795_424_400.0  # 2026-11-23 09:00 UTC, a Monday
BIG_IDLE, SMALL_IDLE = 3600, 600


def set_config(tmp_path: Path | None = None, **limits: Any) -> dict[str, Any]:
    """Two pods on different GPU types; the small one has its own, shorter idle time."""
    values: dict[str, Any] = {
        "pods": [
            {"name": "chat", "model": BIG, "gpu_type_id": [BIG_GPU]},
            {"name": "fim", "model": SMALL, "gpu_type_id": [SMALL_GPU],
             "idle_timeout_seconds": SMALL_IDLE},
        ],
        "runtime_seconds": 36000,
        "idle_timeout_seconds": BIG_IDLE,
        **limits,
    }  # fmt: skip
    if tmp_path is not None:
        values["state_file"] = str(tmp_path / "state" / "state.json")
    return values


def two_model_lines() -> list[tuple[float, str]]:
    """The big model every 5 min for 2 h; the small one at the start, then 1 h later (its
    pod idled out meanwhile), and a model nobody serves once."""
    lines = [(T0 + i * 300, BIG) for i in range(24)]
    lines += [(T0 + 60, SMALL), (T0 + 120, SMALL), (T0 + 4000, SMALL), (T0 + 500, "org/nobody")]
    return sorted(lines)


def requests_of(lines: list[tuple[float, str]]) -> list[TraceRequest]:
    return [TraceRequest(at, model, 100, 20, True) for at, model in lines]


def run_set(**limits: Any) -> ReplayResult:
    config = Config.model_validate(set_config(**limits))
    return replay_pods(config, requests_of(two_model_lines()), PRICES, pace=PACE)


def test_the_per_pod_figures_add_up_to_the_total() -> None:
    result = run_set()
    chat, fim = result.by_pod
    assert (chat.name, chat.gpu_type_id, fim.name, fim.gpu_type_id) == (
        "chat",
        BIG_GPU,
        "fim",
        SMALL_GPU,
    )
    assert chat.cost_usd > 0 and fim.cost_usd > 0
    assert chat.billed_seconds + fim.billed_seconds == pytest.approx(result.billed_seconds)
    assert chat.cost_usd + fim.cost_usd == pytest.approx(result.pod_cost_usd)
    # each pod at its own GPU type's price
    assert chat.cost_usd == pytest.approx(chat.billed_seconds / 3600 * 1.64)
    assert fim.cost_usd == pytest.approx(fim.billed_seconds / 3600 * 0.69)
    assert chat.cold_starts + fim.cold_starts == result.cold_starts
    assert chat.served + fim.served == result.pod_requests
    assert sorted(chat.waits + fim.waits) == sorted(result.waits)
    assert chat.unserved + fim.unserved == result.unserved_requests
    handled = sum(p.served + p.fallback + p.unserved for p in result.by_pod)
    assert handled + result.refused_requests == len(two_model_lines())
    assert result.refused_requests == 1  # org/nobody


def test_the_small_pod_idles_out_on_its_own_idle_time_while_the_big_one_stays_up() -> None:
    result = run_set()
    chat, fim = result.by_pod
    chat_pods = [p for p in result.pods if p.owner == "chat"]
    fim_pods = sorted((p for p in result.pods if p.owner == "fim"), key=lambda p: p.created_at)
    assert [len(chat_pods), len(fim_pods)] == [1, 2] == [chat.cold_starts, fim.cold_starts]
    [big] = chat_pods
    first_small, woken = fim_pods
    # the small pod ended for idle after its own 600 s (its guard, or the next watchdog
    # pass at most one interval later), long before the big model's 3600 s
    assert first_small.ended_at is not None and big.ended_at is not None
    last_small_served = first_small.last_served_at or first_small.ready_at
    interval = Config.model_validate(set_config()).watchdog.interval_seconds
    assert last_small_served + SMALL_IDLE <= first_small.ended_at
    assert first_small.ended_at <= last_small_served + SMALL_IDLE + interval
    assert big.created_at < first_small.ended_at < T0 + 4000 < big.ended_at
    # the request for the small model at T0+4000 woke the small pod only
    assert woken.created_at == T0 + 4000
    assert fim.unserved == 0 and chat.unserved == 0
    # the big pod served its last request (T0 + 23*300) and idled out 3600 s later
    assert big.ended_at == pytest.approx(T0 + 23 * 300 + BIG_IDLE, abs=interval)
    assert len(result.sessions) == 1  # one session: a pod idling out alone does not end it


def test_the_big_pod_of_the_set_costs_what_the_big_model_alone_costs() -> None:
    """The big model's lines replayed with a one-pod config of the big pod's section give
    the big pod's figures: same creates, same idle end, same waits. This holds with no
    budget (with one, each guard of a set enforces its share of it, focus.py) and while
    the trace's first line is for the big model (the session's deadline counts from the
    first request of any model)."""
    big_lines = [line for line in two_model_lines() if line[1] == BIG]
    one = Config.model_validate(
        {"gpu_type_id": [BIG_GPU], "model": BIG, "runtime_seconds": 36000,
         "idle_timeout_seconds": BIG_IDLE}
    )  # fmt: skip
    alone = replay_pods(one, requests_of(big_lines), {"pod": PRICES["chat"]}, pace=PACE)
    [solo] = alone.by_pod
    chat = run_set().by_pod[0]
    assert solo.name == "pod" and solo.model == BIG
    assert solo.billed_seconds == pytest.approx(chat.billed_seconds)
    assert solo.cost_usd == pytest.approx(chat.cost_usd)
    assert (solo.cold_starts, solo.served, solo.unserved) == (
        chat.cold_starts,
        chat.served,
        chat.unserved,
    )
    assert solo.waits == pytest.approx(chat.waits) and solo.waits == [STARTUP]


def test_requests_for_a_model_no_pod_serves_are_refused_and_wake_nothing() -> None:
    config = Config.model_validate(set_config())
    lines = [(T0 + i * 60, "org/nobody") for i in range(5)]
    result = replay_pods(config, requests_of(lines), PRICES, pace=PACE)
    assert result.refused_requests == 5
    assert result.cold_starts == 0 and result.pod_cost_usd == 0 and not result.sessions
    assert [p.served + p.unserved for p in result.by_pod] == [0, 0]


def test_a_fallback_serving_the_unknown_model_answers_it_instead() -> None:
    hosted = {"name": "hosted", "kind": "openai", "base_url": "https://example.invalid/v1",
              "models": ["org/nobody"], "price_input_per_million": 1.0,
              "price_output_per_million": 2.0}  # fmt: skip
    config = Config.model_validate(
        set_config(upstreams=[{"name": "chat", "kind": "pod", "pod": "chat"},
                              {"name": "fim", "kind": "pod", "pod": "fim"}, hosted])
    )  # fmt: skip
    result = replay_pods(config, requests_of(two_model_lines()), PRICES, pace=PACE)
    assert result.refused_requests == 0 and result.fallback_requests == 1
    assert result.fallback_cost_usd == pytest.approx((100 * 1.0 + 20 * 2.0) / 1e6)


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    trace = tmp_path / "two-models.csv"
    trace.write_text(
        "timestamp,model,prompt_tokens,completion_tokens\n"
        + "".join(f"{at:.0f},{model},100,20\n" for at, model in two_model_lines())
    )
    config = tmp_path / "pods.json"
    config.write_text(json.dumps(set_config(tmp_path)))
    return trace, config


def simulate_process(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RUNPOD_API_KEY"}  # the sim's prices
    return subprocess.run(
        [sys.executable, "-m", "podmgr", "cost", "simulate", *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip


def test_the_cli_prints_each_pod_and_the_total_as_a_real_process(tmp_path: Path) -> None:
    trace, config = write_inputs(tmp_path)
    done = simulate_process("--trace", str(trace), "--config", str(config))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "per pod:" in out and "total" in out
    chat_line = next(line for line in out.splitlines() if line.strip().startswith("chat "))
    fim_line = next(line for line in out.splitlines() if line.strip().startswith("fim "))
    assert f"{BIG} on {BIG_GPU}" in chat_line and "1 cold starts" in chat_line
    assert f"{SMALL} on {SMALL_GPU}" in fim_line and "2 cold starts" in fim_line
    assert "1 requests refused, no pod or fallback serves their model: org/nobody (1)" in out
    assert "simulator's catalog" in out
    assert "every pod always on for comparison" in out

    done = simulate_process("--trace", str(trace), "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)["configs"]
    chat, fim = row["pods"]
    assert (chat["name"], fim["name"]) == ("chat", "fim")
    assert chat["cost_usd"] + fim["cost_usd"] == pytest.approx(row["pod_cost_usd"], abs=2e-4)
    assert chat["billed_hours"] + fim["billed_hours"] == pytest.approx(
        row["billed_hours"], abs=2e-4
    )
    assert chat["cold_starts"] + fim["cold_starts"] == row["cold_starts"] == 3
    assert chat["served_requests"] + fim["served_requests"] == row["pod_requests"] == 27
    assert row["refused_requests"] == 1 and row["refused_models"] == {"org/nobody": 1}
    assert row["always_on"]["cost_usd"] == pytest.approx(
        chat["always_on"]["cost_usd"] + fim["always_on"]["cost_usd"], abs=2e-4
    )
    # each pod priced on its own GPU type (the simulator's catalog: the A100 costs more)
    assert chat["cost_usd"] / chat["billed_hours"] > fim["cost_usd"] / fim["billed_hours"]


def test_a_one_pod_config_prints_as_before_and_compares_with_a_set(tmp_path: Path) -> None:
    trace, pods = write_inputs(tmp_path)
    one = tmp_path / "one.json"
    one.write_text(json.dumps(
        {"gpu_type_id": [SMALL_GPU], "model": SMALL, "idle_timeout_seconds": 600,
         "state_file": str(tmp_path / "one" / "state.json")}
    ))  # fmt: skip
    text = simulate_process("--trace", str(trace), "--config", str(one))
    assert text.returncode == 0, text.stderr
    assert "per pod:" not in text.stdout and "always-on pod for comparison" in text.stdout
    done = simulate_process(
        "--trace", str(trace), "--config", str(pods), "--config", str(one), "--json"
    )
    assert done.returncode == 0, done.stderr
    two, row = json.loads(done.stdout)["configs"]
    assert [p["name"] for p in two["pods"]] == ["chat", "fim"] and two["refused_requests"] == 1
    [pod] = row["pods"]
    # the one pod answers every model, as before issue 23: nothing refused
    assert row["refused_requests"] == 0 and row["pod_requests"] == len(two_model_lines())
    assert (pod["name"], pod["cost_usd"], pod["cold_starts"]) == (
        "pod",
        row["pod_cost_usd"],
        row["cold_starts"],
    )


def test_a_trace_without_a_model_column_goes_to_the_first_pod(tmp_path: Path) -> None:
    trace = tmp_path / "no-model.csv"
    trace.write_text("timestamp\n1795424400\n1795424460\n")
    config = Config.model_validate(set_config(wake_on_request=True))
    result = replay_pods(config, read_trace(trace), PRICES, pace=PACE)
    chat, fim = result.by_pod
    assert (chat.served, fim.served, fim.cold_starts, result.refused_requests) == (2, 0, 0, 0)


def test_with_wake_on_request_a_request_wakes_only_the_pod_of_its_model() -> None:
    result = run_set(wake_on_request=True)
    chat, fim = result.by_pod
    firsts = {o: min(p.created_at for p in result.pods if p.owner == o) for o in ("chat", "fim")}
    # the first line (big model, T0) woke chat alone; the small model's first line (T0+60)
    # woke fim in the running session (`podmgr up fim`); without the wake (the person's
    # `podmgr up`) both start at T0
    assert firsts == {"chat": T0, "fim": T0 + 60}
    assert (chat.cold_starts, fim.cold_starts, len(result.sessions)) == (1, 2, 1)
    manual = {p.owner: p.created_at for p in run_set().pods if p.created_at == T0}
    assert manual == {"chat": T0, "fim": T0}


def test_each_guard_gets_its_price_weighted_share_of_the_budget() -> None:
    """`podmgr up` starts both pods: their guards split the budget by $/h (focus.py
    guard_budget), never more than the budget together."""
    result = run_set(max_cost_usd=50)
    shares = {p.owner: float((p.guard or {})["max_cost_usd"]) for p in result.pods}
    assert shares["chat"] + shares["fim"] <= 50
    assert shares["chat"] / shares["fim"] == pytest.approx(1.64 / 0.69, rel=1e-3)
    assert [p.unserved for p in result.by_pod] == [0, 0]


def test_a_pod_woken_later_in_the_session_gets_a_budget_it_can_serve_with() -> None:
    result = run_set(max_cost_usd=50, wake_on_request=True)
    fim = result.by_pod[1]
    assert fim.served == 3 and fim.unserved == 0


def test_the_one_pod_replay_refuses_a_set_instead_of_replaying_its_first_pod() -> None:
    from podmgr.whatif.replay import replay

    config = Config.model_validate(set_config())
    with pytest.raises(ValueError, match="replay_pods"):
        replay(config, requests_of(two_model_lines()), PRICES["chat"], pace=PACE)
