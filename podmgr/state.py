"""The watchdog's state file: what pod we own, the session's limits, and what we did.

`StateStore` owns the file. Writes are atomic (temp file in the same directory, fsync,
rename, fsync of the directory) with mode 0600, because the file holds the pod's vLLM key.
The watchdog holds an exclusive `filelock` for its whole pass; readers (the proxy,
`podmgr status`) never lock: a rename is atomic, so they see the old or the new file.

A file that does not parse is moved aside to `<name>.corrupt-<time>` (never overwritten)
and the watchdog starts from an empty state; the pod is then found again on RunPod by its
name prefix and marker env (see `podmgr.watchdog`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import filelock
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podmgr.errors import LockHeldError, StateError

__all__ = [
    "HISTORY_LIMIT",
    "SCHEMA_VERSION",
    "HistoryEntry",
    "PendingCreate",
    "PodPhase",
    "PodRecord",
    "Session",
    "SessionPod",
    "State",
    "StateStore",
    "pod_record",
]

SCHEMA_VERSION = 1
HISTORY_LIMIT = 50

PodPhase = Literal["creating", "starting", "ready", "stopped", "restarting"]


class HistoryEntry(BaseModel):
    """One thing the watchdog did, for `podmgr status` and post-mortems."""

    at: float
    action: str
    detail: str = ""


class PodRecord(BaseModel):
    """The pod this project owns right now. Saved the moment RunPod returns its id."""

    id: str
    name: str
    gpu_type_id: str
    cost_per_hr: float = 0.0
    created_at: float
    ready_at: float | None = None
    phase: PodPhase = "creating"
    endpoint_url: str | None = None
    vllm_api_key: str = Field(repr=False)
    restarts: int = 0
    last_restart_at: float | None = None
    unhealthy_since: float | None = None
    # Readiness across passes (podmgr/watchdog/readiness.py names the phases): what the
    # last pass saw of the starting pod, since when, and when its container was first seen
    # since the last create or restart (a container gone after that is a crash).
    progress: str | None = None
    progress_since: float | None = None
    progress_text: str | None = None  # the line last shown for it (one line per change)
    container_seen_at: float | None = None
    interruptible: bool = Field(default=False, description="A spot pod: RunPod may stop it.")
    guard: dict[str, str] | None = Field(
        default=None,
        description="The limits the pod's guard was created with (podmgr/guard), or None.",
    )
    billed_until: float | None = Field(
        default=None, description="Time up to which this pod's cost is already in session.cost_usd."
    )
    guard_confirmed: bool | None = Field(
        default=None,
        description="The pod's log showed its guard armed (True), or RunPod passed the "
        "start-command JSON literally (False); None: not seen yet (guard/check.py).",
    )
    guard_why: str | None = None
    log_cursor: str | None = Field(
        default=None, description="The last log event id read (Last-Event-ID for the next read)."
    )
    log_read_at: float | None = Field(default=None, description="When its log was last read.")
    log_phase: str | None = Field(
        default=None, description="The latest phase its log showed (watchdog/podlog.py)."
    )


class SessionPod(BaseModel):
    """One pod a session had, and what podmgr booked for it (for the history's records)."""

    id: str
    gpu_type_id: str
    cost_per_hr: float = 0.0
    created_at: float
    ready_at: float | None = None
    interruptible: bool = False
    cost_usd: float = 0.0


SESSION_PODS_LIMIT = 50


class Session(BaseModel):
    """A span of wanted uptime that a person started; ends at the first limit reached."""

    started_at: float
    deadline: float
    # Its own identity: two sessions may start in the same second (a fast machine did).
    id: str = Field(default_factory=lambda: secrets.token_hex(6))
    cost_usd: float = 0.0
    ended_at: float | None = None
    end_reason: str | None = None
    restarts: int = Field(default=0, description="Restarts and recreations in this session.")
    last_restart_at: float | None = None
    no_container_replacements: int = Field(
        default=0, description="Pods replaced for showing no container (once per session)."
    )
    preemptions: int = Field(default=0, description="Spot pods RunPod stopped this session.")
    pods: list[SessionPod] = Field(
        default_factory=list,
        description="Every pod of the session with its booked cost (newest 50 kept).",
    )

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def book_pod(self, pod: PodRecord, cost_usd: float) -> None:
        """Note the pod (added or refreshed) and add `cost_usd` to it and to the session."""
        self.cost_usd = self.cost_usd + cost_usd
        for known in self.pods:
            if known.id == pod.id:
                known.cost_per_hr = pod.cost_per_hr or known.cost_per_hr
                known.ready_at = pod.ready_at or known.ready_at
                known.cost_usd = known.cost_usd + cost_usd
                return
        self.pods.append(
            SessionPod(
                id=pod.id,
                gpu_type_id=pod.gpu_type_id,
                cost_per_hr=pod.cost_per_hr,
                created_at=pod.created_at,
                ready_at=pod.ready_at,
                interruptible=pod.interruptible,
                cost_usd=cost_usd,
            )
        )
        del self.pods[:-SESSION_PODS_LIMIT]


class PendingCreate(BaseModel):
    """A create sent to RunPod whose answer has not arrived (saved before the call).

    RunPod can make the pod and still answer an error, and the new pod can be slow to
    appear in listings (transformerlab-app#2305; ../shared/RUNPOD_FACTS.md): until the pod
    with this name shows up (it is then adopted) or a grace time passed, no other is made.
    """

    name: str
    gpu_type_id: str
    at: float


class State(BaseModel):
    """Everything the watchdog remembers between passes."""

    model_config = ConfigDict(validate_assignment=True)

    schema_version: int = SCHEMA_VERSION
    session: Session | None = None
    pod: PodRecord | None = None
    # ROUTE23 interim (issue 23): records by configured pod name, read through
    # `pod_record`; the core helper's migration (SCHEMA_VERSION 2) replaces this field.
    pods: dict[str, PodRecord] = Field(default_factory=dict)
    pending_create: PendingCreate | None = None
    proxy_pid: int | None = None
    proxy_started_at: float | None = None
    last_request_at: float | None = Field(
        default=None,
        description="Latest client request the proxy reported (survives proxy restarts).",
    )
    updated_at: float | None = None
    start_command_json: bool | None = Field(
        default=None,
        description="Whether RunPod honours the start-command JSON in `args` (the guard's "
        "way into the pod), as a pod's log showed; None: not known yet. Kept across sessions.",
    )
    history: list[HistoryEntry] = Field(default_factory=list)

    def record(self, now: float, action: str, detail: str = "") -> None:
        """Append to the short history, dropping the oldest past HISTORY_LIMIT."""
        self.history = [*self.history, HistoryEntry(at=now, action=action, detail=detail)][
            -HISTORY_LIMIT:
        ]


def pod_record(state: State | None, name: str) -> PodRecord | None:
    """The record of the configured pod `name` (the one place that knows how the state
    keys pods): `state.pods[name]`, or, while no pod is keyed by name, the one `pod` for
    the default pod name (an old single-pod state)."""
    if state is None:
        return None
    if state.pods:
        return state.pods.get(name)
    return state.pod if name == "pod" else None


class StateStore:
    """Reads and writes one state file; `locked()` guards a watchdog pass."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        # filelock never unlinks the lock file: unlinking a held lock splits waiters
        # across two inodes (filelock's _unix.py), so it lives beside the state for good.
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def locked(self, timeout: float = 0) -> Iterator[None]:
        """Hold the exclusive watchdog lock; LockHeldError if another pass holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(self.lock_path), timeout=timeout, mode=0o600)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise LockHeldError(
                f"another watchdog is running (lock {self.lock_path} is held)"
            ) from None
        try:
            self._remove_stale_temp_files()
            yield
        finally:
            lock.release()

    def _remove_stale_temp_files(self) -> None:
        """Drop temp files of writers killed mid-save; only a lock holder writes, so any
        temp file seen while holding the lock is stale."""
        for leftover in self.path.parent.glob(f".{self.path.name}.*"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def peek(self) -> State | None:
        """Read without side effects (proxy, status): None if missing or unreadable."""
        try:
            return self._parse(self.path.read_bytes())
        except (OSError, StateError):
            return None

    def load(self, now: float | None = None) -> State:
        """Read for the watchdog: missing -> empty; corrupt -> moved aside, then empty."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return State()
        except OSError as error:
            raise StateError(f"cannot read state file {self.path}: {error}") from None
        try:
            return self._parse(raw)
        except StateError as error:
            aside = self.move_aside(now)
            state = State()
            state.record(
                now if now is not None else time.time(),
                "state_recovered",
                f"{error.message}; moved to {aside.name}",
            )
            return state

    def move_aside(self, now: float | None = None) -> Path:
        """Rename a bad state file out of the way, never overwriting an earlier one."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now if now is not None else None))
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        counter = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{counter}")
            counter += 1
        os.rename(self.path, target)
        return target

    def save(self, state: State, now: float | None = None) -> None:
        """Atomically replace the file (temp, fsync, rename, fsync dir), mode 0600."""
        state.updated_at = now if now is not None else time.time()
        data = state.model_dump_json(indent=2).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_directory(self.path.parent)

    @staticmethod
    def _parse(raw: bytes) -> State:
        try:
            state = State.model_validate_json(raw)
        except ValidationError as error:
            raise StateError(f"state file does not parse: {error.errors()[0]['msg']}") from None
        if state.schema_version != SCHEMA_VERSION:
            raise StateError(f"state file has schema version {state.schema_version}")
        return state


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
