"""The actions `plan()` can decide on: one frozen dataclass each, so mypy checks `apply`.

Each action says what it will do in one line (`describe()`), which is all `--dry-run`
prints. Actions carry the values plan computed (deadline, reason, GPU list) so that apply
never decides anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AbandonPod",
    "Action",
    "AdoptPod",
    "CreatePod",
    "EndReason",
    "EndSession",
    "ForgetCreate",
    "ForgetPod",
    "MarkReady",
    "Noop",
    "NoteLog",
    "PodProgress",
    "RestartPod",
    "ResumePreempted",
    "StartProxy",
    "StartSession",
    "StopProxy",
    "TerminatePod",
]

# An end reason is a row of the table in podmgr/rules.py (a new limit adds a row there).
EndReason = str


@dataclass(frozen=True)
class StartSession:
    """A person asked for the pod (first run, --start, up, demo): open a session."""

    started_at: float
    deadline: float
    why: str

    def describe(self) -> str:
        return f"start a session ({self.why}), deadline in {self.deadline - self.started_at:.0f}s"


@dataclass(frozen=True)
class EndSession:
    """A limit was reached or a person asked: the session is over until the next `up`."""

    reason: EndReason
    detail: str = ""

    def describe(self) -> str:
        return f"end the session: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class CreatePod:
    """Create a pod, trying the GPU types in order on capacity errors."""

    gpu_type_ids: tuple[str, ...]
    replaces_lost_pod: bool = False
    spot: bool = False  # an interruptible pod (config `interruptible`)

    def describe(self) -> str:
        again = " (counts as a restart)" if self.replaces_lost_pod else ""
        kind = "spot pod" if self.spot else "pod"
        return f"create a {kind} on {' / '.join(self.gpu_type_ids)}{again}"


@dataclass(frozen=True)
class NoteLog:
    """What the pod's new log lines said: of its guard (podmgr/guard/check.py: `confirmed`
    True or False, None when not seen), its phase (podmgr/watchdog/podlog.py), and where
    the log was read up to and when."""

    pod_id: str
    confirmed: bool | None
    why: str
    phases: tuple[str, ...]
    cursor: str | None
    read_at: float
    elapsed: float = 0.0  # since the pod's create or restart

    @property
    def phase(self) -> str | None:
        return self.phases[-1] if self.phases else None

    def describe(self) -> str:
        if self.confirmed is None:
            return f"pod {self.pod_id}: log read ({self.phase or 'no new phase'})"
        said = "confirmed" if self.confirmed else "NOT running"
        return f"pod {self.pod_id}: guard {said}: {self.why}"


@dataclass(frozen=True)
class PodProgress:
    """The starting pod is not serving yet: record its phase; the pass goes on, never waits."""

    pod_id: str
    phase: str  # a readiness.Phase
    text: str
    elapsed: float  # since its create or restart

    def describe(self) -> str:
        return f"[{self.elapsed:4.0f}s] pod {self.pod_id}: {self.text}"


@dataclass(frozen=True)
class MarkReady:
    """vLLM's /health answered 200: the pod serves; the proxy may forward to it."""

    pod_id: str
    elapsed: float

    def describe(self) -> str:
        return f"[{self.elapsed:4.0f}s] pod {self.pod_id}: serving"


@dataclass(frozen=True)
class AbandonPod:
    """A pod that did not serve in time: terminate it and count a restart.

    `replace`: it showed no container (a likely image/CUDA problem on its host) and a
    fresh create follows in the same plan, which RunPod places anew; otherwise the pass
    ends with a StartupError naming `reason`.
    """

    pod_id: str
    reason: str
    replace: bool = False

    def describe(self) -> str:
        then = "; replacing it on another host" if self.replace else ""
        return f"give up on pod {self.pod_id} ({self.reason}){then}"


@dataclass(frozen=True)
class RestartPod:
    """Resume a stopped pod or restart one whose vLLM died; recreate if resume has no GPU."""

    pod_id: str
    reason: str

    def describe(self) -> str:
        return f"restart pod {self.pod_id} ({self.reason})"


@dataclass(frozen=True)
class ResumePreempted:
    """A spot pod RunPod stopped: count the preemption, then resume it (recreate when its
    host has no GPU free), or, `on_demand`, replace it by an on-demand pod. Not a crash:
    no restart is counted and no backoff applies."""

    pod_id: str
    preemption: int
    on_demand: bool

    def describe(self) -> str:
        then = "replacing it by an on-demand pod" if self.on_demand else "resuming it"
        return f"spot pod {self.pod_id} preempted by RunPod (#{self.preemption}); {then}"


@dataclass(frozen=True)
class TerminatePod:
    """Terminate a pod (ours, or a stray of ours); gone already counts as done."""

    pod_id: str
    reason: str

    def describe(self) -> str:
        return f"terminate pod {self.pod_id} ({self.reason})"


@dataclass(frozen=True)
class AdoptPod:
    """Take a pod of ours that the state lost (crash between create and save, lost file)."""

    pod_id: str
    name: str
    uptime_seconds: float

    def describe(self) -> str:
        return f"adopt pod {self.pod_id} ({self.name}), lost by the state"


@dataclass(frozen=True)
class ForgetPod:
    """The state's pod no longer exists on RunPod: drop it from the state."""

    pod_id: str
    reason: str

    def describe(self) -> str:
        return f"forget pod {self.pod_id} ({self.reason})"


@dataclass(frozen=True)
class ForgetCreate:
    """Drop the state's `pending_create`: a shutdown ends the wait for a create that got no
    clear answer (issue 22: it survived a shutdown, and the next `up` waited ~120 s). A pod
    it made after all is ours by name: the next pass terminates it, or adopts it."""

    name: str
    reason: str

    def describe(self) -> str:
        return f"forget the create of {self.name} ({self.reason})"


@dataclass(frozen=True)
class StartProxy:
    """Start the local proxy detached (stopping a hung one of ours first)."""

    reason: str

    def describe(self) -> str:
        return f"start the proxy ({self.reason})"


@dataclass(frozen=True)
class StopProxy:
    """Stop our proxy: SIGTERM, then SIGKILL after 10 s; never a pid that is not ours."""

    pid: int

    def describe(self) -> str:
        return f"stop the proxy (pid {self.pid})"


@dataclass(frozen=True)
class Noop:
    """Nothing to do; the reason is what the pass reports."""

    reason: str

    def describe(self) -> str:
        return f"nothing to do: {self.reason}"


Action = (
    StartSession
    | EndSession
    | CreatePod
    | PodProgress
    | MarkReady
    | NoteLog
    | AbandonPod
    | RestartPod
    | ResumePreempted
    | TerminatePod
    | AdoptPod
    | ForgetPod
    | ForgetCreate
    | StartProxy
    | StopProxy
    | Noop
)
