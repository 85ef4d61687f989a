"""`podmgr up`: passes until the pod serves (runner.run_until_serving), and the defaults'
startup budget against a simulator whose pod takes longer than the old budget (issue 10)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from wdkit import Harness, MakeWd

from podmgr.config import StartupSection
from podmgr.errors import LockHeldError, StartupError
from podmgr.sim.process import SimProcess
from podmgr.state import State
from podmgr.watchdog.observed import Request
from podmgr.watchdog.runner import PassResult, run_until_serving

from .helpers import config, ended, record, session, state


class FakeClock:
    def __init__(self) -> None:
        self.t, self.sleeps = 1000.0, list[float]()

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def scripted(*outcomes: State | Exception) -> tuple[list[Request], object]:
    """A pass stand-in that answers `outcomes` in order and records the requests."""
    requests: list[Request] = []
    queue = list(outcomes)

    def one_pass(request: Request) -> PassResult:
        requests.append(request)
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return PassResult(actions=[], state=outcome)

    return requests, one_pass


STARTING = state(session(), record(phase="starting"))
READY = state(session(), record())


def up(*outcomes: State | Exception) -> tuple[list[Request], FakeClock, list[str], object]:
    requests, one_pass = scripted(*outcomes)
    clock, lines = FakeClock(), list[str]()
    cfg = config(initial_wait_seconds=60, poll_interval_seconds=10)
    result = run_until_serving(
        cfg, Path("pod_config.json"), emit=lines.append, clock=clock,
        pass_once=one_pass,  # type: ignore[arg-type]
    )  # fmt: skip
    return requests, clock, lines, result


def test_up_starts_once_then_checks_after_the_initial_wait_then_every_poll() -> None:
    requests, clock, _lines, result = up(STARTING, STARTING, STARTING, READY)
    assert requests == ["start", "pass", "pass", "pass"]
    assert clock.sleeps == [60, 10, 10]
    assert result.serving and result.error is None  # type: ignore[attr-defined]
    assert result.url == "http://127.0.0.1:8000/v1"  # type: ignore[attr-defined]


def test_a_held_lock_is_tried_again_and_the_start_is_not_lost() -> None:
    held = LockHeldError("another watchdog is running (lock x is held)")
    requests, clock, lines, result = up(held, READY)
    assert requests == ["start", "start"]  # the first pass never ran: still ask for a session
    assert clock.sleeps == [10] and any("cron" in line for line in lines)
    assert result.serving  # type: ignore[attr-defined]


def test_a_session_that_ends_ends_up_with_an_error() -> None:
    _requests, _clock, _lines, result = up(STARTING, state(ended("deadline")))
    assert not result.serving  # type: ignore[attr-defined]
    error = result.error  # type: ignore[attr-defined]
    assert isinstance(error, StartupError) and "deadline" in error.message


def _served_then_ended(reason: str) -> State:
    """Cron passes saw the pod ready, then ended the session: the pod is gone, booked."""
    sess = session()
    sess.ended_at, sess.end_reason = sess.started_at + 500, reason
    sess.book_pod(record(), 0.1)  # ready_at set: a pass saw it serve
    return state(sess)


@pytest.mark.parametrize("reason", ["idle", "deadline", "shutdown"])
def test_a_session_that_served_then_ended_normally_is_no_failure(reason: str) -> None:
    """The wake's `podmgr up` waited out its initial wait while cron passes brought the pod
    up and ended it for idle: it served, so `up` succeeded (the proxy must not rest)."""
    _requests, _clock, _lines, result = up(STARTING, _served_then_ended(reason))
    assert result.error is None and result.served  # type: ignore[attr-defined]
    assert not result.serving  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("reason", "exit_code"), [("budget", 1), ("crash_loop", 8), ("balance_zero", 11)]
)
def test_a_session_that_served_then_hit_a_limit_says_it_served(reason: str, exit_code: int) -> None:
    _requests, _clock, _lines, result = up(STARTING, _served_then_ended(reason))
    error = result.error  # type: ignore[attr-defined]
    assert error is not None and error.exit_code == exit_code
    assert "before the pod served" not in error.message and "served" in error.message


def test_a_pod_given_up_on_ends_up_with_its_error() -> None:
    with pytest.raises(StartupError):
        up(STARTING, StartupError("pod p1 terminated: not serving"))


# --- against the simulator ----------------------------------------------------------------

OLD_DEFAULTS = (10, 20, 5)  # initial wait, attempts, poll interval before issue 10
SCALE = 0.01  # the suite cannot wait minutes: every duration of the defaults, times this
PULL_SECONDS = LOAD_SECONDS = 1.5


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=PULL_SECONDS, load_seconds=LOAD_SECONDS) as process:
        yield process


@pytest.fixture
def slow_wd(slow_sim: SimProcess, make_wd: MakeWd) -> Harness:
    return make_wd(slow_sim)


def test_the_default_timings_scaled_down_let_a_slow_pod_serve(slow_wd: Harness) -> None:
    """Finding 1: the defaults' timings scaled by SCALE, a pod slower than the old budget."""
    fields = StartupSection.model_fields
    initial = float(fields["initial_wait_seconds"].default) * SCALE
    attempts = int(fields["max_startup_attempts"].default)
    poll = float(fields["poll_interval_seconds"].default) * SCALE
    old_initial, old_attempts, old_poll = OLD_DEFAULTS
    old_budget = (old_initial + old_attempts * old_poll) * SCALE
    assert old_budget < PULL_SECONDS + LOAD_SECONDS  # the old defaults would kill this pod
    slow_wd.configure(
        initial_wait_seconds=initial, max_startup_attempts=attempts, poll_interval_seconds=poll
    )
    assert slow_wd.up().serving  # with the old defaults: StartupError after ~1.1 s
    [record] = slow_wd.ledger()
    assert record["status"] == "RUNNING"  # never terminated, never another pod
    state = slow_wd.state()
    assert state.session is not None and state.session.restarts == 0
    assert state.pod is not None and state.pod.id == record["id"] and state.pod.phase == "ready"
    # The phases as the pod's own log said them (podmgr/watchdog/podlog.py).
    assert any("image pull (from the pod's log)" in line for line in slow_wd.lines), slow_wd.lines
    assert any("weights loaded" in line for line in slow_wd.lines), slow_wd.lines
    slow_wd.run("shutdown")


