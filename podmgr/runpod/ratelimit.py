"""RunPod's rate limit as its answers state it, and the pause podmgr takes before a 429.

Every answer to an authenticated v2 request carries `RateLimit: "minute";r=12;t=30,
"hour";r=2800;t=1812, "day";r=49500;t=45012` (remaining requests `r`, seconds until the
window resets `t`) and `RateLimit-Policy` (quota `q`, window `w`; the document's example:
60 a minute, 3,000 an hour, 50,000 a day). RunPod OpenAPI v2, components.headers and
components.responses.TooManyRequestsError; the limit is per user, so every podmgr
process (passes, `podmgr up`, the proxy's wake) and every guard in a pod spend one budget.

`pause_before_next` decides (pure) how long to wait before the next call: when a window
has `RESERVE` or fewer calls left, wait until it resets (at most `max_pause`), so that a
guard's terminate, which must never be refused, still finds room.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RESERVE", "Window", "parse_rate_limit", "pause_before_next", "retry_after_seconds"]

# Calls left in a window below which podmgr waits for it to reset: room for the guards'
# and the proxy's calls that cannot wait (a terminate at a deadline).
RESERVE = 3
_MEMBER = re.compile(r'"?(?P<name>[A-Za-z]+)"?\s*((?:;\s*[a-z]+\s*=\s*[0-9.]+\s*)*)')
_PARAM = re.compile(r";\s*([a-z]+)\s*=\s*([0-9.]+)")


@dataclass(frozen=True)
class Window:
    """One member of `RateLimit`: `remaining` calls, `reset` seconds from the answer."""

    name: str
    remaining: float
    reset: float


def parse_rate_limit(header: str | None) -> list[Window]:
    """The windows of a `RateLimit` header; a member that does not parse is skipped."""
    windows: list[Window] = []
    for member in (header or "").split(","):
        match = _MEMBER.match(member.strip())
        if match is None:
            continue
        params = dict(_PARAM.findall(member))
        if "r" in params and "t" in params:
            windows.append(Window(match["name"], float(params["r"]), float(params["t"])))
    return windows


def pause_before_next(windows: list[Window], max_pause: float) -> float:
    """Seconds to wait before the next call so as not to run a window dry (0: go on)."""
    pauses = [w.reset for w in windows if w.remaining <= RESERVE and w.reset > 0]
    return min(max(pauses), max_pause) if pauses else 0.0


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds (the document: an integer); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)
