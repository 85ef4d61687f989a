"""`Applier` handles every action: mypy proves it, so a new action without a handler fails
the type check instead of raising TypeError in the middle of a pass (issue 9)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

UNHANDLED = '''

@dataclass(frozen=True)
class Unhandled:
    """An action no handler knows."""

    def describe(self) -> str:
        return "nothing anyone handles"
'''


def _mypy(package_root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
         "--cache-dir", str(package_root / ".mypy_cache"), "podmgr/watchdog/apply.py"],
        cwd=package_root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.timeout(360)  # a cold mypy run on a busy machine
def test_an_action_without_a_handler_fails_the_type_check(tmp_path: Path) -> None:
    shutil.copytree(
        REPO / "podmgr", tmp_path / "podmgr", ignore=shutil.ignore_patterns("__pycache__")
    )
    actions = tmp_path / "podmgr" / "watchdog" / "actions.py"
    source = actions.read_text()
    head, union = source.split("\nAction = (", 1)
    assert "    | Noop\n)" in union
    actions.write_text(
        head
        + UNHANDLED
        + "\n\nAction = ("
        + union.replace("| Noop\n)", "| Noop\n    | Unhandled\n)")
    )
    checked = _mypy(tmp_path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "apply.py" in checked.stdout and '"Unhandled"' in checked.stdout, checked.stdout
