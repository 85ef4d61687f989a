"""Watchdog passes: one pass (`run_pass`), and `podmgr up`'s loop of them (`run_until_serving`).

A pass: lock, load, then observe -> book -> plan -> apply. It never waits for the pod:
it observes the state's pod once and records its phase (readiness.py); the next pass,
cron's or `podmgr up`'s, looks again. The lock is held for the whole pass, so a second
watchdog started meanwhile exits 0 at once (`LockHeldError`). A round ends early when the
state changed in a way the next round should observe (an adopted pod); the next round
observes again and plans from there, at most `MAX_ROUNDS` times. `--dry-run` takes no
lock, reads the state without moving a corrupt file, observes, plans and prints: no
mutating API call, no state write, no proxy start.

When RunPod's pod listing failed, the round plans on the state's pod alone (limits only,
see plan.py) and the pass then ends with the listing's error, so its exit code says that
the pass could not do its whole job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from podmgr.config import Config, WatchdogSection
from podmgr.errors import (
    BalanceError,
    CrashLoopError,
    LockHeldError,
    PodmgrError,
    StartupError,
    TransientApiError,
)
from podmgr.guard.lease import renew_lease
from podmgr.rules import label, normal_end
from podmgr.runpod.client import RunPodClient
from podmgr.state import State, StateStore
from podmgr.watchdog.accounting import book
from podmgr.watchdog.apply import Applier, Deps
from podmgr.watchdog.clock import Clock, SystemClock
from podmgr.watchdog.focus import is_set, pod_config
from podmgr.watchdog.identity import config_id
from podmgr.watchdog.observe import PROBE_PAUSE_CAP_SECONDS, observe, observe_set
from podmgr.watchdog.observed import Observed, Request
from podmgr.watchdog.plan import plan
from podmgr.watchdog.plan_set import SetAction, plan_set
from podmgr.watchdog.proxy_supervisor import ProxySupervisor
from podmgr.watchdog.readiness import HealthProbe, probe_health
from podmgr.watchdog.session import pod_served

__all__ = [
    "MAX_ROUNDS",
    "PassResult",
    "Unreachable",
    "UpResult",
    "lock_wait_seconds",
    "run_pass",
    "run_until_serving",
]

MAX_ROUNDS = 3
# How often `podmgr up` looks at a starting pod's URL between passes (no API quota spent).
URL_CHECK_SECONDS = 2.0


@dataclass
class PassResult:
    """What a pass decided (all rounds) and the state it left."""

    actions: list[SetAction] = field(default_factory=list)
    state: State = field(default_factory=lambda: State())


def make_client(watchdog: WatchdogSection, clock: Clock) -> RunPodClient:
    return RunPodClient(
        retry_initial_seconds=watchdog.api_retry_initial_seconds,
        retry_max_seconds=watchdog.api_retry_max_seconds,
    )


def run_pass(
    config: Config,
    config_path: Path,
    *,
    request: Request = "pass",
    dry_run: bool = False,
    emit: Callable[[str], None] = lambda _line: None,
    clock: Clock | None = None,
    client: RunPodClient | None = None,
    proxy_command: Sequence[str] | None = None,
    probe: HealthProbe | None = None,
    names: tuple[str, ...] = (),
) -> PassResult:
    """Run one pass; PodmgrError subclasses carry the exit code of a failure. `names`:
    with request "start", the configured pods to run (`podmgr up NAME...`; default all)."""
    clock = clock or SystemClock()
    client = client or make_client(config.watchdog, clock)
    the_probe = probe or (lambda url: probe_health(url, config.startup.http_timeout_seconds))
    deps = Deps(
        config=config,
        config_path=config_path.resolve(),
        cid=config_id(config_path),
        client=client,
        supervisor=ProxySupervisor(config, config_path, clock, command=proxy_command),
        store=StateStore(config.state_path),
        clock=clock,
        probe=the_probe,
        emit=emit,
    )
    if dry_run:
        return _dry_run(deps, request, names)
    with deps.store.locked(timeout=lock_wait_seconds(config, request)):
        return _reconcile(deps, request, names)


def lock_wait_seconds(config: Config, request: Request) -> float:
    """A cron pass gives way at once; `--shutdown` and `--start` wait for the running pass.

    A person's request must not be lost because a cron pass happens to hold the lock. A
    pass no longer waits for a pod, so the longest it can take is its API calls, each
    retried for up to `api_retry_max_seconds` (a listing, the pod by id, a stop, a resume,
    a terminate, and a create per GPU type), the proxy's start, and the health probes of a
    ready pod; we wait that long plus a minute.
    """
    if request == "pass":
        return 0.0
    api_calls = sum(5 + len(entry.gpu_type_ids) for entry in config.pods)
    probes = config.startup.health_probe_attempts * (
        config.startup.http_timeout_seconds + PROBE_PAUSE_CAP_SECONDS
    )
    return (
        api_calls * config.watchdog.api_retry_max_seconds
        + config.watchdog.proxy_start_timeout_seconds
        + probes
        + 60.0
    )


def _observe_and_plan(
    deps: Deps, state: State, request: Request, names: tuple[str, ...] = ()
) -> tuple[State, list[SetAction], Observed]:
    if is_set(deps.config):
        return _observe_and_plan_set(deps, state, request, names)
    observed = observe(
        deps.config,
        state,
        client=deps.client,
        supervisor=deps.supervisor,
        cid=deps.cid,
        probe=deps.probe,
        clock=deps.clock,
    )
    now = deps.clock.now()
    state = book(state, observed, now)
    return state, list(plan(deps.config, state, observed, now, request)), observed


def _observe_and_plan_set(
    deps: Deps, state: State, request: Request, names: tuple[str, ...]
) -> tuple[State, list[SetAction], Observed]:
    """A set (config `pods`): every pod observed, booked and planned (plan_set.py)."""
    seen = observe_set(
        deps.config,
        state,
        client=deps.client,
        supervisor=deps.supervisor,
        cid=deps.cid,
        probe=deps.probe,
        clock=deps.clock,
    )
    everyone = seen.everyone()
    now = deps.clock.now()
    state = book(state, everyone, now)
    return state, plan_set(deps.config, state, seen, now, request, names), everyone


def _reconcile(deps: Deps, request: Request, names: tuple[str, ...] = ()) -> PassResult:
    result = PassResult()
    state = deps.store.load(deps.clock.now())
    applier = Applier(deps)
    listing_error: PodmgrError | None = None
    for _ in range(MAX_ROUNDS):
        state, actions, observed = _observe_and_plan(deps, state, request, names)
        listing_error = observed.listing_error
        result.actions.extend(actions)
        state = applier.run(actions, state)
        if not applier.replan:
            break
        applier.replan = False
    deps.store.save(state, now=deps.clock.now())
    result.state = state
    _renew_leases(deps.config, state)
    applier.raise_deferred()
    if listing_error is not None:
        raise listing_error
    return result


def _renew_leases(config: Config, state: State) -> None:
    """The guard's lease of every pod, when on (podmgr/guard/lease.py): each pod of a set
    with its own config and record (focus.py)."""
    for name in config.pod_names:
        with state.focused(name):
            renew_lease(pod_config(config, name), state)


def _dry_run(deps: Deps, request: Request, names: tuple[str, ...] = ()) -> PassResult:
    state = deps.store.peek()
    if state is None:
        state = State()
        if deps.store.path.exists():
            state.record(deps.clock.now(), "state_recovered", "unreadable (dry run)")
    state, actions, observed = _observe_and_plan(deps, state, request, names)
    for action in actions:
        deps.emit(f"would {action.describe()}")
    if observed.listing_error is not None:
        raise observed.listing_error
    return PassResult(actions=actions, state=state)


@dataclass(frozen=True)
class UpResult:
    """How `podmgr up`'s loop ended: the pod serves (`url` is the proxy's), or it did not.

    `served`: the session's pod served before the session ended (between two of the loop's
    passes: a cron pass saw it ready, then the session ended). With `error` None that
    session ended normally (`normal` in podmgr/rules.py), and `up` did its job.
    """

    serving: bool
    url: str
    state: State
    error: PodmgrError | None = None
    served: bool = False


def run_until_serving(
    config: Config,
    config_path: Path,
    *,
    emit: Callable[[str], None] = lambda _line: None,
    clock: Clock | None = None,
    pass_once: Callable[[Request], PassResult] | None = None,
    stop: threading.Event | None = None,
    probe: HealthProbe | None = None,
    names: tuple[str, ...] = (),
) -> UpResult:
    """`podmgr up`: passes until the pod serves or the session ends.

    With several pods (config `pods`): until every pod asked for (`names`, default all
    but those ended in the session) serves; the first pass asks for those (`up NAME...`).

    The first pass asks for a session ("start"), the next ones are plain passes, the
    first of them `initial_wait_seconds` later, then every `poll_interval_seconds`. A pass
    that finds the lock held (a cron pass is running) or that failed on a transient API
    error is tried again at the next interval; passes failing to reach RunPod end the
    loop with exit 6 after `unreachable_seconds` (`Unreachable`). A pass that gave up on a
    pod (StartupError) or ended the session ends the loop with its error; Ctrl-C
    (KeyboardInterrupt) goes to the caller, and leaves pods, session and state as they are
    for cron to keep watching.
    `stop`, when set (the CLI's Ctrl-C handler sets it), ends the loop with
    KeyboardInterrupt between passes, never inside one: a pass interrupted between a create
    and the state's save would lose the pod's id. While it waits between passes it checks
    the starting pod's URL (`GET /health`, which costs no API quota) every
    `URL_CHECK_SECONDS` with `probe` (the CLI's default passes; none in scripted tests), and
    runs the next pass as soon as vLLM answers: a pod that serves in 30 s is not reported
    at 60.

    Cron passes run meanwhile: one may see the pod ready, and a later one end the session
    (idle, say) before this loop looks again. The session's pods (state `session.pods`,
    each with the `ready_at` podmgr booked) then say the pod served: that is no failed
    start (`UpResult.served`, no error when it ended normally).
    """
    clock = clock or SystemClock()

    def default_pass(request: Request) -> PassResult:
        asked = names if request == "start" else ()
        return run_pass(config, config_path, request=request, emit=emit, clock=clock, names=asked)

    one_pass = pass_once or default_pass
    request: Request = "start"
    url = config.proxy.url + "/v1"
    wait, pause = config.startup.initial_wait_seconds, config.startup.poll_interval_seconds

    def sleep(seconds: float) -> None:
        if stop is not None and isinstance(clock, SystemClock):
            stop.wait(seconds)
        else:
            clock.sleep(seconds)
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt

    def wait_for_pod(seconds: float, state: State) -> None:
        """Sleep `seconds`, or less when the starting pod's URL already answers /health."""
        waiting = _not_serving(config, state, names)
        pod = state.pods.get(waiting[0]) if waiting else None
        if probe is None or pod is None or pod.endpoint_url is None:
            sleep(seconds)
            return
        end = clock.now() + seconds
        while (left := end - clock.now()) > 0:
            sleep(min(URL_CHECK_SECONDS, left))
            if end - clock.now() > 0 and probe(pod.endpoint_url)[0] == 200:
                return

    failing = Unreachable(config.startup.unreachable_seconds)
    while True:
        started = clock.now()
        try:
            result = one_pass(request)
        except LockHeldError:
            emit(f"a watchdog pass is running (cron); trying again in {pause:g}s")
            sleep(pause)
            continue
        except TransientApiError as error:
            failing.failed(started, clock.now(), error, pause)
            emit(f"this pass failed ({error.message}); trying again in {pause:g}s")
            sleep(pause)
            continue
        failing.reset()
        request = "pass"
        state = result.state
        session = state.session
        if session is not None and not session.active:
            served = pod_served(state)
            return UpResult(False, url, state, _ended(state, served), served=served)
        stopped = _ended_alone(state, names)
        if stopped is not None:
            return UpResult(False, url, state, stopped)
        if not _not_serving(config, state, names):
            return UpResult(True, url, state)
        wait_for_pod(wait, state)
        wait = config.startup.poll_interval_seconds


@dataclass
class Unreachable:
    """`podmgr up`'s count of passes in a row that could not reach RunPod (issue 22: it
    tried again every 10 s forever). A pass that failed on a TransientApiError (network,
    timeout, 5xx, 429: the client retried each call for `api_retry_max_seconds` already)
    starts or extends the streak; once the next pass would start `limit` seconds or more
    after the streak's first pass began, `failed` raises TransientApiError (exit 6)
    naming the URL, the passes and how long they took. A pass that worked resets it."""

    limit: float
    since: float | None = None
    passes: int = 0

    def reset(self) -> None:
        self.since, self.passes = None, 0

    def failed(self, started: float, now: float, error: TransientApiError, pause: float) -> None:
        if self.since is None:
            self.since = started
        self.passes += 1
        if now + pause - self.since < self.limit:
            return
        from podmgr.runpod.rest import rest_url

        took = now - self.since
        raise TransientApiError(
            f"RunPod unreachable at {rest_url()}: {self.passes} pass(es) in a row failed over "
            f"{took:.0f}s, each retrying its calls; the last: {error.message}. Check the "
            "network and RUNPOD_REST_URL, then run `podmgr up` again",
            may_have_applied=error.may_have_applied,
        )


def _not_serving(config: Config, state: State, names: tuple[str, ...]) -> list[str]:
    """The pods `up` waits for that are not ready yet: `names`, or every configured pod
    the session has not ended (one pod: "pod")."""
    ended = state.session.ended_pods if state.session is not None else {}
    wanted = names or tuple(name for name in config.pod_names if name not in ended)
    return [
        name
        for name in wanted
        if (record := state.pods.get(name)) is None or record.phase != "ready"
    ]


def _ended_alone(state: State, names: tuple[str, ...]) -> PodmgrError | None:
    """`podmgr up NAME`: the error when a named pod has ended alone in the running session
    (its crash loop, its share of the budget spent, ...): waiting would never see it serve."""
    ended = state.session.ended_pods if state.session is not None else {}
    gone = [(name, ended[name]) for name in names if name in ended]
    if not gone:
        return None
    name, reason = gone[0]
    detail = (
        f"pod {name} stays down in this session ({label(reason)}); the other pods go on. "
        "`podmgr status` shows why; `podmgr shutdown`, then "
        "`podmgr up`, starts a new session"
    )
    return CrashLoopError(detail) if reason == "crash_loop" else StartupError(detail)


def _ended(state: State, served: bool) -> PodmgrError | None:
    """The error of a session that ended under `podmgr up`, None when it did its job."""
    session = state.session
    assert session is not None
    reason = session.end_reason
    if served:
        if normal_end(reason):
            return None
        detail = f"the pod served, then the session ended ({reason})"
    else:
        detail = f"the session ended ({reason}) before the pod served"
    if reason == "balance_zero":
        return BalanceError(f"{detail}: the RunPod account's balance is at $0; add funds")
    if served and reason == "crash_loop":
        return CrashLoopError(detail)
    if served and reason == "budget":
        return PodmgrError(detail)
    return StartupError(detail)
