"""`podmgr cache stats|clear`: look at or empty the proxy's answer cache.

Both read the cache directory directly (its SQLite index is shared safely between
processes), so they work while the proxy runs; a running proxy notices a clear within
about a second.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("cache", help="show or clear the proxy's answer cache")
    actions = parser.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    for name, handler, text in (
        ("stats", run_stats, "entries, bytes and limits of the cache"),
        ("clear", run_clear, "remove every cached answer"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--config", help="path to pod_config.json")
        action.add_argument("--json", action="store_true", help="machine-readable output")
        action.set_defaults(handler=handler)


def _open(args: argparse.Namespace) -> Any:
    from podmgr.config import load_config
    from podmgr.proxy.cache.db import CacheDB

    config = load_config(args.config)
    return config, CacheDB(config.cache_path)


def run_stats(args: argparse.Namespace) -> int:
    import json

    config, db = _open(args)
    try:
        totals = db.totals()
    finally:
        db.close()
    info = {
        "path": str(config.cache_path),
        "entries": totals.entries,
        "bytes": totals.bytes,
        "max_entries": config.cache.max_entries,
        "max_bytes": config.cache.max_bytes,
        "mode": config.cache.mode,
    }
    if args.json:
        print(json.dumps(info))
    else:
        print(f"cache: {info['path']} (mode {info['mode']})")
        print(f"  entries: {totals.entries} of {config.cache.max_entries}")
        print(f"  bytes:   {totals.bytes} of {config.cache.max_bytes}")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    import json

    config, db = _open(args)
    try:
        removed = db.clear()
    finally:
        db.close()
    if args.json:
        print(json.dumps({"removed_entries": removed.entries, "removed_bytes": removed.bytes}))
    else:
        print(f"cleared {config.cache_path}: {removed.entries} entries, {removed.bytes} bytes")
    return 0
