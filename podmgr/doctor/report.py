"""What `podmgr doctor` found: one `Step` per line, the `Report` they make, and the `Meter`
of dollars billed so far.

The meter is podmgr's own figure, not RunPod's: each pod's `cost` (USD/h actually billed,
RunPod OpenAPI v2 Pod.cost) times the seconds from its create until doctor terminated it or
saw it gone. RunPod charges per second (docs accounts-billing/billing), so this is what it
bills, give or take the time between two of doctor's looks at the pod.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podmgr.errors import PodmgrError

__all__ = ["Meter", "PodUse", "Report", "Step"]


@dataclass(frozen=True)
class Step:
    """One line of the report: passed or not, what was found, when, and dollars so far."""

    name: str
    ok: bool
    found: str
    seconds: float
    billed_usd: float

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "ok": self.ok,
            "found": self.found,
            "seconds": round(self.seconds, 1),
            "billed_usd": round(self.billed_usd, 6),
        }


@dataclass
class PodUse:
    """One pod doctor created: its rate and the time it was alive (epoch seconds)."""

    pod_id: str
    rate_per_hr: float
    created_at: float
    ended_at: float | None = None

    def cost(self, now: float) -> float:
        end = self.ended_at if self.ended_at is not None else now
        return self.rate_per_hr * max(0.0, end - self.created_at) / 3600

    def seconds(self, now: float) -> float:
        return max(0.0, (self.ended_at if self.ended_at is not None else now) - self.created_at)


@dataclass
class Meter:
    """podmgr's figure of what doctor's pods billed (see the module docstring)."""

    pods: dict[str, PodUse] = field(default_factory=dict)

    def created(self, pod_id: str, rate_per_hr: float, at: float) -> None:
        self.pods[pod_id] = PodUse(pod_id, rate_per_hr, at)

    def rate_seen(self, pod_id: str, rate_per_hr: float) -> None:
        """RunPod's own `cost` for the pod, once it reports one (0 while not billing)."""
        use = self.pods.get(pod_id)
        if use is not None and rate_per_hr > 0:
            use.rate_per_hr = rate_per_hr

    def ended(self, pod_id: str, at: float) -> None:
        use = self.pods.get(pod_id)
        if use is not None and use.ended_at is None:
            use.ended_at = at

    def alive(self) -> list[str]:
        """Pods not yet seen ended: the ones a clean-up must terminate."""
        return [use.pod_id for use in self.pods.values() if use.ended_at is None]

    def billed(self, now: float) -> float:
        return sum(use.cost(now) for use in self.pods.values())


@dataclass
class Report:
    """Every step in order; `error` is what stopped the run early, if anything did."""

    steps: list[Step] = field(default_factory=list)
    error: PodmgrError | None = None
    pods: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The error's own code; else 1 when a step failed; else 0."""
        if self.error is not None:
            return self.error.exit_code
        return 0 if all(step.ok for step in self.steps) else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "error": self.error.message if self.error is not None else None,
            "pods": list(self.pods),
            "steps": [step.to_json() for step in self.steps],
        }
