"""Prices before paying (issue 22): `podmgr gpus`, `podmgr init`, `up`'s prices and its
question, `up --dry-run`'s figures, the serving line with the model id, against the
simulator; the pure parts (`should_ask`, the worst case, `confirm_spend`) as tables."""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wdkit import Harness

from podmgr.cli.init import gather
from podmgr.cli.prices import (
    Catalog,
    confirm_spend,
    format_duration,
    price_lines,
    should_ask,
    worst_case,
)
from podmgr.cli.serving import served_model, serving_lines
from podmgr.config import build_config
from podmgr.errors import ConfigError
from podmgr.runpod.values import GpuType
from podmgr.sim.process import SimProcess, free_port
from podmgr.state import StateStore

from .helpers import record, session, state
from .test_cli import cli


def podmgr(
    directory: Path, env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podmgr", *args],
        env=env, cwd=directory, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


# --- pure parts ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("yes", "stdin_tty", "stdout_tty", "asks"),
    [
        pytest.param(False, True, True, True, id="a person at a terminal"),
        pytest.param(True, True, True, False, id="--yes"),
        pytest.param(False, False, True, False, id="cron or the wake: no terminal on stdin"),
        pytest.param(False, True, False, False, id="output into a pipe"),
        pytest.param(False, False, False, False, id="nothing is a terminal"),
    ],
)
def test_should_ask(yes: bool, stdin_tty: bool, stdout_tty: bool, asks: bool) -> None:
    assert should_ask(yes, stdin_tty, stdout_tty) is asks


def test_worst_case_is_runtime_times_price_capped_by_the_budget() -> None:
    assert worst_case(3600, 0.69, None) == pytest.approx(0.69)
    assert worst_case(7200, 2.99, 2.5) == 2.5
    assert worst_case(1800, 1.0, 2.5) == pytest.approx(0.5)
    assert [format_duration(s) for s in (3600, 900, 5400, 45, 3661)] == [
        "1h", "15m", "1h30m", "45s", "1h1m1s",
    ]  # fmt: skip


def _config(tmp_path: Path, **limits: object) -> object:
    data = {
        "pod": {"gpu_type_id": ["NVIDIA GeForce RTX 4090", "NVIDIA L40S"], "gpu_count": 2},
        "limits": {"runtime_seconds": 7200, **limits},
        "watchdog": {"state_file": "state/state.json"},
    }
    return build_config(data, tmp_path, environ={})


CATALOG = Catalog(
    [
        GpuType("NVIDIA GeForce RTX 4090", "RTX 4090", 24, secure_price=0.69),
        GpuType("NVIDIA L40S", "L40S", 48, secure_price=0.86),
    ],
    "test",
)


def test_price_lines_show_each_type_in_order_the_worst_case_and_the_budget(
    tmp_path: Path,
) -> None:
    lines = price_lines(_config(tmp_path, max_cost_usd=2.5, idle_timeout_seconds=900), CATALOG)  # type: ignore[arg-type]
    assert lines[1:3] == ["  NVIDIA GeForce RTX 4090 x2: $1.38/h", "  NVIDIA L40S x2: $1.72/h"]
    assert "worst case for this session: $2.50 (the budget; runtime 2h x $1.72/h" in lines[3]
    assert "would be $3.44" in lines[3]
    assert lines[4] == "budget: $2.50 per session; idle limit: 15m"
    both = build_config({"pod": {"cloud_type": "ALL"}}, tmp_path, environ={})
    catalog = Catalog([GpuType(both.pod.gpu_type_ids[0], "x", 24, 0.69, 0.34)], "test")
    assert price_lines(both, catalog)[1].endswith(": secure $0.69/h, community $0.34/h")
    assert "x $0.69/h at most" in price_lines(both, catalog)[2]  # the dearer cloud
    unknown = price_lines(_config(tmp_path), None)  # type: ignore[arg-type]
    assert "price unknown" in unknown[1] and "worst case for this session: unknown" in unknown[3]
    assert unknown[4] == "budget: none per session; idle limit: none"


