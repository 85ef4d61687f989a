"""Wake on request: a request that finds no active session starts one, as `podmgr up` would.

With `wake_on_request: true`, the proxy runs `python -m podmgr up --config <its config>`
as a child process of its own when a request arrives and the watchdog's state shows no
active session. That is exactly a person's `podmgr up`: the same passes, under the same
watchdog lock (a cron pass running meanwhile makes it wait, never start twice), the same
limits. At most one wake runs at a time: while its process lives, or the state shows a
session starting, requests do not trigger another.

What blocks a wake (`blocked()` says which, and the 503 a client gets names it):
- the last session ended for a reason whose row in podmgr/rules.py does not allow a wake
  (`budget`, `crash_loop`, `no_container`, `pod_failed`, ...): a person decides with
  `podmgr up`; a wake never repeats them. Sessions ended for `idle`, `deadline` or
  `shutdown` may be woken again;
- outside `wake_hours` (local time windows);
- a wake that failed (its `podmgr up` exited non-zero) rests for `FAILED_WAKE_REST_SECONDS`
  so a stream of requests cannot loop RunPod calls. A wake whose session served and then
  ended normally (a `normal` row: idle, deadline, shutdown; cron passes saw the pod ready
  and ended the session while `podmgr up` waited) did its job: `podmgr up` exits 0 then, and even a
  `podmgr up` that says otherwise (an older one) does not make the proxy rest.

With several pods (config `pods`) a request wakes only the pod serving its model:
`podmgr up --yes --config <config> NAME`, when no session is active, or the session is
active but that pod is down: ended alone (`Session.ended_pods`: idle, or left out by
`podmgr up NAME`) or without a record. With one pod the command is as it always was (no
NAME). With several, each pod has its own wake: at most one running at a time (the `podmgr
up`s of two pods take turns under the watchdog lock), its own start time, exit code and
failed-wake rest, so a failed wake of one pod never rests another's. A pod that ended
alone for a reason whose row does not allow a wake (its crash loop, ...) is not woken by a
request, as a session that ended so is not: a person decides with `podmgr up NAME`.

While the pod starts, requests go to the fallbacks; with none, `starting_failure()` is a
503 with Retry-After naming the phase and the time so far.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from podmgr.config import Config
from podmgr.config.upstreams import in_wake_hours
from podmgr.logs import get_logger
from podmgr.proxy.openai_errors import ProxyFailure, pod_starting, wake_blocked
from podmgr.rules import allows_wake, label, normal_end
from podmgr.state import State, pod_record
from podmgr.watchdog.plan_set import BUDGET_SHARE, NOT_ASKED
from podmgr.watchdog.session import pod_served

__all__ = ["Waker", "wake_refusal"]

log = get_logger("proxy.wake")

FAILED_WAKE_REST_SECONDS = 60.0
RETRY_AFTER_SECONDS = 10


def _minute_of_day(now: float) -> int:
    local = time.localtime(now)
    return local.tm_hour * 60 + local.tm_min


def wake_refusal(
    config: Config, state: State | None, now: float, pod: str | None = None
) -> str | None:
    """Why a request may not wake the pod now by the config and the state (the session's
    end reason, `wake_hours`), or None. With `pod` (a pod of several) and an active
    session: why that pod, ended alone, may not be woken (its own end reason). A running
    proxy adds its failed-wake rest (`Waker.blocked`); `podmgr upstreams test` says this of
    a pod that is down."""
    session = state.session if state else None
    if session is not None and session.active:
        return _pod_refusal(config, session.ended_pods.get(pod), pod, now) if pod else None
    reason = session.end_reason if session is not None else None
    if not allows_wake(reason):
        return (
            f"the last session ended for {label(reason)}; a request does not start another "
            "(run `podmgr up`)"
        )
    return _outside_hours(config, now)


def _pod_refusal(config: Config, reason: str | None, pod: str, now: float) -> str | None:
    """Why pod `pod`, down in an active session for `reason` (None: not ended alone), may
    not be woken: its end reason's row (a pod left out by `podmgr up NAME` may be), then
    `wake_hours`."""
    if reason is not None and reason != NOT_ASKED and not allows_wake(reason):
        then = (
            "it stays down until this session ends: `podmgr shutdown`, then `podmgr up`"
            if reason == BUDGET_SHARE
            else f"run `podmgr up {pod}`"
        )
        return (
            f"the GPU pod {pod} ended for {label(reason)}; a request does not start it again "
            f"({then})"
        )
    return _outside_hours(config, now)


def _outside_hours(config: Config, now: float) -> str | None:
    """Why no pod is started now by `wake_hours`, or None."""
    if not in_wake_hours(config.limits.wake_hours, _minute_of_day(now)):
        hours = ", ".join(config.limits.wake_hours or [])
        return f"outside wake_hours ({hours}); no pod is started now"
    return None


class Waker:
    """Starts `podmgr up` for the proxy (see the module docstring).

    Its bookkeeping is per wake key: the pod's name with several pods, None with one (one
    wake for the whole session, as before). `started_at`, `last_exit` and `pod` are the
    latest wake's, whichever pod it was for (what `/health` showed with one pod)."""

    def __init__(
        self,
        config: Config,
        config_path: Path | None,
        state: Callable[[], State | None],
        command: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.several = len(config.pods) > 1
        self.pod: str | None = None  # the pod the latest wake was for
        self.enabled = config.limits.wake_on_request and config_path is not None
        self._state = state
        path = str(config_path) if config_path is not None else ""
        self.command = list(
            command or [sys.executable, "-m", "podmgr", "up", "--yes", "--config", path]
        )
        self.log_path = config.state_path.parent / "wake.log"
        self._clock = clock
        self._processes: dict[str | None, subprocess.Popen[bytes]] = {}  # running, by key
        self._started: dict[str | None, float] = {}
        self._exits: dict[str | None, int] = {}
        self._failed_at: dict[str | None, float] = {}
        self.started_at: float | None = None
        self.wakes = 0
        self.last_exit: int | None = None

    def _key(self, pod: str | None) -> str | None:
        """The wake key of a request for pod `pod`: its name with several pods, else None."""
        return pod if self.several else None

    # --- decisions -----------------------------------------------------------------------
    def running(self, pod: str | None = None) -> bool:
        """A wake's `podmgr up` is still running: for the pod `pod` with several pods, any
        wake otherwise. Finished ones are reaped here."""
        for key, process in list(self._processes.items()):
            code = process.poll()
            if code is None:
                continue
            del self._processes[key]
            self._finished(key, code)
        if pod is None or not self.several:
            return bool(self._processes)
        return pod in self._processes

    def _finished(self, key: str | None, code: int) -> None:
        self.last_exit = self._exits[key] = code
        if code != 0 and self._served_and_ended_normally(key):
            log.info("wake_served", exit_code=code, pod=key, note="its session served, then ended")
        elif code != 0:
            self._failed_at[key] = self._clock()
            log.warning("wake_failed", exit_code=code, pod=key, log=str(self.log_path))

    def _served_and_ended_normally(self, key: str | None) -> bool:
        """The state's session began with this key's wake, served, and ended normally."""
        state = self._state()
        session = state.session if state else None
        started = self._started.get(key)
        if state is None or session is None or session.active or started is None:
            return False
        if not normal_end(session.end_reason):
            return False
        # the wake's own session: `podmgr up` started it after the spawn (clock slack 60 s)
        return session.started_at >= started - 60 and pod_served(state)

    def blocked(self, pod: str | None = None) -> str | None:
        """Why a request may not wake the pod `pod` now (None: the one pod, or the whole
        session), or None. A pod of several is judged alone, also in an active session."""
        state = self._state()
        session = state.session if state else None
        alone = self.several and pod is not None
        if session is not None and session.active and not alone:
            return None
        now = self._clock()
        refused = wake_refusal(self.config, state, now, pod if alone else None)
        if refused is not None:
            return refused
        key = self._key(pod)
        failed = self._failed_at.get(key)
        if failed is not None and now - failed < FAILED_WAKE_REST_SECONDS:
            which = f"wake of the GPU pod {key}" if key is not None else "wake"
            return (
                f"the last {which} failed (podmgr up exit {self._exits.get(key)}); "
                f"see {self.log_path}"
            )
        return None

    def needs_wake(self, pod: str | None = None) -> bool:
        """No wake is running, and no session is active, or (several pods) the session is
        active but the pod `pod` is down: ended alone (idle, not asked for) or no record."""
        if self.running(pod):
            return False
        state = self._state()
        session = state.session if state else None
        if session is None or not session.active:
            return True
        if not self.several or pod is None:
            return False
        return pod in session.ended_pods or pod_record(state, pod) is None

    # --- acting --------------------------------------------------------------------------
    def on_request(self, pod: str | None = None) -> str | None:
        """A request could not be answered by the pod `pod`: wake it if allowed. Returns
        why not when a wake is blocked (None: waking, or nothing to do)."""
        if not self.enabled or not self.needs_wake(pod):
            return None
        why = self.blocked(pod)
        if why is not None:
            return why
        self._spawn(pod)
        return None

    def command_for(self, pod: str | None) -> list[str]:
        """`podmgr up` for the pod `pod` (several pods), or for all (one pod)."""
        return [*self.command, pod] if self.several and pod is not None else list(self.command)

    def _spawn(self, pod: str | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            process = subprocess.Popen(
                self.command_for(pod),
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                start_new_session=True,  # a stopping proxy does not take a start down
                close_fds=True,
            )
        except OSError as error:
            self._failed_at[self._key(pod)] = self._clock()
            log.error("wake_not_started", error=str(error), pod=pod)
            return
        finally:
            os.close(log_fd)
        key = self._key(pod)
        self._processes[key] = process
        self.started_at = self._started[key] = self._clock()
        self.pod = pod
        self.wakes += 1
        self._failed_at.pop(key, None)
        log.info("wake_started", pid=process.pid, wakes=self.wakes, pod=pod)

    def close(self) -> None:
        """Reap a finished child; a running `podmgr up` is left to finish its start."""
        self.running()

    # --- what clients and /health see ----------------------------------------------------
    def starting_failure(self, blocked: str | None, pod: str | None = None) -> ProxyFailure | None:
        """The 503 for a request nobody could answer while the pod `pod` (None: the one
        pod) starts (or why it will not), None when wake on request is off."""
        if not self.enabled:
            return None
        if blocked is not None:
            return wake_blocked(blocked)
        state = self._state()
        record = pod_record(state, pod) if pod else (state.pod if state else None)
        session = state.session if state else None
        phase = record.phase if record is not None else "starting a session"
        wake = self._started.get(self._key(pod)) if pod else self.started_at
        began = [t for t in (wake, session.started_at if session else None) if t]
        so_far = self._clock() - max(began) if began else 0.0
        which = f"the GPU pod {pod}" if self.several and pod else "the GPU pod"
        message = (
            f"{which} is starting (phase: {phase}, {so_far:.0f} s so far); "
            f"retry in {RETRY_AFTER_SECONDS} s"
        )
        return pod_starting(message, RETRY_AFTER_SECONDS)

    def view(self) -> dict[str, Any]:
        """`/health`'s `wake`: the latest wake, and with several pods each pod's own
        (`by_pod`: its wake's start, exit code and why a request may not wake it now)."""
        view = {
            "enabled": self.enabled,
            "running": self.running(),
            "running_for": sorted(key for key in self._processes if key is not None),
            "wakes": self.wakes,
            "pod": self.pod,
            "started_at": self.started_at,
            "last_exit": self.last_exit,
            "blocked": self.blocked() if self.enabled else None,
            "wake_hours": self.config.limits.wake_hours,
        }
        if self.several:
            view["by_pod"] = {
                name: {
                    "started_at": self._started.get(name),
                    "last_exit": self._exits.get(name),
                    "blocked": self.blocked(name) if self.enabled else None,
                }
                for name in self.config.pod_names
            }
        return view
