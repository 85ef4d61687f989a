"""`podmgr sim`: placeholder until its issue lands (see the issue list)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sim", help="(not built yet)")
    parser.set_defaults(handler=run)


def run(_args: argparse.Namespace) -> int:
    print("podmgr sim is not built yet")
    return 1