@pytest.mark.parametrize(
    ("answer", "goes_on"),
    [("n", False), ("", False), (EOFError(), False), ("y", True), ("YES", True)],
)
def test_confirm_spend_creates_only_on_yes(
    tmp_path: Path, answer: str | Exception, goes_on: bool
) -> None:
    config = _config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "catalog.json").write_text(
        json.dumps([{"id": "NVIDIA GeForce RTX 4090", "display_name": "RTX 4090",
                     "memory_gb": 24, "secure_price": 0.69}])
    )  # fmt: skip
    lines: list[str] = []
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = confirm_spend(
        config, yes=False, emit=lines.append, ask=ask, stdin_tty=True, stdout_tty=True,  # type: ignore[arg-type]
    )  # fmt: skip
    assert result is goes_on and asked == ["Create the pod? [y/N] "]
    assert "  NVIDIA GeForce RTX 4090 x2: $1.38/h" in lines
    assert any(line.startswith("nothing created") for line in lines) is not goes_on


def test_no_prices_and_no_question_when_the_session_already_has_a_pod(tmp_path: Path) -> None:
    config = _config(tmp_path)
    StateStore(config.state_path).save(state(session(), record()))  # type: ignore[attr-defined]
    lines: list[str] = []

    def never(_question: str) -> str:
        raise AssertionError("asked")

    assert confirm_spend(
        config, yes=False, emit=lines.append, ask=never, stdin_tty=True, stdout_tty=True,  # type: ignore[arg-type]
    )  # fmt: skip
    assert lines == []


def _flags(**given: object) -> argparse.Namespace:
    values: dict[str, object] = dict.fromkeys(
        ("model", "context", "budget", "runtime", "idle", "weights_gib")
    )
    return argparse.Namespace(**{**values, **given})


def test_init_asks_for_what_the_flags_did_not_give_and_asks_again_after_a_bad_answer() -> None:
    answers = iter(["Qwen/Qwen2.5-Coder-14B-Instruct", "", "two dollars", "$2.50", "90m"])
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return next(answers)

    got = gather(_flags(idle="none"), "default/Model-7B", ask)
    assert (got.model, got.context, got.budget, got.runtime_seconds, got.idle_seconds) == (
        "Qwen/Qwen2.5-Coder-14B-Instruct", 16384, 2.5, 5400, None,
    )  # fmt: skip
    assert asked[0] == "Model (Hugging Face id) [default/Model-7B]: "
    assert asked.count("Budget per session in USD, or none [none]: ") == 2
    assert not any("Idle" in question for question in asked)  # --idle was given
    quiet = gather(_flags(), "default/Model-7B", None)  # --yes or no terminal: the defaults
    assert (quiet.model, quiet.budget, quiet.runtime_seconds, quiet.idle_seconds) == (
        "default/Model-7B", None, 3600, 900,
    )  # fmt: skip
    with pytest.raises(ConfigError) as bad:
        gather(_flags(context=-5), "default/Model-7B", None)
    assert "--context" in str(bad.value)


def test_served_model_and_the_serving_lines(tmp_path: Path) -> None:
    assert served_model("Qwen/Qwen2.5-7B", ["--max-model-len", "8192"]) == "Qwen/Qwen2.5-7B"
    assert served_model("Qwen/Qwen2.5-7B", ["--served-model-name", "coder"]) == "coder"
    assert served_model("Qwen/Qwen2.5-7B", ["--served-model-name=coder"]) == "coder"
    config = build_config({"pod": {"model": "Qwen/Qwen2.5-Coder-32B-Instruct"}}, tmp_path, {})
    lines = serving_lines("http://127.0.0.1:8000/v1", config)
    assert lines[0] == (
        "serving: base URL http://127.0.0.1:8000/v1, model Qwen/Qwen2.5-Coder-32B-Instruct"
    )
    assert len(lines) == 3 and '"model": "Qwen/Qwen2.5-Coder-32B-Instruct"' in lines[2]
    assert "Continue" in lines[1] and "OpenAI compatible" in lines[1]


