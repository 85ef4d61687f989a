"""`plan_set(config, state, observed, now, request, names)`: the watchdog's decisions for a set.

Purely computational, like `plan()`, which it is built on: each configured pod is planned
by today's rules on a one-pod view of the config, state and listing (`_project`), and the
rules that belong to the session are decided once, here. The rules, in order:

1. One pod named "pod" (a one-pod or old flat config): exactly `plan()`, unchanged.
2. `shutdown`: every pod's shutdown (terminate, forget its unanswered create), then the
   session's end and the proxy's stop once. Strays are terminated too.
3. RunPod's listing failed: the session's limits still hold (deadline, and the budget over
   the sum of every pod's price), on the state's records; nothing else is decided.
4. No active session: `start`/first run starts one (once, for every pod, or with
   `podmgr up NAME...` for the named ones: the others are marked ended "not asked for");
   otherwise every pod of ours is kept down.
5. The session's limits, once: the deadline, and the budget with cost so far plus one
   interval at the summed $/h of every pod we hold (`Figures.price_per_hr`): reached ->
   every pod of ours terminated, the session ended.
6. Strays: a pod of ours (prefix and markers) whose `PODMGR_POD` names no configured pod.
7. Each configured pod, in the file's order:
   - ended in this session (`Session.ended_pods`): kept down (any pod of its terminated);
   - its share of the budget spent (focus.py `share_spent`: its name's cost plus one
     interval reaches its guard's limit): terminated, ended alone (`budget_share`: no
     wake, and `podmgr up NAME` does not revive it in this session: a pod made again
     would find no share left);
   - idle: ready, and no request for its model (`last_request_by_model`, the state's or
     the proxy's latest) since the latest of session start and its ready time, for its
     `idle_timeout_seconds` (else limits.idle_timeout_seconds): terminated, ended alone;
   - otherwise today's rules (`plan()` on the pod's view, with the session's limits
     already decided): create, readiness across passes, restarts, crash loop, adoption of
     its own lost pod. An `EndSession` that view decides (crash loop, a pod that never
     gets a container twice, its guard ended it) ends that pod alone (`EndPod`).
8. When every configured pod has ended, the session ends (with the last reason).

Idle is per pod, so a pod idles out alone while the others serve. Each pod's actions are
wrapped in `ForPod(name, action)`; session actions (StartSession, EndSession, StartProxy,
StopProxy) are not. A planning error in one pod's view never keeps the others' (or the
session's) decisions from being made: `_plan_one` turns it into a `Noop` for that pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from podmgr.config import Config
from podmgr.config.pods import PodEntry
from podmgr.config.served import served_models
from podmgr.errors import PodmgrError
from podmgr.rules import Figures, Limits, first_limit, label
from podmgr.runpod.values import PodInfo
from podmgr.state import ONE_POD, Session, State
from podmgr.watchdog.actions import (
    Action,
    EndSession,
    ForgetCreate,
    ForgetPod,
    Noop,
    StartProxy,
    StartSession,
    StopProxy,
    TerminatePod,
)
from podmgr.watchdog.focus import session_for_pod, share_spent
from podmgr.watchdog.identity import owner_of
from podmgr.watchdog.observed import Observed, PodLog, ProxyView, Request
from podmgr.watchdog.plan import plan
from podmgr.watchdog.session import Window, start_reason

__all__ = ["ChoosePods", "EndPod", "ForPod", "ObservedSet", "PodView", "plan_set"]

BUDGET_SHARE = "budget_share"  # rules.py: a pod whose guard's share is spent ends alone
NOT_ASKED = "not asked for (`podmgr up NAME` starts it)"
# End reasons one pod's view may reach that concern every pod: the session's clock, the
# account's balance, the lease of the cron job. Any other ends that pod alone.
SESSION_WIDE = frozenset({"deadline", "balance_zero", "lease"})
_SESSION_ACTIONS = (StartSession, EndSession, StartProxy, StopProxy)


@dataclass(frozen=True)
class PodView:
    """What a pass saw of one configured pod's record: its /health and its new log."""

    healthy: bool | None = None
    health_detail: str = ""
    log: PodLog | None = None


