"""What every command shares on its command line: `--config` in either place, and how a hint
names the `podmgr` command.

`--config PATH` may come before the command (`podmgr --config X status`) or after it
(`podmgr status --config X`). The top-level parser stores the first as `config_before`;
`settle_config` folds it into `args.config` once parsing is done. Which commands read a
config is not listed by hand: `mark_config_options` walks the finished parser, so a command
added later with its own `--config` is covered, and one without (demo, sim, config schema,
completion) gets a hidden `--config` that ends in exit 2 naming it, wherever it was put.

Hints the product prints (`podmgr status`, `podmgr shutdown`, ...) must work when pasted:
`podmgr_command` says `podmgr` when that name on the PATH is this very install, else the
path of this install's script (`.venv/bin/podmgr` after `make run` without activating).
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import shutil
import sys
from pathlib import Path

from podmgr.errors import ConfigError

__all__ = [
    "CONFIG_HELP",
    "hint",
    "leaf_parsers",
    "mark_config_options",
    "podmgr_command",
    "settle_config",
]

CONFIG_HELP = "path to pod_config.json (may also come before the command)"


def leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of the commands that run (`status`, `config validate`, ...), in order."""
    leaves: list[argparse.ArgumentParser] = []
    seen: set[int] = set()
    for action in parser._actions:  # argparse has no public way to list subcommands
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in action.choices.values():
            if id(child) in seen:  # an alias names the same parser twice
                continue
            seen.add(id(child))
            nested = leaf_parsers(child)
            leaves.extend(nested or [child])
    return leaves


def mark_config_options(parser: argparse.ArgumentParser) -> None:
    """Add the top-level `--config` and mark each command as reading a config or not; the
    top-level help names the commands that read none, as the walk found them."""
    refusing: list[str] = []
    for leaf in leaf_parsers(parser):
        action = leaf._option_string_actions.get("--config")
        if action is not None and action.dest == "config":
            if type(action) is argparse._StoreAction:  # not `cost simulate`'s repeatable one
                action.help = CONFIG_HELP
            leaf.set_defaults(reads_config=True)
        elif action is None:
            leaf.add_argument("--config", dest="config_refused", help=argparse.SUPPRESS)
            refusing.append(leaf.prog.removeprefix(f"{parser.prog} "))
        leaf.set_defaults(command_prog=leaf.prog)
    parser.add_argument(
        "--config",
        dest="config_before",
        metavar="PATH",
        help="path to pod_config.json, for every command that reads one (also accepted after "
        f"the command); {', '.join(refusing) or 'none'} read none and refuse it (exit 2)",
    )
    parser.set_defaults(reads_config=False, config=None, config_refused=None)


def settle_config(args: argparse.Namespace) -> None:
    """`args.config` from either place; ConfigError (exit 2) when it cannot be honoured."""
    before = getattr(args, "config_before", None)
    refused = getattr(args, "config_refused", None)
    if not getattr(args, "reads_config", False):
        if before is not None or refused is not None:
            prog = getattr(args, "command_prog", "podmgr")
            raise ConfigError(f"`{prog}` reads no config file; leave --config out", "--config")
        return
    if before is None:
        return
    after = args.config
    if isinstance(after, list):  # `cost simulate --config A --config B` compares several
        args.config = [before, *after]
    elif after is None or after == before:
        args.config = before
    else:
        raise ConfigError(
            f"given twice ({before} before the command, {after} after it); give it once",
            field="--config",
        )


@functools.cache
def podmgr_command() -> str:
    """How a hint names this podmgr: `podmgr` if the PATH finds this install, else its path."""
    script = Path(sys.executable).parent / "podmgr"
    found = shutil.which("podmgr")
    if not script.exists():  # an interpreter without the console script beside it
        return f"{sys.executable} -m podmgr"
    if found is not None and Path(found).resolve() == script.resolve():
        return "podmgr"
    try:
        relative = script.relative_to(Path.cwd())
    except ValueError:
        return str(script)
    return str(relative) if relative.parts[0].startswith(".") else f".{os.sep}{relative}"


def hint(words: str, config: str | None = None) -> str:
    """A command to paste: `podmgr <words>`, with `--config PATH` when one was given."""
    flag = f" --config {shlex.quote(config)}" if config else ""
    return f"{podmgr_command()} {words}{flag}"
