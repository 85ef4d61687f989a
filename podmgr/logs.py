"""Structured logging for every podmgr process: structlog, JSON lines when not on a TTY.

Logs go to stderr so that stdout stays for what a command prints for people and scripts.
Secrets never reach a log: `redact_processor` masks values of keys that name one, and
callers pass pod ids, never keys.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]

_SECRET_WORDS = ("key", "token", "secret", "password", "authorization")


def redact_processor(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask any field whose name says it holds a secret."""
    for name in list(event):
        if any(word in name.lower() for word in _SECRET_WORDS) and event[name]:
            event[name] = "***"
    return event


def configure_logging(level: str = "info", json_output: bool | None = None) -> None:
    """Set up structlog once per process; JSON unless stderr is a terminal."""
    as_json = not sys.stderr.isatty() if json_output is None else json_output
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_processor,
            # JSON logs carry the traceback as text; the console renderer prints its own.
            *([structlog.processors.format_exc_info] if as_json else []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    """A bound structlog logger tagged with the component name."""
    return structlog.get_logger(component=name)