@dataclass(frozen=True)
class ObservedSet:
    """One pass's view for a set: the whole listing of our pods, the proxy, and per pod
    (by configured name) what `Observed` holds for the one pod today."""

    pods: tuple[PodInfo, ...] = ()
    proxy: ProxyView = field(default_factory=ProxyView)
    listing_error: PodmgrError | None = None
    views: Mapping[str, PodView] = field(default_factory=dict)

    def everyone(self) -> Observed:
        """The whole listing as one `Observed` (the session's start rule, and `book()`)."""
        return Observed(pods=self.pods, proxy=self.proxy, listing_error=self.listing_error)

    def for_pod(self, name: str) -> Observed:
        """Today's `Observed` for pod `name`: only the pods of ours made for it."""
        view = self.views.get(name, PodView())
        return Observed(
            pods=tuple(pod for pod in self.pods if owner_of(pod) == name),
            pod_healthy=view.healthy,
            health_detail=view.health_detail,
            proxy=self.proxy,
            listing_error=self.listing_error,
            pod_log=view.log,
        )


@dataclass(frozen=True)
class ForPod:
    """An action of today's rules for the configured pod `pod` (apply runs it on that
    pod's record in the state)."""

    pod: str
    action: Action | EndPod

    def describe(self) -> str:
        return f"[{self.pod}] {self.action.describe()}"


@dataclass(frozen=True)
class EndPod:
    """One pod ends alone (idle, crash loop, ...); the session and the other pods go on.
    Recorded in `Session.ended_pods`; `podmgr up NAME` (or a request with wake_on_request)
    revives it."""

    reason: str
    detail: str = ""

    def describe(self) -> str:
        return f"end this pod: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class ChoosePods:
    """`podmgr up NAME...`: these pods run in the session (their end marks cleared) and,
    in a session it starts, the others are marked ended as not asked for."""

    started: tuple[str, ...]
    left_out: tuple[str, ...] = ()

    def describe(self) -> str:
        left = f"; not starting {', '.join(self.left_out)}" if self.left_out else ""
        return f"run {', '.join(self.started)}{left}"


SetAction = Action | ForPod | ChoosePods


def plan_set(
    config: Config,
    state: State,
    observed: ObservedSet,
    now: float,
    request: Request = "pass",
    names: tuple[str, ...] = (),
) -> list[SetAction]:
    """Decide this pass's actions for every configured pod; see the module docstring."""
    if config.pod_names == (ONE_POD,):
        return list(plan(config, state, observed.for_pod(ONE_POD), now, request))
    if request == "shutdown":
        return _shutdown(config, state, observed, now)
    session = state.session
    if observed.listing_error is not None:
        return _without_listing(config, state, observed, now)
    actions: list[SetAction] = []
    if session is None or not session.active:
        everyone = observed.everyone()
        start = start_reason(state, everyone, request)
        if start is None:
            down = _shutdown(config, state, observed, now, keep_session=True)
            return [*down, *_waking_proxy(config, observed)]
        why, age = start
        session = Session(started_at=now - age, deadline=now - age + config.limits.runtime_seconds)
        actions.append(StartSession(session.started_at, session.deadline, why))
        chosen = _choose(config, names, fresh=True)
        actions.extend(chosen)
        session.ended_pods = _ended_after(session.ended_pods, chosen)
        state = state.model_copy(update={"session": session})
    elif request == "start" and names:
        chosen = _choose(config, names, fresh=False, ended=session.ended_pods)
        actions.extend(chosen)
        session = session.model_copy(
            update={"ended_pods": _ended_after(session.ended_pods, chosen)}
        )
        state = state.model_copy(update={"session": session})
    window = Window(session.started_at, session.deadline, session.cost_usd)
    limit = _session_limit(config, state, observed, window, now)
    if limit is not None:
        return [
            *actions,
            *_terminate_everything(config, state, observed, limit[0]),
            EndSession(*limit),
        ]
    if not observed.proxy.healthy:
        why = "not running" if observed.proxy.pid is None else "not answering /health"
        actions.append(StartProxy(why))
    actions.extend(_strays(config, observed))
    ended = dict(session.ended_pods)
    planned = [
        _plan_pod(config, state, observed, now, window, name, ended) for name in config.pod_names
    ]
    for action in (action for pod_actions in planned for action in pod_actions):
        if isinstance(action, EndSession):  # SESSION_WIDE: every pod ends, none is made
            everything = _terminate_everything(config, state, observed, action.reason)
            return [*actions, *everything, action]
    for name, pod_actions in zip(config.pod_names, planned, strict=True):
        for action in pod_actions:
            if isinstance(action, ForPod) and isinstance(action.action, EndPod):
                ended[name] = action.action.reason
        actions.extend(pod_actions)
    if all(name in ended for name in config.pod_names):
        reasons = [reason for reason in ended.values() if reason != NOT_ASKED]
        actions.append(EndSession(reasons[-1] if reasons else "shutdown", "every pod has ended"))
    return actions


