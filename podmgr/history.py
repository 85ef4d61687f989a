"""Session history: one JSON line per ended session, in `history.jsonl` beside the state.

The state file keeps only the current session; this file keeps what every session cost,
for `podmgr history` and `podmgr cost` (issue 14). Each line is appended with a single
`write` on a file opened O_APPEND (mode 0600, fsynced), so a reader sees whole lines or
none. The file is bounded by rotation: past `max_bytes` it becomes `history.jsonl.1`
(then `.2`, ... up to `keep`, the oldest dropped). A line that does not parse is skipped
and reported by `read_history`, never fatal.

Only the watchdog appends, inside its exclusive pass lock (podmgr/state.py), so two
appenders never race a rotation.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from podmgr.rules import label
from podmgr.state import ONE_POD, PodRecord, Session, SessionPod, State

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_MAX_BYTES",
    "CachedHistory",
    "PodSummary",
    "SessionRecord",
    "append_record",
    "history_path",
    "read_history",
    "record_session_end",
    "session_record",
]

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_KEEP = 3


class PodSummary(SessionPod):
    """One pod of an ended session, as the state knew it, with the cost podmgr booked for
    it (None in records written before pods were costed one by one)."""

    cost_usd: float | None = None  # type: ignore[assignment]

    @property
    def label(self) -> str:
        """The pod in a sessions view: its GPU type, after its configured name with `pods`
        (`chat NVIDIA RTX A6000`); a one-pod session's pods show as before."""
        if self.pod_name == ONE_POD:
            return self.gpu_type_id
        return f"{self.pod_name} {self.gpu_type_id}"


class SessionRecord(BaseModel):
    """One ended session: when, why it ended, its pods, times and podmgr's own cost."""

    started_at: float
    ended_at: float
    session_id: str | None = Field(default=None, description="None in records before ids.")
    end_reason: str | None = None
    pods: list[PodSummary] = Field(default_factory=list)
    startup_seconds: float | None = Field(
        default=None, description="Pod created to ready (None: it never served)."
    )
    serving_seconds: float = 0.0
    billed_seconds: float = Field(
        default=0.0,
        description="Seconds booked at the pods' price (podmgr/watchdog/accounting); with "
        "several pods (config `pods`), each pod's seconds summed.",
    )
    cost_usd: float = 0.0
    restarts: int = 0
    preemptions: int = 0

    @property
    def ended_why(self) -> str:
        """The end reason as people are told it (its row in podmgr/rules.py)."""
        return label(self.end_reason)

    @property
    def key(self) -> str:
        """The session's identity: its id (start time and end time in records before ids;
        two sessions may start in the same second)."""
        return self.session_id or f"{self.started_at:.6f}-{self.ended_at:.6f}"


def history_path(state_path: Path) -> Path:
    """The history file beside the state file."""
    return state_path.with_name("history.jsonl")


def session_record(
    state: State, now: float, terminated: Sequence[PodRecord] = ()
) -> SessionRecord | None:
    """The record of the state's session as it ends now (None if there is no session);
    `terminated`: pods already terminated in this pass (no longer in the state)."""
    session = state.session
    if session is None:
        return None
    ended = session.ended_at if session.ended_at is not None else now
    known = [*terminated, *state.pods.values()]  # every configured pod's record (issue 23)
    pods = _pod_summaries(session, known)
    startup = serving = None
    last = known[-1] if known else None
    if last is not None and last.ready_at is not None:
        startup = max(0.0, last.ready_at - last.created_at)
        serving = max(0.0, ended - last.ready_at)
    price = last.cost_per_hr if last is not None else 0.0
    billed = session.cost_usd / price * 3600 if price > 0 else 0.0
    if any(pod.pod_name != ONE_POD for pod in pods):  # several pods at their own prices
        billed = sum(_billed_seconds(pod) for pod in pods)
    return SessionRecord(
        started_at=session.started_at,
        ended_at=ended,
        session_id=session.id,
        end_reason=session.end_reason,
        pods=pods,
        startup_seconds=startup,
        serving_seconds=serving or 0.0,
        billed_seconds=billed,
        cost_usd=session.cost_usd,
        restarts=session.restarts,
        preemptions=session.preemptions,
    )


