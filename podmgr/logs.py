"""Structured logging for every podmgr process: structlog, JSON lines when not on a TTY.

Logs go to stderr so that stdout stays for what a command prints for people and scripts,
or, for the commands a person reads (`up`, `watchdog`, `shutdown` without `--verbose`), to
a log file as JSON lines (`log_file`, `.podmgr/watchdog.log` beside the state): issue 22
found raw JSON lines mixed into `podmgr up`'s output. The file is kept short: past
`MAX_LOG_BYTES` at a process's start it becomes `<name>.1` (one generation kept).
Secrets never reach a log: `redact_processor` masks values of keys that name one, and
callers pass pod ids, never keys.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

__all__ = ["MAX_LOG_BYTES", "configure_logging", "get_logger", "log_file"]

MAX_LOG_BYTES = 5_000_000
_SECRET_WORDS = ("key", "token", "secret", "password", "authorization")


def redact_processor(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask any field whose name says it holds a secret."""
    for name in list(event):
        if any(word in name.lower() for word in _SECRET_WORDS) and event[name]:
            event[name] = "***"
    return event


def log_file(state_path: Path) -> Path:
    """Where the watchdog's commands log when they do not log to the terminal."""
    return state_path.parent / "watchdog.log"


def _open_log(path: Path) -> TextIO:
    """The log file for appending (0600: logs hold pod ids and URLs), rotated once when big."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "a", buffering=1, encoding="utf-8")


def configure_logging(
    level: str = "info", json_output: bool | None = None, file: Path | None = None
) -> None:
    """Set up structlog once per process; JSON unless stderr is a terminal. With `file`,
    JSON lines are appended there and nothing reaches the terminal."""
    stream = sys.stderr if file is None else _open_log(file)
    if file is not None:
        as_json = True
    else:
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
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    """A bound structlog logger tagged with the component name."""
    return structlog.get_logger(component=name)
