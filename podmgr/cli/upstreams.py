"""`podmgr upstreams test [NAME]`: check each configured upstream's `GET /models`.

Prints one line per upstream (status, latency, models or the reason) and exits 0 when all
pass, 3 when a key was rejected, 6 when one is unreachable (1 for any other failure). A pod
that is not running (down by design, as with `wake_on_request`, or still starting) is a
`down` line saying whether a request would wake it, and does not count in the exit code.
The work is podmgr/cli/upstream_check.py.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]

_SHOWN_MODELS = 8


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("upstreams", help="test the configured upstreams")
    actions = parser.add_subparsers(dest="upstreams_command", required=True, metavar="ACTION")
    action = actions.add_parser("test", help="GET /models on each upstream with its key")
    action.add_argument("name", nargs="?", help="only the upstream with this name")
    action.add_argument("--config", help="path to pod_config.json")
    action.add_argument("--json", action="store_true", help="machine-readable output")
    action.set_defaults(handler=run_test)


def _line(result: Any) -> str:
    where = result.url_host or "-"
    if result.down:
        return f"down  {result.name} ({result.kind}): {result.reason}"
    if not result.ok:
        status = f"HTTP {result.status}" if result.status else "no answer"
        return f"FAIL  {result.name} ({result.kind}, {where}): {status}: {result.reason}"
    models = result.models[:_SHOWN_MODELS]
    more = (
        f" (+{len(result.models) - len(models)} more)" if len(result.models) > len(models) else ""
    )
    latency = f"{result.latency_seconds * 1000:.0f} ms"
    shown = ", ".join(models) or "(none listed)"
    head = f"ok    {result.name} ({result.kind}, {where})"
    return f"{head}: HTTP {result.status}, {latency}: {shown}{more}"


def run_test(args: argparse.Namespace) -> int:
    import json

    from podmgr.cli.upstream_check import check_all, exit_code
    from podmgr.config import load_config
    from podmgr.errors import ConfigError

    config = load_config(args.config)
    try:
        results = check_all(config, args.name)
    except KeyError:
        names = ", ".join(spec.name for spec in config.upstreams)
        raise ConfigError(f"no upstream is called {args.name!r} (known: {names})") from None
    if args.json:
        print(json.dumps([result.to_json() for result in results]))
    else:
        for result in results:
            print(_line(result))
    return exit_code(results)
