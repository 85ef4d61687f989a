"""`podmgr history`: the sessions that ended, from the history file beside the state.

The records are written by the watchdog (podmgr/history.py); this module only reads and
prints them. Lines of the file that do not parse are reported on stderr, never fatal.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

__all__ = ["parse_since", "register"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(subparsers: Any) -> None:
    history = subparsers.add_parser("history", help="the sessions that ended, with their cost")
    history.add_argument("--config", help="path to pod_config.json")
    history.add_argument("--since", default="7d", help="how far back: 90s, 30m, 12h, 7d")
    history.add_argument("--json", action="store_true", help="one JSON object")
    history.set_defaults(handler=run_history)


def parse_since(text: str) -> float:
    """Seconds in '7d', '12h', '30m', '90s' (ConfigError naming --since otherwise)."""
    from podmgr.errors import ConfigError

    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match is None:
        raise ConfigError(f"--since {text!r}: expected a number and s, m, h or d (e.g. 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_history(args: argparse.Namespace) -> int:
    from podmgr.config import load_config
    from podmgr.history import history_path, read_history

    since = time.time() - parse_since(args.since)
    config = load_config(args.config)
    records, problems = read_history(history_path(config.state_path), since=since)
    for problem in problems:
        print(f"podmgr: history: {problem}", file=sys.stderr)
    if args.json:
        total = sum(record.cost_usd for record in records)
        sessions = [record.model_dump() for record in records]
        print(json.dumps({"sessions": sessions, "total_usd": round(total, 6)}, indent=2))
        return 0
    for record in records:
        start = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.started_at))
        gpus = ", ".join(pod.gpu_type_id for pod in record.pods) or "-"
        hours = (record.ended_at - record.started_at) / 3600
        print(f"{start}  {hours:6.2f} h  ${record.cost_usd:8.4f}  {record.end_reason}  {gpus}")
    print(f"{len(records)} sessions, ${sum(r.cost_usd for r in records):.4f}")
    return 0