def _choose(
    config: Config, names: tuple[str, ...], fresh: bool, ended: Mapping[str, str] | None = None
) -> list[SetAction]:
    """`podmgr up NAME...`: run these; a fresh session leaves the others out. In a running
    session, a pod whose share of the budget is spent stays down (a pod made again would
    find no share left): `podmgr shutdown`, then `podmgr up`, starts a new session."""
    if not names:
        return []
    for name in names:
        config.pod_entry(name)  # ConfigError naming the configured ones (checked by `up` too)
    kept = {n: why for n, why in (ended or {}).items() if n in names and why == BUDGET_SHARE}
    out: list[SetAction] = [
        ForPod(n, Noop(f"stays down in this session: {label(why)} (`podmgr shutdown`, then "
                       "`podmgr up`, starts a new session)"))
        for n, why in kept.items()
    ]  # fmt: skip
    started = tuple(n for n in names if n not in kept)
    left = tuple(n for n in config.pod_names if n not in names) if fresh else ()
    if started or left:
        out.append(ChoosePods(started, left))
    return out


def _ended_after(ended: Mapping[str, str], chosen: list[SetAction]) -> dict[str, str]:
    """`Session.ended_pods` once the `ChoosePods` in `chosen` applied (apply does the same)."""
    out = dict(ended)
    for action in chosen:
        if isinstance(action, ChoosePods):
            for name in action.started:
                out.pop(name, None)
            out.update({name: NOT_ASKED for name in action.left_out})
    return out


def _project(config: Config, state: State, name: str) -> tuple[Config, State]:
    """Pod `name` as a one-pod config and state: its section as `pod`, its records under
    "pod", its own restart and preemption counters (focus.py), its model's last request as
    `last_request_at`, and without the rules decided for the set (budget and idle:
    `plan_set` decides them)."""
    entry = config.pod_entry(name)
    limits = config.limits.model_copy(update={"max_cost_usd": None, "idle_timeout_seconds": None})
    one = config.model_copy(update={"pod": entry.section(), "pods": (entry,), "limits": limits})
    session = state.session
    view = state.model_copy(
        update={
            "session": None if session is None else session_for_pod(session, name),
            "pods": {ONE_POD: state.pods[name]} if name in state.pods else {},
            "pending_creates": (
                {ONE_POD: state.pending_creates[name]} if name in state.pending_creates else {}
            ),
            "last_request_at": _last_request(state.last_request_by_model, entry),
        }
    )
    return one, view


