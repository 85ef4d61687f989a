"""The pod's own log in `podmgr up` (issue 20): each fatal signature ends the pod at once,
saying what to change, instead of the 20-minute start-up budget; each phase is printed
once, in order.

The simulator's faults write the real lines (podmgr/sim/fatal.py) at the moment a real pod
would; the watchdog reads them from RunPod's log stream (podmgr/watchdog/podlog.py). The
start-up budget here is the default's 20 minutes: every pod below is billed a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wdkit import Harness, MakeWd

from podmgr.errors import PodFailedError
from podmgr.sim.process import SimProcess, free_port

DEFAULT_BUDGET_SECONDS = 60 + 114 * 10  # initial_wait_seconds + max_startup_attempts * poll


@pytest.fixture(scope="module")
def paced_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=0.5, load_seconds=1.0, download_seconds=0.5) as process:
        yield process


@pytest.fixture
def pwd(paced_sim: SimProcess, make_wd: MakeWd) -> Harness:
    return make_wd(paced_sim)


@pytest.mark.parametrize(
    ("fault", "params", "said"),
    [
        pytest.param("vllm_oom", {}, ["GPU's memory", "NVIDIA RTX A6000", "--max-model-len"],
                     id="out-of-memory"),
        pytest.param("vllm_oom", {"kind": "kv_cache"}, ["GPU's memory", "--max-model-len"],
                     id="no-memory-for-the-kv-cache"),
        pytest.param("gated_model", {}, ["gated", "HF_TOKEN"], id="gated-model"),
        pytest.param("model_not_found", {}, ["no model by that name", "check `model`"],
                     id="model-not-found"),
        pytest.param("bad_vllm_args", {"arg": "--max-modle-len"},
                     ["refused its command line", "--max-modle-len"], id="bad-vllm-args"),
        pytest.param("unsupported_arch", {"arch": "FooForCausalLM"},
                     ["architecture", "FooForCausalLM"], id="unsupported-architecture"),
    ],
)  # fmt: skip
def test_a_fatal_line_ends_the_pod_at_once_saying_what_to_change(
    pwd: Harness, fault: str, params: dict[str, str], said: list[str]
) -> None:
    # One GPU type: after running out of memory podmgr names a bigger one from the catalog.
    pwd.configure(gpu_type_id="NVIDIA GeForce RTX 4090", max_startup_attempts=114)
    pwd.sim.set_fault(fault, **params)
    started = time.monotonic()
    with pytest.raises(PodFailedError) as raised:
        pwd.up()
    seconds = time.monotonic() - started
    message = raised.value.message
    assert raised.value.exit_code == 12
    for words in said:
        assert words in message, message
    [pod] = pwd.ledger()
    assert pod["status"] == "TERMINATED", pod  # by the pass that read the line: the budget
    # path would have raised StartupError (exit 7) after DEFAULT_BUDGET_SECONDS instead
    state = pwd.state()
    assert state.session is not None and state.session.end_reason == "pod_failed"
    print(f"{fault}: exit 12 after {seconds:.1f}s, billed {pod['billed_seconds']:.1f}s")


@pytest.fixture(scope="module")
def phased_sim() -> Iterator[SimProcess]:
    """`podmgr sim --pull-seconds 60 --download-seconds 30 --load-seconds 20`, scaled by 1/10."""
    with SimProcess(pull_seconds=6.0, download_seconds=3.0, load_seconds=2.0) as process:
        yield process


def test_up_prints_each_phase_once_in_order_from_the_log(
    phased_sim: SimProcess, tmp_path: Path
) -> None:
    config = tmp_path / "pod_config.json"
    config.write_text(
        json.dumps(
            {
                "gpu_type_id": "NVIDIA GeForce RTX 4090",
                "endpoint_url_template": phased_sim.pod_url_template,
                "initial_wait_seconds": 0.5,
                "poll_interval_seconds": 0.5,
                "max_startup_attempts": 600,
                "proxy_port": free_port(),
                "proxy_start_timeout_seconds": 60,
                "state_file": "state/state.json",
            }
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    podmgr = [sys.executable, "-m", "podmgr"]
    env = phased_sim.env(home)
    try:
        up = subprocess.run([*podmgr, "up", "--config", str(config)], env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        subprocess.run([*podmgr, "shutdown", "--config", str(config)], env=env,
                       capture_output=True, timeout=120)  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    phases = [line.split(": ", 1)[1] for line in up.stdout.splitlines() if "] pod " in line]
    named = [phase.split(" (")[0] for phase in phases]
    wanted = ["image pull", "image pulled", "container started", "weights download",
              "weights downloaded", "weights loaded", "CUDA graph capture",
              "CUDA graphs captured", "vLLM serving", "serving"]  # fmt: skip
    assert [name for name in named if name in wanted] == wanted, up.stdout
    assert len(named) == len(set(named)), up.stdout  # each once
    assert "image pulled (in 6.0s)" in up.stdout, up.stdout