def _pod_summaries(session: Session, known: Sequence[PodRecord]) -> list[PodSummary]:
    """Every pod the session booked (with its cost), then any pod it never booked."""
    pods = [PodSummary(**pod.model_dump()) for pod in session.pods]
    seen = {pod.id for pod in pods}
    for pod in known:
        if pod.id not in seen:
            seen.add(pod.id)
            pods.append(_pod_summary(pod))
    for summary in pods:  # the state's record has the latest readiness time
        latest = next((pod for pod in known if pod.id == summary.id), None)
        if latest is not None and latest.ready_at is not None:
            summary.ready_at = latest.ready_at
    return pods


def _billed_seconds(pod: PodSummary) -> float:
    """Seconds booked for one pod: its cost at its price."""
    return (pod.cost_usd or 0.0) / pod.cost_per_hr * 3600 if pod.cost_per_hr > 0 else 0.0


def _pod_summary(pod: PodRecord) -> PodSummary:
    return PodSummary(
        id=pod.id,
        gpu_type_id=pod.gpu_type_id,
        cost_per_hr=pod.cost_per_hr,
        created_at=pod.created_at,
        ready_at=pod.ready_at,
        interruptible=pod.interruptible,
    )


def record_session_end(
    state_path: Path, state: State, now: float, terminated: Sequence[PodRecord] = ()
) -> None:
    """Append the state's session to the history (the hook where a session ends)."""
    record = session_record(state, now, terminated)
    if record is not None:
        append_record(history_path(state_path), record)


def append_record(
    path: Path,
    record: SessionRecord,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    keep: int = DEFAULT_KEEP,
) -> None:
    """Append one line (one write, O_APPEND, mode 0600, fsync); rotate first if full."""
    line = (record.model_dump_json() + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size + len(line) > max_bytes:
            _rotate(path, keep)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _rotate(path: Path, keep: int) -> None:
    """history.jsonl -> .1 -> .2 ... ; the one past `keep` is dropped."""
    with contextlib.suppress(FileNotFoundError):
        _rotated(path, keep).unlink()
    for index in range(keep - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.replace(_rotated(path, index), _rotated(path, index + 1))
    os.replace(path, _rotated(path, 1))


def _rotated(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def read_history(
    path: Path, *, since: float | None = None, keep: int = DEFAULT_KEEP
) -> tuple[list[SessionRecord], list[str]]:
    """Sessions oldest first (rotated files too) ending at or after `since`, and one
    problem line per line that did not parse ("history.jsonl:3: ...")."""
    records: list[SessionRecord] = []
    problems: list[str] = []
    files = [_rotated(path, index) for index in range(keep, 0, -1)] + [path]
    for file in files:
        try:
            text = file.read_text(errors="replace")
        except FileNotFoundError:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = SessionRecord.model_validate_json(line)
            except ValidationError as error:
                problems.append(f"{file.name}:{number}: skipped, {error.errors()[0]['msg']}")
                continue
            if since is None or record.ended_at >= since:
                records.append(record)
    return records, problems


class CachedHistory:
    """`read_history` for a long-running reader (the proxy's /metrics, the dashboard's
    history page): the files are parsed again only when the newest one changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._records: list[SessionRecord] = []
        self._problems: list[str] = []

    def read(self) -> tuple[list[SessionRecord], list[str]]:
        try:
            info = self.path.stat()
            seen: tuple[int, int] | None = (info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            seen = None
        if seen != self._seen or seen is None:
            self._records, self._problems = read_history(self.path)
            self._seen = seen
        return self._records, self._problems

    def pod_count(self) -> int:
        """Pods of all ended sessions in the files."""
        return sum(len(record.pods) for record in self.read()[0])
