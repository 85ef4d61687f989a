"""Per-account request budgets in fixed windows, and the `RateLimit` headers that report them.

RunPod REST API v2 (openapi.json, headers `RateLimit` / `RateLimit-Policy`, schemas
`RateLimitHeader` / `RateLimitPolicyHeader`, response `TooManyRequestsError`): every answer
to an authenticated request carries `RateLimit: "minute";r=<remaining>;t=<seconds to
reset>, "hour";..., "day";...` and `RateLimit-Policy: "minute";q=60;w=60, "hour";q=3000;
w=3600, "day";q=50000;w=86400` (the document's example policy, the default here); a caller
over its budget gets 429 with `Retry-After` "per the exceeded window" and a problem body
"rate limit exceeded for the minute window". The limit is "per-user"
(TooManyRequestsError): the simulator has one account, so every key it accepts (read-only
and pod-scoped keys included) spends one budget.

Windows are fixed and aligned to the clock (`now // w`): whether RunPod's are fixed or
sliding is undocumented. A refused request does not spend budget (undocumented too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["DEFAULT_POLICY", "WINDOW_SECONDS", "RateLimiter", "Verdict", "parse_policy"]

# Window name -> its length in seconds (RateLimitPolicyHeader: `w`).
WINDOW_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# The document's example policy (RateLimitPolicyHeader example).
DEFAULT_POLICY: tuple[tuple[str, int], ...] = (("minute", 60), ("hour", 3000), ("day", 50000))


def parse_policy(text: str) -> tuple[tuple[str, int], ...]:
    """ "minute=60,hour=3000,day=50000" -> (("minute", 60), ...); ValueError when malformed.

    Windows left out keep the document's quota; each quota must be a whole number >= 1.
    """
    quotas = dict(DEFAULT_POLICY)
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or name not in WINDOW_SECONDS:
            raise ValueError(f"{item!r}: expected minute=N, hour=N or day=N")
        if not raw.strip().isdigit() or int(raw) < 1:
            raise ValueError(f"{item!r}: the quota must be a whole number >= 1")
        quotas[name] = int(raw)
    return tuple((name, quotas[name]) for name in WINDOW_SECONDS)


@dataclass(frozen=True)
class Verdict:
    """One request's outcome: allowed or not, the headers, and Retry-After when refused."""

    allowed: bool
    headers: dict[str, str]
    retry_after: int = 0
    window: str = ""


@dataclass
class RateLimiter:
    """Fixed-window counters of one account; `admit` spends one request when allowed."""

    policy: Sequence[tuple[str, int]] = DEFAULT_POLICY
    _counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (index, used)

    def _used(self, name: str, now: float) -> tuple[int, int]:
        """(used in the current window, seconds until it resets)."""
        width = WINDOW_SECONDS[name]
        index = int(now // width)
        seen_index, used = self._counts.get(name, (index, 0))
        if seen_index != index:
            used = 0
        reset = max(1, math.ceil((index + 1) * width - now))
        return used, reset

    def _headers(self, now: float) -> dict[str, str]:
        remaining = []
        for name, quota in self.policy:
            used, reset = self._used(name, now)
            remaining.append(f'"{name}";r={max(0, quota - used)};t={reset}')
        policy = [f'"{name}";q={quota};w={WINDOW_SECONDS[name]}' for name, quota in self.policy]
        return {"RateLimit": ", ".join(remaining), "RateLimit-Policy": ", ".join(policy)}

    def admit(self, now: float) -> Verdict:
        """Spend one request if every window has budget left; else refuse it."""
        exhausted = [
            (reset, name)
            for name, quota in self.policy
            for used, reset in [self._used(name, now)]
            if used >= quota
        ]
        if exhausted:
            reset, name = max(exhausted)  # wait for the last of the exhausted windows
            return Verdict(False, self._headers(now), reset, name)
        for name, _quota in self.policy:
            used, _reset = self._used(name, now)
            self._counts[name] = (int(now // WINDOW_SECONDS[name]), used + 1)
        return Verdict(True, self._headers(now))

    def headers(self, now: float) -> dict[str, str]:
        """The headers as they stand, spending nothing."""
        return self._headers(now)
