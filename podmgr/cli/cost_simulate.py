"""`podmgr cost simulate`: what a setting would have cost on a trace of requests."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    pass
