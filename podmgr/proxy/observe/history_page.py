"""`GET /dashboard/history`: the last sessions with their cost, from the history file.

Plain text for curl, an HTML table for a browser. Lines of the file that do not parse are
named in a note, never an error page (podmgr/history.py skips them). With several pods
(config `pods`) each GPU comes after its pod's name (`chat NVIDIA RTX A6000`).
"""

from __future__ import annotations

import html
import time

from podmgr.history import SessionRecord

__all__ = ["LAST_SESSIONS", "render_history_html", "render_history_text"]

LAST_SESSIONS = 50


def _rows(records: list[SessionRecord]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for record in reversed(records[-LAST_SESSIONS:]):
        start = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.started_at))
        hours = (record.ended_at - record.started_at) / 3600
        gpus = ", ".join(sorted({pod.label for pod in record.pods})) or "-"  # name + GPU
        cost = f"${record.cost_usd:.4f}"
        rows.append(
            (start, record.session_id or "-", f"{hours:.2f} h", record.ended_why, gpus, cost)
        )
    return rows


def _total(records: list[SessionRecord]) -> str:
    shown = records[-LAST_SESSIONS:]
    return f"{len(shown)} sessions, ${sum(r.cost_usd for r in shown):.4f}"


def render_history_text(records: list[SessionRecord], problems: list[str]) -> str:
    lines = ["podmgr sessions (newest first)", "=" * 30]
    lines += ["  ".join(row) for row in _rows(records)] or ["no ended session yet"]
    lines.append(_total(records))
    lines += [f"note: {problem}" for problem in problems]
    return "\n".join(lines) + "\n"


def render_history_html(records: list[SessionRecord], problems: list[str], style: str) -> str:
    esc = html.escape
    head = (
        "<tr><th>Started</th><th>Session</th><th>Length</th><th>Ended by</th><th>GPU</th>"
        "<th>Cost</th></tr>"
    )
    body = "".join(
        "<tr>" + "".join(f"<td class=num>{esc(cell)}</td>" for cell in row) + "</tr>"
        for row in _rows(records)
    )
    table = f"<table>{head}{body}</table>" if body else "<p>No ended session yet.</p>"
    notes = "".join(f"<p class=note>{esc(problem)}</p>" for problem in problems)
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>podmgr sessions</title>"
        f"<style>{style}</style></head><body><h1>Sessions</h1>"
        f'<nav><a href="/dashboard">dashboard</a></nav>{table}<p>{esc(_total(records))}</p>'
        f"{notes}</body></html>"
    )
