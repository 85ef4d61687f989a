"""Config errors say where the value came from and which field was meant (issue 22)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from podmgr.config import build_config, load_config
from podmgr.errors import ConfigError


def test_an_env_override_is_named_with_its_section_path() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({}, environ={"PODMGR_RUNTIME_SECONDS": "1h"})
    assert caught.value.field == "limits.runtime_seconds"
    assert "(from PODMGR_RUNTIME_SECONDS)" in caught.value.message


def test_a_value_in_the_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pod_config.json"
    path.write_text('{"limits": {"runtime_seconds": "1h"}}')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.field == "limits.runtime_seconds"
    assert f"(in {path})" in caught.value.message and "PODMGR_" not in caught.value.message


def test_the_variable_wins_over_the_file_and_is_the_one_named(tmp_path: Path) -> None:
    path = tmp_path / "pod_config.json"
    path.write_text('{"proxy_port": 9000}')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"PODMGR_PROXY_PORT": "eighty"})
    assert caught.value.field == "proxy.port"
    assert "(from PODMGR_PROXY_PORT)" in caught.value.message


IDLE = "idle_timeout_seconds"


@pytest.mark.parametrize(
    ("data", "field", "meant"),
    [
        ({"limits": {"idle_timout_seconds": 6}}, "limits.idle_timout_seconds", IDLE),
        ({"idle_timout_seconds": 60}, "idle_timout_seconds", IDLE),
        ({"limit": {}}, "limit", "limits"),
        ({"proxy": {"prot": 8001}}, "proxy.prot", "port"),
        ({"upstreams": [{"name": "pod", "kindd": "pod"}]}, "upstreams.0.kindd", "kind"),
    ],
)  # fmt: skip
def test_a_misspelt_field_gets_did_you_mean(
    data: dict[str, object], field: str, meant: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(data, environ={})
    assert caught.value.field == field
    assert f"did you mean {meant!r}?" in caught.value.message
    assert "Extra inputs" not in caught.value.message


def test_a_field_nothing_resembles_lists_what_the_section_has() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"limits": {"zzzzzz": 1}}, environ={})
    assert "did you mean" not in caught.value.message
    assert (
        "idle_timeout_seconds" in caught.value.message and "runtime_seconds" in caught.value.message
    )


def test_the_command_exits_2_naming_variable_and_field_without_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PODMGR_RUNTIME_SECONDS": "1h"}
    env.pop("PODMGR_CONFIG", None)
    run = subprocess.run(
        [sys.executable, "-m", "podmgr", "config", "validate"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "limits.runtime_seconds" in run.stderr and "PODMGR_RUNTIME_SECONDS" in run.stderr
    assert "Traceback" not in run.stderr
