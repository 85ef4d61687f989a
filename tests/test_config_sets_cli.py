"""The real CLI with a two-pod config against the simulator (issue 23): the shipped example
validates with its GPU ids checked against the simulator's catalog, an unknown id in the
second pod exits 2 naming `pods.1.gpu_type_id`, `up --dry-run` prices both pods and creates
nothing, and `PODMGR_MODEL` with `pods` exits 2 naming the variable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from wdkit import Harness

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "two_models.json"


def podmgr(
    wd: Harness, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m podmgr ARGS --config <the harness's file>` with the simulator's env."""
    return subprocess.run(
        [sys.executable, "-m", "podmgr", *args, "--config", str(wd.config_path)],
        env={**wd.sim.env(wd.dir / "home"), **(env or {})},
        cwd=wd.dir, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def example_on_the_simulator(wd: Harness) -> dict[str, object]:
    """The shipped example as the harness's config: its pods and limits, with each pod
    pointed at the simulator and named by the test's prefix (so teardown finds its pods)."""
    example = json.loads(EXAMPLE.read_text())
    where = {"endpoint_url_template": wd.sim.pod_url_template, "pod_name_prefix": wd.prefix}
    data = {
        "pods": [{**entry, **where} for entry in example["pods"]],
        "limits": example["limits"],
        "watchdog": {"state_file": "state/state.json"},
        "proxy": {"port": wd.values["proxy_port"]},
    }
    wd.config_path.write_text(json.dumps(data))
    return data


def test_the_example_validates_with_both_pods_gpu_ids_checked(wd: Harness) -> None:
    example_on_the_simulator(wd)
    run = podmgr(wd, "config", "validate")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "  pods: chat, fim" in run.stdout
    assert "  gpu ids: checked against RunPod's catalog" in run.stdout
    assert "    gpu types: NVIDIA GeForce RTX 4090  cloud: SECURE  idle: 10m" in run.stdout
    assert "(one session for every pod)" in run.stdout


def test_an_unknown_gpu_id_in_the_second_pod_names_it(wd: Harness) -> None:
    data = example_on_the_simulator(wd)
    pods = data["pods"]
    assert isinstance(pods, list)
    pods[1]["gpu_type_id"] = ["RTX 4090"]
    wd.config_path.write_text(json.dumps(data))
    run = podmgr(wd, "config", "validate")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "pods.1.gpu_type_id: pod 'fim':" in run.stderr
    assert "NVIDIA GeForce RTX 4090" in run.stderr  # the closest id RunPod lists
    assert "Traceback" not in run.stderr


def test_up_dry_run_prices_both_pods_and_creates_nothing(wd: Harness) -> None:
    example_on_the_simulator(wd)
    run = podmgr(wd, "up", "--dry-run")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "pod chat (Qwen/Qwen2.5-Coder-32B-Instruct-AWQ): GPU types" in out
    assert "pod fim (Qwen/Qwen2.5-Coder-1.5B): GPU types" in out
    assert "  NVIDIA L40S: $0.86/h" in out and "  NVIDIA GeForce RTX 4090: $0.69/h" in out
    # the simulator's secure prices (podmgr/sim/catalog.py): chat's dearest $0.86/h (L40S)
    # plus fim's $0.69/h (4090) for the example's 1h, under its $3.00 budget
    assert "worst case for this session: $1.55 (runtime 1h x $1.55/h at most)" in out
    assert (
        "budget: $3.00 per session, shared by the pods' guards; idle limit: chat 30m, fim 10m"
        in out
    )
    assert wd.ledger() == [] and wd.alive() == []


def test_a_pod_field_override_with_pods_exits_2_naming_the_variable(wd: Harness) -> None:
    example_on_the_simulator(wd)
    run = podmgr(wd, "config", "validate", env={"PODMGR_MODEL": "other/model"})
    assert run.returncode == 2, run.stdout + run.stderr
    assert "PODMGR_MODEL: sets pod.model" in run.stderr and "entry of `pods`" in run.stderr
    fine = podmgr(wd, "config", "validate", env={"PODMGR_RUNTIME_SECONDS": "7200"})
    assert fine.returncode == 0 and "runtime: 2h" in fine.stdout
