"""One watchdog pass: lock, load, then observe -> book -> plan -> apply, in a few rounds.

The lock is held for the whole pass (waits included), so a second watchdog started
meanwhile exits 0 at once (`LockHeldError`). A round ends early when a wait saw the world
change (deadline reached, pod gone or stopped); the next round observes again and plans
from there, at most `MAX_ROUNDS` times. `--dry-run` takes no lock, reads the state
without moving a corrupt file, observes, plans and prints: no mutating API call, no
state write, no proxy start.

When RunPod's pod listing failed, the round plans on the state's pod alone (limits only,
see plan.py) and the pass then ends with the listing's error, so its exit code says that
the pass could not do its whole job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from podmgr.config import Config
from podmgr.errors import PodmgrError
from podmgr.runpod_client import RunPodClient
from podmgr.state import State, StateStore
from podmgr.watchdog.accounting import book
from podmgr.watchdog.actions import Action
from podmgr.watchdog.apply import Applier, Deps
from podmgr.watchdog.clock import Clock, SystemClock
from podmgr.watchdog.identity import config_id
from podmgr.watchdog.observe import observe
from podmgr.watchdog.observed import Observed, Request
from podmgr.watchdog.plan import plan
from podmgr.watchdog.proxy_supervisor import ProxySupervisor
from podmgr.watchdog.readiness import HealthProbe, probe_health

__all__ = ["MAX_ROUNDS", "PassResult", "run_pass"]

MAX_ROUNDS = 3


@dataclass
class PassResult:
    """What a pass decided (all rounds) and the state it left."""

    actions: list[Action] = field(default_factory=list)
    state: State = field(default_factory=lambda: State())


def make_client(config: Config, clock: Clock) -> RunPodClient:
    return RunPodClient(
        retry_initial_seconds=config.api_retry_initial_seconds,
        retry_max_seconds=config.api_retry_max_seconds,
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
) -> PassResult:
    """Run one pass; PodmgrError subclasses carry the exit code of a failure."""
    clock = clock or SystemClock()
    client = client or make_client(config, clock)
    the_probe = probe or (lambda url: probe_health(url, config.http_timeout_seconds))
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
        return _dry_run(deps, request)
    with deps.store.locked(timeout=lock_wait_seconds(config, request)):
        return _reconcile(deps, request)


def lock_wait_seconds(config: Config, request: Request) -> float:
    """A cron pass gives way at once; `--shutdown` and `--start` wait for the running pass.

    A person's request must not be lost because a cron pass happens to be waiting for a
    pod: the longest such wait is the readiness loop, so we wait that long plus a minute.
    """
    if request == "pass":
        return 0.0
    per_poll = config.poll_interval_seconds + config.http_timeout_seconds
    return config.initial_wait_seconds + config.max_startup_attempts * per_poll + 60.0


def _observe_and_plan(
    deps: Deps, state: State, request: Request
) -> tuple[State, list[Action], Observed]:
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
    return state, plan(deps.config, state, observed, now, request), observed


def _reconcile(deps: Deps, request: Request) -> PassResult:
    result = PassResult()
    state = deps.store.load(deps.clock.now())
    applier = Applier(deps)
    listing_error: PodmgrError | None = None
    for _ in range(MAX_ROUNDS):
        state, actions, observed = _observe_and_plan(deps, state, request)
        listing_error = observed.listing_error
        result.actions.extend(actions)
        state = applier.run(actions, state)
        if not applier.replan:
            break
        applier.replan = False
    deps.store.save(state, now=deps.clock.now())
    result.state = state
    applier.raise_deferred()
    if listing_error is not None:
        raise listing_error
    return result


def _dry_run(deps: Deps, request: Request) -> PassResult:
    state = deps.store.peek()
    if state is None:
        state = State()
        if deps.store.path.exists():
            state.record(deps.clock.now(), "state_recovered", "unreadable (dry run)")
    state, actions, observed = _observe_and_plan(deps, state, request)
    for action in actions:
        deps.emit(f"would {action.describe()}")
    if observed.listing_error is not None:
        raise observed.listing_error
    return PassResult(actions=actions, state=state)
