"""Hints name a command the user can paste: `podmgr` when the PATH finds this install,
else this install's script; the demo's port hint says how to change it through `make run`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from podmgr.cli.demo import DemoOptions, run_demo
from podmgr.cli.options import podmgr_command
from podmgr.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "podmgr"
needs_script = pytest.mark.skipif(not SCRIPT.exists(), reason="no console script beside python")


@pytest.fixture(autouse=True)
def fresh_answer() -> Iterator[None]:
    podmgr_command.cache_clear()
    yield
    podmgr_command.cache_clear()


@needs_script
def test_podmgr_when_the_path_finds_this_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{SCRIPT.parent}{os.pathsep}/usr/bin")
    assert podmgr_command() == "podmgr"


@needs_script
def test_the_scripts_path_when_the_path_does_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "bin"
    other.mkdir()
    (other / "podmgr").write_text("#!/bin/sh\n")
    (other / "podmgr").chmod(0o755)  # another podmgr first on the PATH: not ours
    monkeypatch.setenv("PATH", f"{other}{os.pathsep}/usr/bin")
    monkeypatch.chdir(tmp_path)
    assert podmgr_command() == str(SCRIPT)
    monkeypatch.chdir(SCRIPT.parent.parent.parent)  # the checkout holding .venv
    shown = podmgr_command.__wrapped__()
    assert Path(shown).resolve() == SCRIPT.resolve() and not Path(shown).is_absolute()


def test_the_demo_says_how_to_pick_another_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        options = DemoOptions(proxy_port=port, directory=str(tmp_path / "demo"))
        with pytest.raises(ConfigError) as caught:
            run_demo(options, emit=print, python=sys.executable)
    assert caught.value.field == "--proxy-port"
    assert "make run PROXY_PORT=" in caught.value.message
    assert " demo --proxy-port " in caught.value.message


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_passes_proxy_port_to_the_demo() -> None:
    run = subprocess.run(
        ["make", "-n", "-C", str(REPO), "run", "PROXY_PORT=8123"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "podmgr demo --proxy-port 8123" in run.stdout
