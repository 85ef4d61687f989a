"""Request traces for `podmgr cost simulate`: CSV with a header row, or JSON lines.

Keys (issue 14): `timestamp` (required; ISO 8601, a time without a zone is UTC, or Unix
seconds), `model`, `prompt_tokens`, `completion_tokens` (optional). `model` routes each
request to the pod serving that model when the config has several (`pods`, issue 23:
podmgr/whatif/pods.py); a one-pod config's pod answers every line, as before. A line that
does not parse is an error naming the file, the line and the field (exit 2); the trace is
read whole before anything is simulated, so a bad line never leaves a partial result.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podmgr.errors import ConfigError

__all__ = ["TraceRequest", "parse_timestamp", "read_trace"]


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request of the trace."""

    at: float
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_known: bool = False


def parse_timestamp(raw: object) -> float:
    """Unix seconds from Unix seconds (number or text) or ISO 8601 (naive = UTC)."""
    if isinstance(raw, bool):
        raise ValueError("not a time")
    if isinstance(raw, int | float):
        return float(raw)
    text = str(raw).strip()
    try:
        return float(text)
    except ValueError:
        pass
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _tokens(raw: object, field: str) -> int:
    if raw is None or raw == "":
        return 0
    if isinstance(raw, bool):
        raise ValueError(f"{field}: not a whole number")
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ValueError(f"{field}: {raw!r} is not a whole number") from None
    if value < 0:
        raise ValueError(f"{field}: {value} is negative")
    return value


def _request(row: dict[str, Any]) -> TraceRequest:
    if row.get("timestamp") in (None, ""):
        raise ValueError("timestamp: missing")
    try:
        at = parse_timestamp(row["timestamp"])
    except (ValueError, OverflowError):
        raise ValueError(
            f"timestamp: {row['timestamp']!r} is neither ISO 8601 nor Unix seconds"
        ) from None
    model = row.get("model") or None
    prompt = _tokens(row.get("prompt_tokens"), "prompt_tokens")
    completion = _tokens(row.get("completion_tokens"), "completion_tokens")
    known = any(row.get(key) not in (None, "") for key in ("prompt_tokens", "completion_tokens"))
    return TraceRequest(at, None if model is None else str(model), prompt, completion, known)


def _rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for every data line, CSV or JSON lines by the first character."""
    first = text.lstrip()[:1]
    if first in ("{", ""):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ConfigError(f"{path}:{number}: not a JSON object ({error.msg})") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{number}: not a JSON object")
            rows.append((number, row))
        return rows
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "timestamp" not in reader.fieldnames:
        raise ConfigError(f"{path}:1: the header row has no `timestamp` column")
    result = []
    for row in reader:
        if None in row:  # more cells than the header has
            raise ConfigError(f"{path}:{reader.line_num}: more cells than the header row")
        result.append((reader.line_num, dict(row)))
    return result


def read_trace(path: Path) -> list[TraceRequest]:
    """Every request of the trace, by time; ConfigError (exit 2) naming a bad line."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"--trace {path}: {error.strerror}") from None
    requests = []
    for number, row in _rows(path, text):
        try:
            requests.append(_request(row))
        except ValueError as error:
            raise ConfigError(f"{path}:{number}: {error}") from None
    if not requests:
        raise ConfigError(f"--trace {path}: no requests in it")
    return sorted(requests, key=lambda request: request.at)