# --- against the simulator -------------------------------------------------------------
def test_gpus_lists_marks_and_caches(wd: Harness) -> None:
    run = cli(wd, "gpus")
    assert run.returncode == 0, run.stdout + run.stderr
    rows = run.stdout.splitlines()
    assert "VRAM GiB" in rows[0] and "secure $/h" in rows[0] and "max CUDA" in rows[0]
    assert rows[1].startswith("*NVIDIA GeForce RTX 4090") and rows[2].startswith(
        "*NVIDIA RTX A6000"
    )
    assert not any(r.startswith("*") for r in rows[3:6]), rows
    assert "0.69" in rows[1] and "read from RunPod now" in run.stdout
    before = wd.sim.api_requests()
    listed = cli(wd, "gpus", "--json")
    assert wd.sim.api_requests()["v2"] == before["v2"]  # the cache answered
    data = json.loads(listed.stdout)
    assert data["source"].startswith("cached")
    assert [g["id"] for g in data["gpus"] if g["chosen"]] == [
        "NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000",
    ]  # fmt: skip
    assert data["gpus"][0]["vram_gib"] == 24 and data["gpus"][0]["secure_per_hour"] == 0.69
    fresh = cli(wd, "gpus", "--refresh")
    assert fresh.returncode == 0 and wd.sim.api_requests()["v2"] == before["v2"] + 2


def test_gpus_without_a_cache_or_a_key_says_how_to_get_one(wd: Harness) -> None:
    env = {k: v for k, v in wd.sim.env(wd.dir / "home").items() if k != "RUNPOD_API_KEY"}
    run = cli(wd, "gpus", env=env)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "RUNPOD_API_KEY" in run.stderr and "podmgr gpus --refresh" in run.stderr
    assert "Traceback" not in run.stderr