def _plan_pod(
    config: Config,
    state: State,
    observed: ObservedSet,
    now: float,
    window: Window,
    name: str,
    ended: Mapping[str, str],
) -> list[SetAction]:
    """Pod `name`'s actions: kept down once ended, idle alone, else today's rules."""
    one_config, one_state = _project(config, state, name)
    one_observed = observed.for_pod(name)
    if name in ended:
        return [ForPod(name, action) for action in _down(one_state, one_observed, "pod ended")]
    spent = share_spent(state, name, Limits.of(config).margin_seconds)
    if spent is not None:
        down = _down(one_state, one_observed, "its share of the budget is spent")
        return [ForPod(name, action) for action in [*down, EndPod(BUDGET_SHARE, spent)]]
    idle = _idle(config, state, observed, window, now, name)
    if idle is not None:
        down = _down(one_state, one_observed, "idle")
        return [ForPod(name, action) for action in [*down, EndPod("idle", idle)]]
    return _plan_one(name, one_config, one_state, one_observed, now)


def _plan_one(
    name: str, config: Config, state: State, observed: Observed, now: float
) -> list[SetAction]:
    """Today's rules for one pod; its EndSession ends the pod alone; an error is a Noop."""
    try:
        decided = plan(config, state, observed, now, "pass")
    except Exception as error:  # one pod's error must not stop the others' decisions
        return [ForPod(name, Noop(f"planning failed: {type(error).__name__}: {error}"))]
    out: list[SetAction] = []
    for action in decided:
        if isinstance(action, EndSession) and action.reason in SESSION_WIDE:
            out.append(action)
        elif isinstance(action, EndSession):
            out.append(ForPod(name, EndPod(action.reason, action.detail)))
        elif isinstance(action, (StartProxy, StopProxy, StartSession)):
            continue  # the set decides these once
        else:
            out.append(ForPod(name, action))
    return out


def _last_request(by_model: Mapping[str, float], entry: PodEntry) -> float | None:
    """The latest request for the pod's model: by any id its vLLM answers to (the proxy
    records the id a client sent, `--served-model-name`'s when the vllm_args give one)."""
    marks = [by_model[i] for i in served_models(entry.model, entry.vllm_args) if i in by_model]
    return max(marks, default=None)


def _idle(
    config: Config, state: State, observed: ObservedSet, window: Window, now: float, name: str
) -> str | None:
    """Why pod `name` has idled out, or None. Counted only while it is ready (a pod is never
    ended for idle before it served), from the latest of session start, its ready time and
    the last request for its model (state or proxy)."""
    limit = config.idle_timeout_for(name)
    record = state.pods.get(name)
    if limit is None or record is None or record.phase != "ready":
        return None
    entry = config.pod_entry(name)
    model = entry.model
    marks = [
        window.started_at,
        record.ready_at,
        _last_request(state.last_request_by_model, entry),
        _last_request(observed.proxy.last_request_by_model, entry),
    ]
    idle = now - max(mark for mark in marks if mark is not None)
    if idle < limit:
        return None
    return f"no request for {model} in {idle:.0f}s (idle_timeout_seconds {limit})"


def _session_limit(
    config: Config, state: State, observed: ObservedSet, window: Window, now: float
) -> tuple[str, str] | None:
    """The deadline, or the budget over every pod together: cost so far plus one interval
    at the summed price of every pod of ours (a pod RunPod lists but the state forgot
    bills too)."""
    prices = {record.id: record.cost_per_hr for record in state.pods.values()}
    prices.update({pod.id: pod.cost_per_hr or prices.get(pod.id, 0.0) for pod in observed.pods})
    limits = Limits.of(config)
    figures = Figures(
        now=now,
        started_at=window.started_at,
        deadline=window.deadline,
        limits=Limits(
            runtime_seconds=limits.runtime_seconds,
            max_cost_usd=limits.max_cost_usd,
            idle_seconds=None,
            margin_seconds=limits.margin_seconds,
            lease_seconds=limits.lease_seconds,
        ),
        cost_usd=window.cost_usd,
        price_per_hr=sum(prices.values()),
    )
    return first_limit(figures)