def test_ctrl_c_leaves_the_starting_pod_to_cron(wd: Harness) -> None:
    wd.configure(max_startup_attempts=4000)  # 200 s: the budget must not end it first
    wd.sim.set_fault("transient_status", count=1, seconds=120)  # CREATED for two minutes
    up = subprocess.Popen(
        [sys.executable, "-m", "podmgr", "up", "--config", str(wd.config_path)],
        env=wd.sim.env(wd.dir / "home"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    seen: list[str] = []
    try:
        assert up.stdout is not None
        for line in up.stdout:
            seen.append(line)
            if line.startswith("[") and "] pod " in line:  # the starting pod's first phase
                up.send_signal(signal.SIGINT)
                break
        rest, _ = up.communicate(timeout=120)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    output = "".join(seen) + rest
    assert up.returncode == 130, output
    assert "cron keeps" in output, output
    [record] = wd.alive()  # left as it is
    state = wd.state()
    assert state.session is not None and state.session.active
    assert state.pod is not None and state.pod.id == record["id"]
    if state.proxy_pid:
        wd.proxy_pids.add(state.proxy_pid)
    wd.run("shutdown")


def test_lock_wait_no_longer_grows_with_the_startup_budget() -> None:
    """A pass never waits for the pod, so --shutdown need not wait out a readiness loop."""
    from podmgr.watchdog.runner import lock_wait_seconds

    short = lock_wait_seconds(config(max_startup_attempts=1), "shutdown")
    long = lock_wait_seconds(config(max_startup_attempts=100_000), "shutdown")
    assert short == long > config().watchdog.api_retry_max_seconds
    assert lock_wait_seconds(config(), "pass") == 0
