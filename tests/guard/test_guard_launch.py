"""How the guard travels (podmgr/guard/launch.py): into the create, status and warnings."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podmgr.cli.status import format_status
from podmgr.config import build_config
from podmgr.errors import ConfigError
from podmgr.guard.launch import guard_line, guard_problem, guard_source, is_guard_entrypoint
from podmgr.runpod.client import create_request
from podmgr.state import PodRecord, Session
from podmgr.watchdog.spec import pod_spec

GPU = "NVIDIA GeForce RTX 4090"
SESSION = Session(started_at=1000.0, deadline=4600.0, cost_usd=0.25)


def _spec(monkeypatch: pytest.MonkeyPatch, **config: Any) -> Any:
    monkeypatch.delenv("RUNPOD_REST_URL", raising=False)
    cfg = build_config({"gpu_type_id": GPU, "max_cost_usd": 2.0, **config})
    return pod_spec(
        cfg, "cid", "podmgr-x", GPU, "vllm-key-fake", "SECURE", session=SESSION, now=1200.0
    )


def test_the_create_carries_the_guard_and_its_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(monkeypatch, idle_timeout_seconds=600)
    body = create_request(spec).body()
    # v2 has no entrypoint field: the start-command JSON rides in `args`
    # (RunPod docs, pods/templates/manage-templates.mdx).
    start = json.loads(body["args"])
    assert start["entrypoint"] == ["python3", "-c", guard_source()]
    assert start["cmd"][:4] == ["vllm", "serve", "--model", spec.docker_args.split()[3]]
    env = body["env"]
    assert env["PODMGR_GUARD_DEADLINE"] == "4600.000"
    assert env["PODMGR_GUARD_SPENT_USD"] == "0.250000"
    assert env["PODMGR_GUARD_MAX_COST_USD"] == "2"
    assert env["PODMGR_GUARD_IDLE_SECONDS"] == "600"
    assert env["PODMGR_GUARD_CREATED_AT"] == "1200.000"
    assert "PODMGR_GUARD_API_URL" not in env  # RunPod's own base is the guard's default
    assert is_guard_entrypoint(start["entrypoint"])


def test_no_secret_travels_with_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_fake_account_key_must_not_travel")
    body = json.dumps(create_request(_spec(monkeypatch)).body())
    assert "rpa_fake_account_key_must_not_travel" not in body
    assert "RUNPOD_API_KEY" in guard_source()  # read from the pod's env, RunPod's pod key


def test_the_guard_is_standard_library_only() -> None:
    """It runs with the image's python3: any import outside the standard library fails."""
    imports: set[str] = set()
    for node in ast.walk(ast.parse(guard_source())):
        if isinstance(node, ast.Import):
            imports.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imports.add(node.module.split(".")[0])
    assert imports <= set(sys.stdlib_module_names) | {"__future__"}, imports


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        pytest.param({}, None, id="default-vllm-image"),
        pytest.param({"docker_args": "--model m --port 8000"}, None, id="vllm-args"),
        pytest.param({"image_name": "me/custom:1"}, "image me/custom:1", id="custom-image"),
        pytest.param({"docker_args": "bash -c 'serve'"}, "whole command", id="custom-command"),
        pytest.param({"template_id": "ppny3n7iri"}, "template", id="template"),
        pytest.param({"guard": False}, "guard is off", id="off"),
    ],
)
def test_guard_problem(config: dict[str, Any], problem: str | None) -> None:
    found = guard_problem(build_config({"gpu_type_id": GPU, **config}))
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_without_a_guard_the_create_is_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(monkeypatch, image_name="me/custom:1")
    body = create_request(spec).body()
    assert body["args"].startswith("--model ")  # vLLM's arguments, as a plain string
    assert not any(key.startswith("PODMGR_GUARD_") for key in body["env"])


def test_env_may_not_shadow_the_guard() -> None:
    with pytest.raises(ConfigError, match="env"):
        build_config({"env": {"PODMGR_GUARD_DEADLINE": "1"}})


def test_status_shows_the_guard_armed_and_its_limits() -> None:
    cfg = build_config({"gpu_type_id": GPU})
    limits = {
        "deadline": "4600",
        "max_cost_usd": "2",
        "spent_usd": "0.25",
        "interval_seconds": "10",
    }
    line = guard_line(limits, cfg)
    assert line.startswith("armed in the pod: deadline 01:16:40 UTC, budget $2.00")
    assert "checks every 10s" in line
    record = PodRecord(id="p", name="n", gpu_type_id=GPU, created_at=0, vllm_api_key="k")
    assert record.guard is None  # a state file from before the guard still loads
    report = {"state_file": "s", "state_readable": True, "session": None, "history": [],
              "pod": {"id": "p1", "name": "n", "phase": "ready", "uptime_seconds": 1.0,
                      "gpu_type_id": GPU, "cost_per_hr": 0.69, "endpoint_url": "u",
                      "guard": limits},
              "proxy": {"url": "u", "pid": None, "healthy": False, "running": False,
                        "last_request_at": None}}  # fmt: skip
    lines = format_status(report, cfg)
    assert any(line.startswith("guard:   armed in the pod") for line in lines), lines
    report["pod"]["guard"] = None
    custom = build_config({"gpu_type_id": GPU, "image_name": "me/custom:1"})
    assert any("guard:   none in this pod (image" in line for line in format_status(report, custom))


def test_config_validate_warns_when_the_guard_is_impossible(tmp_path: Path) -> None:
    path = tmp_path / "pod_config.json"
    path.write_text(json.dumps({"gpu_type_id": GPU, "image_name": "me/custom:1"}))
    done = subprocess.run(
        [sys.executable, "-m", "podmgr", "config", "validate", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning: no guard in the pod (image me/custom:1" in done.stdout
