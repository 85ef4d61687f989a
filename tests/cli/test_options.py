"""`--config` before or after the command, refused plainly where no config is read, and
the bash/zsh completion scripts generated from the same parser (issue 22)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from podmgr.cli import build_parser, main
from podmgr.cli.options import leaf_parsers, settle_config

NO_CONFIG = {"podmgr demo", "podmgr sim", "podmgr config schema", "podmgr completion"}


def parse(*argv: str) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    settle_config(args)
    return args


@pytest.mark.parametrize(
    "argv",
    [
        ("--config", "/x/c.json", "status"),
        ("status", "--config", "/x/c.json"),
        ("--config", "/x/c.json", "status", "--config", "/x/c.json"),
        ("--config", "/x/c.json", "config", "validate"),
        ("--config", "/x/c.json", "cache", "stats"),
        ("--config", "/x/c.json", "up", "--dry-run"),
    ],
)
def test_config_is_read_before_or_after_the_command(argv: tuple[str, ...]) -> None:
    assert parse(*argv).config == "/x/c.json"


def test_repeatable_config_keeps_the_one_before_first() -> None:
    args = parse("--config", "a.json", "cost", "simulate", "--trace", "t", "--config", "b.json")
    assert args.config == ["a.json", "b.json"]


def test_two_different_paths_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "a.json", "status", "--config", "b.json"]) == 2
    assert "--config: given twice" in capsys.readouterr().err


def test_every_command_either_reads_a_config_or_refuses_it() -> None:
    leaves = leaf_parsers(build_parser())
    reading = {leaf.prog for leaf in leaves if leaf.get_default("reads_config")}
    refusing = {leaf.prog for leaf in leaves if not leaf.get_default("reads_config")}
    assert refusing >= NO_CONFIG
    assert {"podmgr status", "podmgr up", "podmgr config validate", "podmgr logs"} <= reading
    for leaf in leaves:  # each one knows --config: it reads it, or answers exit 2 about it
        assert "--config" in leaf._option_string_actions, leaf.prog


@pytest.mark.parametrize(
    "argv",
    [
        ("--config", "c.json", "sim"),
        ("sim", "--config", "c.json"),
        ("--config", "c.json", "demo"),
        ("config", "schema", "--config", "c.json"),
    ],
)
def test_a_command_without_a_config_says_so(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "--config" in err and "reads no config file" in err


def test_help_says_where_config_goes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "also accepted after the command" in out
    for leaf in leaf_parsers(build_parser()):
        if not leaf.get_default("reads_config"):
            assert leaf.prog.removeprefix("podmgr ") in out.split("read none")[0]
    assert "demo, sim, config schema, completion read none" in out


def test_status_with_config_first_runs_as_a_process(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"watchdog": {"state_file": "st.json"}}')
    run = subprocess.run(
        [sys.executable, "-m", "podmgr", "--config", str(tmp_path / "c.json"), "status"],
        cwd="/", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"state:   {tmp_path / 'st.json'}" in run.stdout


def completion(shell: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "podmgr", "completion", shell],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout


BASH_COMPLETE = """
source "$1"
COMP_WORDS=($2)
COMP_CWORD=$3
COMP_LINE="$2"
COMP_POINT=${#COMP_LINE}
_shtab_podmgr
printf '%s\\n' "${COMPREPLY[@]}"
"""


def bash_completes(script: Path, line: str) -> list[str]:
    words = line.split(" ")
    run = subprocess.run(
        ["bash", "-c", BASH_COMPLETE, "bash", str(script), line, str(len(words) - 1)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_is_valid_and_completes_commands_and_flags(tmp_path: Path) -> None:
    script = tmp_path / "podmgr.bash"
    script.write_text(completion("bash"))
    assert subprocess.run(["bash", "-n", str(script)], timeout=60).returncode == 0
    assert {"status", "shutdown"} <= set(bash_completes(script, "podmgr s"))
    assert "config" in bash_completes(script, "podmgr co")
    assert {"validate", "schema"} <= set(bash_completes(script, "podmgr config "))
    assert "--live" in bash_completes(script, "podmgr status --l")
    assert "--config" in bash_completes(script, "podmgr --c")


def test_zsh_completion_names_every_command(tmp_path: Path) -> None:
    script = completion("zsh")
    assert script.startswith("#compdef podmgr")
    for command in ("status", "up", "shutdown", "demo", "completion", "validate"):
        assert command in script
    if shutil.which("zsh"):
        (tmp_path / "_podmgr").write_text(script)
        assert subprocess.run(["zsh", "-n", str(tmp_path / "_podmgr")], timeout=60).returncode == 0


def test_an_unknown_shell_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["completion", "fish"])
    assert caught.value.code == 2


def test_sim_prints_the_keys_it_accepts() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "podmgr", "sim", "--port", "0", "--api-key", "k-one",
         "--api-key", "k-two", "--read-only-key", "k-ro"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().rstrip() for _ in range(5)]
    finally:
        process.terminate()
        process.wait(timeout=60)
        if process.stdout is not None:
            process.stdout.close()
    assert lines[3] == "RUNPOD_API_KEY=k-one"
    assert lines[4] == "# also accepted: k-two, k-ro (read-only)"