def test_up_dry_run_prints_prices_and_the_worst_case_and_writes_nothing(wd: Harness) -> None:
    wd.configure(max_cost_usd=2.5, runtime_seconds=3600)
    run = cli(wd, "up", "--dry-run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "  NVIDIA GeForce RTX 4090: $0.69/h" in run.stdout
    assert "  NVIDIA RTX A6000: $0.76/h" in run.stdout
    assert "worst case for this session: $0.76 (runtime 1h x $0.76/h at most)" in run.stdout
    assert "budget: $2.50 per session" in run.stdout and "would create a pod" in run.stdout
    assert wd.ledger() == [] and not wd.config.state_path.parent.exists()


def test_up_at_a_terminal_answered_no_creates_nothing(wd: Harness) -> None:
    """`podmgr up` in a pseudo-terminal: it shows the prices, asks, and "n" ends it."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "podmgr", "up", "--config", str(wd.config_path)],
        stdin=follower, stdout=follower, stderr=follower, cwd=wd.dir,
        env=wd.sim.env(wd.dir / "home"), start_new_session=True,
    )  # fmt: skip
    os.close(follower)
    seen = b""
    try:
        seen = _read_until(leader, b"Create the pod? [y/N]", seen)
        os.write(leader, b"n\n")
        seen = _read_until(leader, b"nothing created", seen)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    text = seen.decode(errors="replace")
    assert "NVIDIA GeForce RTX 4090: $0.69/h" in text and "worst case" in text
    assert wd.ledger() == []
    state = wd.store.peek()
    assert state is None or state.session is None


def _read_until(fd: int, wanted: bytes, seen: bytes, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {wanted!r}; saw {seen.decode(errors='replace')}"
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"the terminal closed before {wanted!r}: {seen.decode(errors='replace')}"
            seen += chunk
    return seen


def test_init_writes_a_config_that_validates_and_up_serves_with(
    sim: SimProcess, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = sim.env(home)
    init = podmgr(
        tmp_path, env, "init", "--model", "Qwen/Qwen2.5-Coder-32B-Instruct-AWQ",
        "--context", "8192", "--budget", "3", "--runtime", "30m", "--idle", "10m", "--yes",
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    assert "32B parameters x 0.5 bytes" in init.stdout
    assert "NVIDIA GeForce RTX 4090           24 GiB  $0.69/h" in init.stdout
    assert "worst case of a session: $0.43 (runtime 30m x $0.86/h at most)" in init.stdout
    assert "idle limit: 10m" in init.stdout and "key: accepted" in init.stdout
    assert "RateLimit-Policy" in init.stdout
    written = json.loads((tmp_path / "pod_config.json").read_text())
    assert written == {
        "pod": {
            "model": "Qwen/Qwen2.5-Coder-32B-Instruct-AWQ",
            "gpu_type_id": ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000", "NVIDIA L40S"],
            "vllm_args": ["--max-model-len", "8192"],
        },
        "limits": {"runtime_seconds": 1800, "max_cost_usd": 3.0, "idle_timeout_seconds": 600},
    }
    assert sim.ledger() == []  # init never creates a pod
    again = podmgr(tmp_path, env, "init", "--yes")
    assert again.returncode == 2 and "--force" in again.stderr
    valid = podmgr(tmp_path, env, "config", "validate")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "runtime: 30m  budget: $3.00  idle: 10m" in valid.stdout
    # The test's plumbing only (the simulator's pod URLs, a free port, fast checks): the
    # file stays as init wrote it.
    plumbing = {
        **env,
        "PODMGR_ENDPOINT_URL_TEMPLATE": sim.pod_url_template,
        "PODMGR_PROXY_PORT": str(free_port()),
        "PODMGR_INITIAL_WAIT_SECONDS": "0",
        "PODMGR_POLL_INTERVAL_SECONDS": "0.1",
    }
    try:
        up = podmgr(tmp_path, plumbing, "up", "--yes")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "  NVIDIA GeForce RTX 4090: $0.69/h" in up.stdout
        port = plumbing["PODMGR_PROXY_PORT"]
        assert (
            f"serving: base URL http://127.0.0.1:{port}/v1, "
            "model Qwen/Qwen2.5-Coder-32B-Instruct-AWQ"
        ) in up.stdout
        assert "Create the pod?" not in up.stdout
    finally:
        down = podmgr(tmp_path, plumbing, "shutdown")
    assert down.returncode == 0, down.stdout + down.stderr
    assert all(pod["status"] == "TERMINATED" for pod in sim.ledger()), sim.ledger()


def test_cost_simulate_takes_prices_where_gpus_does(wd: Harness) -> None:
    trace = wd.dir / "trace.csv"
    trace.write_text("timestamp\n1795424400\n1795424401\n")
    env = {k: v for k, v in wd.sim.env(wd.dir / "home").items() if k != "RUNPOD_API_KEY"}
    offline = cli(wd, "cost", "simulate", "--trace", str(trace), "--json", env=env)
    assert offline.returncode == 0, offline.stderr
    source = json.loads(offline.stdout)["configs"][0]["price_source"]
    assert "simulator's catalog" in source and "`podmgr gpus --refresh`" in source
    keyed = cli(wd, "cost", "simulate", "--trace", str(trace), "--json")
    assert keyed.returncode == 0, keyed.stderr
    source = json.loads(keyed.stdout)["configs"][0]["price_source"]
    assert "as `podmgr gpus` saved it" in source, source
    assert (wd.config.state_path.parent / "catalog.json").exists()


def test_init_refuses_what_it_cannot_estimate_and_writes_nothing(
    sim: SimProcess, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = sim.env(home)
    no_key = {k: v for k, v in env.items() if k != "RUNPOD_API_KEY"}
    offline = podmgr(tmp_path, no_key, "init", "--yes")
    assert offline.returncode == 2 and "RUNPOD_API_KEY" in offline.stderr, offline.stderr
    sizeless = podmgr(tmp_path, env, "init", "--model", "org/house-coder", "--yes")
    assert sizeless.returncode == 2 and "--weights-gib" in sizeless.stderr, sizeless.stderr
    huge = podmgr(tmp_path, env, "init", "--model", "org/Giant-1000B", "--yes")
    assert huge.returncode == 2 and "no GPU type in the catalog fits" in huge.stderr
    assert not (tmp_path / "pod_config.json").exists() and sim.ledger() == []
    given = podmgr(tmp_path, env, "init", "--model", "org/house-coder", "--weights-gib", "30",
                   "--yes")  # fmt: skip
    assert given.returncode == 0, given.stderr
    assert "weights 30 GiB as given" in given.stdout
    assert "NVIDIA GeForce RTX 4090" not in given.stdout  # 30 GiB of weights: not on 24
