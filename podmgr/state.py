"""The watchdog's state file: what pods we own, the session's limits, and what we did.

Pod records (and creates awaiting RunPod's answer) are keyed by the configured pod's name
(config/pods.py; a one-pod config's pod is "pod"). Schema 1 held one `pod` and one
`pending_create`: such a file reads as the records of the pod named "pod" (`_migrate`), and
`state.pod` / `state.pending_create` remain as the record of that pod for the one-pod code
paths (the watchdog, status, proxy and guard code that predate issue 23).

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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import filelock
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from podmgr.errors import LockHeldError, StateError

__all__ = [
    "HISTORY_LIMIT",
    "ONE_POD",
    "SCHEMA_VERSION",
    "HistoryEntry",
    "PendingCreate",
    "PodCounters",
    "PodPhase",
    "PodRecord",
    "Session",
    "SessionPod",
    "State",
    "StateStore",
    "pod_record",
]

SCHEMA_VERSION = 2  # 2: pods and pending_creates keyed by pod name (issue 23)
ONE_POD = "pod"  # the name of a one-pod config's pod (config/pods.py DEFAULT_POD_NAME)
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
    pod_name: str = Field(default=ONE_POD, description="The configured pod it was (config `pods`).")


SESSION_PODS_LIMIT = 50


class PodCounters(BaseModel):
    """One configured pod's share of the session's counters (a set: config `pods`), so
    one pod's crashes, backoff and preemptions never count toward another's limits."""

    restarts: int = 0
    last_restart_at: float | None = None
    no_container_replacements: int = 0
    preemptions: int = 0


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
    counters: dict[str, PodCounters] = Field(
        default_factory=dict,
        description="A set's counters per configured pod (the fields above are the totals).",
    )
    ended_pods: dict[str, str] = Field(
        default_factory=dict,
        description="Configured pods ended alone in this session (idle, crash loop, not "
        "asked for by `podmgr up NAME`), by name, with why; `podmgr up NAME` revives one.",
    )

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def book_pod(self, pod: PodRecord, cost_usd: float, pod_name: str = ONE_POD) -> None:
        """Note the pod (added or refreshed) and add `cost_usd` to it and to the session.

        One session serves every configured pod: `cost_usd` is the sum over all of them,
        which is what the budget rule compares with `limits.max_cost_usd`."""
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
                pod_name=pod_name,
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
    pods: dict[str, PodRecord] = Field(
        default_factory=dict, description="The pod we own for each configured pod, by name."
    )
    pending_creates: dict[str, PendingCreate] = Field(
        default_factory=dict,
        description="Creates sent to RunPod with no clear answer yet, by configured pod name.",
    )
    proxy_pid: int | None = None
    proxy_started_at: float | None = None
    last_request_at: float | None = Field(
        default=None,
        description="Latest client request the proxy reported (survives proxy restarts).",
    )
    last_request_by_model: dict[str, float] = Field(
        default_factory=dict,
        description="Latest client request for each model the proxy reported: the idle "
        "rule of the pod serving that model reads it.",
    )
    updated_at: float | None = None
    start_command_json: bool | None = Field(
        default=None,
        description="Whether RunPod honours the start-command JSON in `args` (the guard's "
        "way into the pod), as a pod's log showed; None: not known yet. Kept across sessions.",
    )
    history: list[HistoryEntry] = Field(default_factory=list)
    # Which configured pod `pod` / `pending_create` stand for (`focused`); not saved.
    _focus: str = PrivateAttr(default=ONE_POD)

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Schema 1 (one `pod`, one `pending_create`) read as the records of "pod"."""
        if not isinstance(data, Mapping):
            return data
        return _one_pod_keys(data) | (
            {"schema_version": SCHEMA_VERSION} if data.get("schema_version") == 1 else {}
        )

    @property
    def pod(self) -> PodRecord | None:
        """The record of the pod in focus: "pod" (a one-pod config) unless `focused`."""
        return self.pods.get(self._focus)

    @pod.setter
    def pod(self, record: PodRecord | None) -> None:
        self.pods = _with(self.pods, self._focus, record)

    @property
    def pending_create(self) -> PendingCreate | None:
        """The unanswered create of the pod in focus ("pod" unless `focused`)."""
        return self.pending_creates.get(self._focus)

    @pending_create.setter
    def pending_create(self, pending: PendingCreate | None) -> None:
        self.pending_creates = _with(self.pending_creates, self._focus, pending)

    @property
    def focus(self) -> str:
        """The configured pod `pod` and `pending_create` stand for now."""
        return self._focus

    @contextlib.contextmanager
    def focused(self, name: str) -> Iterator[State]:
        """Let `pod` / `pending_create` stand for pod `name` (apply runs one pod's action
        with the code written for one pod); restored on exit."""
        before, self._focus = self._focus, name
        try:
            yield self
        finally:
            self._focus = before

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> State:
        """A copy; `update` may name `pod` and `pending_create` as the constructor does."""
        if update and ("pod" in update or "pending_create" in update):
            # pydantic's update replaces a field whole: start from this state's records.
            current = {"pods": dict(self.pods), "pending_creates": dict(self.pending_creates)}
            update = _one_pod_keys({**current, **update}, self._focus)
        return super().model_copy(update=update, deep=deep)

    def record(self, now: float, action: str, detail: str = "") -> None:
        """Append to the short history, dropping the oldest past HISTORY_LIMIT."""
        self.history = [*self.history, HistoryEntry(at=now, action=action, detail=detail)][
            -HISTORY_LIMIT:
        ]


def _with(records: Mapping[str, Any], name: str, value: Any) -> dict[str, Any]:
    """`records` with `name` set to `value`, or dropped when `value` is None."""
    out = {key: known for key, known in records.items() if key != name}
    if value is not None:
        out[name] = value
    return out


def _one_pod_keys(data: Mapping[str, Any], name: str = ONE_POD) -> dict[str, Any]:
    """`data` with `pod` / `pending_create` moved into `pods` / `pending_creates` as `name`."""
    out = dict(data)
    for one, many in (("pod", "pods"), ("pending_create", "pending_creates")):
        if one in out:
            out[many] = _with(dict(out.get(many) or {}), name, out.pop(one))
    return out


def pod_record(state: State | None, name: str) -> PodRecord | None:
    """The record of the configured pod `name`, None without a state or record (the proxy's
    one way to read a pod's record: resolver, health, dashboard, metrics, wake)."""
    return state.pods.get(name) if state is not None else None


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
