"""The `podmgr` command: argument parsing, human output and exit codes; nothing else.

Each subcommand lives in its own module here and registers itself through
`register(subparsers)`; the work is done by the package it calls into or, when only one
command does it, by a module beside it: `status.py` (`podmgr status`), `catalog.py`
(`--refresh-catalog`), `demo.py` (`podmgr demo`), `upstream_check.py` (`podmgr upstreams
test`). Modules in this package import only the standard library at import time, so
`podmgr status` stays fast (the runpod SDK alone costs ~1.5 s to import). `options.py`
holds what every command shares: `--config` before or after the command, and how a printed
hint names `podmgr`; `completion.py` prints bash and zsh completion from this parser.

Exit codes come from `podmgr.errors`: 0 ok (also "another watchdog is running"),
1 unexpected, 2 bad config or input, 3 RunPod auth, 4 no capacity, 5 pod gone,
6 RunPod unreachable after retries, 7 pod never became ready, 8 crash loop,
9 state file, 10 proxy, 11 balance at $0, 12 the pod's log showed a configuration that
cannot serve, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from podmgr import __version__
from podmgr.cli import (
    cache,
    completion,
    config_cmd,
    doctor,
    gpus,
    init,
    logs,
    money,
    proxy,
    sim,
    upstreams,
    watchdog,
)
from podmgr.cli.options import mark_config_options, settle_config
from podmgr.errors import PodmgrError

__all__ = ["build_parser", "main"]

SUBCOMMAND_MODULES = (
    init, watchdog, gpus, logs, proxy, sim, config_cmd, cache, upstreams, money, doctor,
    completion,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podmgr",
        description="RunPod GPU pod lifecycle manager with a caching OpenAI-compatible proxy.",
    )
    parser.add_argument("--version", action="version", version=f"podmgr {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMAND_MODULES:
        module.register(subparsers)
    mark_config_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script, manage_pod.py and proxy_fastapi.py."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settle_config(args)
        code: int = args.handler(args)
    except PodmgrError as error:
        if error.exit_code != 0:
            print(f"podmgr: error: {error.message}", file=sys.stderr)
        else:
            print(f"podmgr: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("podmgr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left (`podmgr status | head -1`): what it wanted it has; no traceback,
        # and fd 1 goes to /dev/null so the interpreter's exit-time flush cannot fail again.
        watchdog.stdout_to_devnull()
        return 0
    return code
