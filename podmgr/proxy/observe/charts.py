"""Inline SVG charts for the dashboard, drawn on the server (no JavaScript, nothing fetched).

Pure functions from numbers to SVG text. Each chart is one `<svg>` with a title, axes
labels with units, and `data-points` = how many values it drew (0 shows "no data yet"),
which the browser test reads. Text is escaped; sizes are fixed so a page of eight charts
stays a few tens of kilobytes.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Sequence

__all__ = ["Line", "bar_chart", "gauge", "line_chart", "stacked_bars"]

WIDTH, HEIGHT = 520, 170
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 26, 24
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
PALETTE = ("#2f6fdf", "#e07b00", "#1f8a4c", "#9b3fc4", "#b3261e", "#56606b")

Line = tuple[str, str, Sequence[tuple[float, float | None]]]  # label, colour, (x, y) points


def _x(at: float, x0: float, x1: float) -> float:
    return LEFT + (at - x0) / max(x1 - x0, 1e-9) * PLOT_W


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H - value / top * PLOT_H if top > 0 else TOP + PLOT_H


def _nice_top(value: float) -> float:
    """A round number at or above `value` for the y axis."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10.0**exponent
        if top >= value * (1 - 1e-9):
            return top
    return 10.0 ** (exponent + 1)


def _clock(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


def _frame(title: str, unit: str, x0: float, x1: float, top: float, count: int, body: str,
           fmt: Callable[[float], str]) -> str:  # fmt: skip
    esc = html.escape
    axes = (
        f'<line x1="{LEFT}" y1="{TOP + PLOT_H}" x2="{LEFT + PLOT_W}" y2="{TOP + PLOT_H}" '
        'stroke="#8a939c"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + PLOT_H}" stroke="#8a939c"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT + PLOT_W}" y2="{TOP}" stroke="#e3e6ea"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{esc(fmt(top))}</text>'
        f'<text x="{LEFT - 4}" y="{TOP + PLOT_H}" text-anchor="end">0</text>'
        f'<text x="{LEFT}" y="{HEIGHT - 6}">{_clock(x0)}</text>'
        f'<text x="{LEFT + PLOT_W}" y="{HEIGHT - 6}" text-anchor="end">{_clock(x1)}</text>'
    )
    empty = (
        f'<text x="{LEFT + PLOT_W / 2}" y="{TOP + PLOT_H / 2}" text-anchor="middle" '
        'fill="#8a939c" font-size="14">no data yet</text>'
        if count == 0
        else ""
    )
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" data-points="{count}" '
        f'role="img" aria-label="{esc(title)}" font-size="11" font-family="sans-serif" '
        f'fill="#1d232b"><rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>'
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="600">{esc(title)} '
        f'<tspan font-weight="400" fill="#56606b">({esc(unit)})</tspan></text>'
        f"{axes}{body}{empty}</svg>"
    )


def _legend(labels: Sequence[tuple[str, str]]) -> str:
    """Colour keys, right-aligned on the title's line."""
    widths = [22 + 7 * len(label) for label, _ in labels]
    x = WIDTH - RIGHT - sum(widths)
    parts = []
    for (label, colour), width in zip(labels, widths, strict=True):
        parts.append(
            f'<rect x="{x}" y="8" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="17">{html.escape(label)}</text>'
        )
        x += width
    return "".join(parts)


def line_chart(
    title: str,
    unit: str,
    x0: float,
    x1: float,
    lines: Sequence[Line],
    *,
    top: float | None = None,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """Lines over time; a gap (None) breaks a line; single points get a dot."""
    values = [y for _, _, points in lines for _, y in points if y is not None]
    top = top if top is not None else _nice_top(max(values, default=0.0))
    body = []
    for _label, colour, points in lines:
        runs: list[list[tuple[float, float]]] = [[]]
        for at, value in points:
            if value is None:
                runs.append([])
            else:
                runs[-1].append((_x(at, x0, x1), _y(min(value, top), top)))
        for run in runs:
            if len(run) == 1:
                body.append(
                    f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2.5" fill="{colour}"/>'
                )
            elif run:
                path = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
                body.append(
                    f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
                )
    if len(lines) > 1:
        body.append(_legend([(label, colour) for label, colour, _ in lines]))
    return _frame(title, unit, x0, x1, top, len(values), "".join(body), fmt)


def bar_chart(
    title: str, unit: str, x0: float, x1: float, slot: float, bars: Sequence[tuple[float, float]]
) -> str:
    """One bar per slot of `slot` seconds starting at each x."""
    top = _nice_top(max((v for _, v in bars), default=0.0))
    width = max(1.0, slot / max(x1 - x0, 1e-9) * PLOT_W - 1)
    body = "".join(
        f'<rect x="{_x(at, x0, x1):.1f}" y="{_y(v, top):.1f}" width="{width:.1f}" '
        f'height="{TOP + PLOT_H - _y(v, top):.1f}" fill="{PALETTE[0]}"/>'
        for at, v in bars
        if v > 0
    )
    return _frame(
        title, unit, x0, x1, top, sum(1 for _, v in bars if v > 0), body, lambda v: f"{v:g}"
    )


def stacked_bars(
    title: str,
    unit: str,
    x0: float,
    x1: float,
    slot: float,
    stacks: Sequence[tuple[float, dict[str, int]]],
) -> str:
    """Per slot, one bar split by name (e.g. which upstream answered), with a legend."""
    names = sorted({name for _, parts in stacks for name in parts})
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    top = _nice_top(max((sum(parts.values()) for _, parts in stacks), default=0))
    width = max(1.0, slot / max(x1 - x0, 1e-9) * PLOT_W - 1)
    body = []
    for at, parts in stacks:
        base = 0.0
        for name in names:
            count = parts.get(name, 0)
            if count:
                y_top, y_base = _y(base + count, top), _y(base, top)
                body.append(
                    f'<rect x="{_x(at, x0, x1):.1f}" y="{y_top:.1f}" width="{width:.1f}" '
                    f'height="{y_base - y_top:.1f}" fill="{colours[name]}"/>'
                )
                base += count
    body.append(_legend([(name, colours[name]) for name in names]))
    count = sum(1 for _, parts in stacks if parts)
    return _frame(title, unit, x0, x1, top, count, "".join(body), lambda v: f"{v:g}")


def gauge(title: str, value: float, limit: float | None, value_text: str, limit_text: str) -> str:
    """A horizontal bar: `value` against `limit` (green, orange past 75 %, red past 90 %)."""
    esc = html.escape
    height = 70
    share = min(1.0, value / limit) if limit else 0.0
    colour = "#1f8a4c" if share < 0.75 else "#e07b00" if share < 0.9 else "#b3261e"
    bar_w = WIDTH - LEFT - RIGHT
    fill = (
        f'<rect x="{LEFT}" y="28" width="{share * bar_w:.1f}" height="18" fill="{colour}"/>'
        if limit
        else ""
    )
    return (
        f'<svg class="chart gauge" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" data-points="{1 if limit else 0}" '
        f'role="img" aria-label="{esc(title)}" font-size="11" font-family="sans-serif" '
        f'fill="#1d232b"><rect width="{WIDTH}" height="{height}" fill="#fff"/>'
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="600">{esc(title)}</text>'
        f'<rect x="{LEFT}" y="28" width="{bar_w}" height="18" fill="#e3e6ea"/>{fill}'
        f'<text x="{LEFT}" y="62">{esc(value_text)}</text>'
        f'<text x="{WIDTH - RIGHT}" y="62" text-anchor="end">{esc(limit_text)}</text></svg>'
    )
