"""The documented cron and systemd setup share one key file: the steps README and
crontab.example give write it in a format systemd's EnvironmentFile reads, and the
crontab lines export what it holds to the pass they start (issue 9)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PASS_COMMAND = "/path/to/podmgr/.venv/bin/python"
# systemd.exec(5), EnvironmentFile=: assignments, blank lines and # or ; comments only.
SYSTEMD_LINE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*|[#;].*|")
CHILD = "exec python3 -c 'import os; print(os.environ.get(\"RUNPOD_API_KEY\"))'"


def _setup_steps(doc: Path) -> list[str]:
    """The shell commands a document gives for creating ~/.config/podmgr.env."""
    lines = (line.strip().lstrip("#").strip() for line in doc.read_text().splitlines())
    return [
        line
        for line in lines
        if line.startswith(("install ", "echo ")) and line.endswith("~/.config/podmgr.env")
    ]


def _cron_commands() -> list[str]:
    entries = [
        line
        for line in (REPO / "crontab.example").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return [entry.split(None, 5)[5] for entry in entries]


@pytest.mark.parametrize("doc", ["README.md", "crontab.example"])
def test_the_documented_key_file_is_one_systemd_and_cron_both_read(
    doc: str, tmp_path: Path
) -> None:
    if shutil.which("python3") is None:
        pytest.skip("no python3 on PATH for the child")
    steps = _setup_steps(REPO / doc)
    assert len(steps) == 2, steps
    (tmp_path / ".config").mkdir()
    env = {"HOME": str(tmp_path), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    subprocess.run(["sh", "-ec", "\n".join(steps)], env=env, check=True, timeout=30)
    key_file = tmp_path / ".config" / "podmgr.env"
    assert key_file.stat().st_mode & 0o077 == 0
    for line in key_file.read_text().splitlines():
        assert SYSTEMD_LINE.fullmatch(line), f"systemd's EnvironmentFile cannot read {line!r}"

    commands = _cron_commands()
    assert len(commands) == 2 and all(PASS_COMMAND in c for c in commands), commands
    for command in commands:
        loader = command.split(PASS_COMMAND)[0]
        child = subprocess.run(
            ["sh", "-c", loader + CHILD], env=env, capture_output=True, text=True, timeout=30
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "...", f"the pass did not see the key: {loader!r}"