def _strays(config: Config, observed: ObservedSet) -> list[SetAction]:
    """Pods of ours made for no configured pod (renamed or removed from `pods`)."""
    known = set(config.pod_names)
    return [
        TerminatePod(pod.id, f"stray pod of ours: no configured pod is called {owner_of(pod)!r}")
        for pod in observed.pods
        if owner_of(pod) not in known
    ]


def _down(state: State, observed: Observed, reason: str) -> list[Action]:
    """One pod's view kept down: its record and every pod of its terminated (a record
    RunPod no longer lists forgotten), its unanswered create forgotten."""
    actions: list[Action] = []
    record = state.pod
    if record is not None and observed.pod(record.id) is None:
        actions.append(ForgetPod(record.id, "no longer on RunPod"))
    actions.extend(TerminatePod(pod.id, reason) for pod in observed.pods)
    if state.pending_create is not None:
        actions.append(ForgetCreate(state.pending_create.name, reason))
    return actions or [Noop(f"down ({reason})")]


def _terminate_everything(
    config: Config, state: State, observed: ObservedSet, reason: str
) -> list[SetAction]:
    """Every pod of ours RunPod lists and every record the state holds, terminated (for
    its configured pod when it has one, so apply forgets that pod's record)."""
    known = set(config.pod_names)
    listed = {pod.id for pod in observed.pods}
    out: list[SetAction] = []
    for pod in observed.pods:
        owner = owner_of(pod)
        terminate = TerminatePod(pod.id, reason)
        out.append(ForPod(owner, terminate) if owner in known else terminate)
    for name, record in state.pods.items():
        if record.id not in listed:
            out.append(ForPod(name, ForgetPod(record.id, "no longer on RunPod")))
    return out


def _shutdown(
    config: Config, state: State, observed: ObservedSet, now: float, keep_session: bool = False
) -> list[SetAction]:
    """Every configured pod's shutdown, strays terminated, the session and proxy once."""
    actions: list[SetAction] = []
    reason = "session ended" if keep_session else "shutdown requested"
    for name in config.pod_names:
        _, one_state = _project(config, state, name)
        for action in _down(one_state, observed.for_pod(name), reason):
            if not isinstance(action, Noop):
                actions.append(ForPod(name, action))
    actions.extend(_strays(config, observed))
    if keep_session:
        return actions or [Noop("no session; `podmgr up` starts one")]
    if state.session is not None and state.session.active:
        actions.append(EndSession("shutdown", "requested"))
    if observed.proxy.pid is not None and not config.limits.wake_on_request:
        actions.append(StopProxy(observed.proxy.pid))
    return actions or [Noop("no pod and no proxy: already shut down")]


def _without_listing(
    config: Config, state: State, observed: ObservedSet, now: float
) -> list[SetAction]:
    """The listing failed: the session's limits on the state's records, nothing else."""
    why = f"RunPod's pod listing failed ({observed.listing_error})"
    session = state.session
    if session is None or not session.active:
        return [
            *_terminate_everything(config, state, observed, "session ended"),
            Noop(f"{why}; no session"),
        ]
    window = Window(session.started_at, session.deadline, session.cost_usd)
    limit = _session_limit(config, state, observed, window, now)
    if limit is not None:
        return [*_terminate_everything(config, state, observed, limit[0]), EndSession(*limit)]
    return [Noop(f"{why}; limits checked, nothing else decided until the listing works")]


def _waking_proxy(config: Config, observed: ObservedSet) -> list[SetAction]:
    if not config.limits.wake_on_request or observed.proxy.healthy:
        return []
    return [StartProxy("wake_on_request: the proxy wakes a pod on the next request")]
