"""`podmgr completion bash|zsh`: print a shell completion script for every command and flag.

The script is generated from podmgr's own argparse parser by shtab, so it never lists a
command or flag that is not there; `--config` (and the other path flags) complete file
names. Install: `podmgr completion bash > ~/.local/share/bash-completion/completions/podmgr`
or, for zsh, write it as `_podmgr` in a directory of `$fpath`.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]

SHELLS = ("bash", "zsh")
# Flags whose value is a file or a directory: the shell offers paths for them.
PATH_FLAGS = frozenset({"--config", "--trace", "--dir", "--path"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print a completion script for podmgr. bash: `source <(podmgr completion "
        "bash)`, or save it in ~/.local/share/bash-completion/completions/podmgr. zsh: save "
        "`podmgr completion zsh` as _podmgr in a directory of $fpath.",
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    parser.set_defaults(handler=run)


def completion_script(shell: str) -> str:
    """The completion script for `shell`, generated from the full parser."""
    import shtab

    from podmgr.cli import build_parser

    parser = build_parser()
    _complete_paths(parser)
    script: str = shtab.complete(parser, shell=shell)
    return script


def _complete_paths(parser: argparse.ArgumentParser) -> None:
    import shtab

    from podmgr.cli.options import leaf_parsers

    for leaf in [parser, *leaf_parsers(parser)]:
        for action in leaf._actions:  # shtab reads an attribute it documents: `.complete`
            if PATH_FLAGS.intersection(action.option_strings):
                kind = shtab.DIRECTORY if "--dir" in action.option_strings else shtab.FILE
                action.complete = kind  # type: ignore[attr-defined]


def run(args: argparse.Namespace) -> int:
    print(completion_script(args.shell), end="")
    return 0
