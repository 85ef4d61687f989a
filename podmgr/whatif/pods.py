"""Replay a trace with several models (config `pods`, issue 23) through the real `plan_set()`.

The one-pod replay (replay.py) drives `plan()`; a set drives `plan_set()`
(podmgr/watchdog/plan_set.py) with an `ObservedSet` built from the RunPod model, on the
same virtual clock, the same cron and `podmgr up` passes, the same RunPod model. What
changes with several pods, and where each rule comes from:

- Routing: a request goes to the pod whose `model` is the trace line's `model` (the proxy
  routes by model, podmgr/proxy/upstream/plan.py); a line without a model goes to the
  first configured pod. A model no pod serves goes to the first fallback upstream serving
  it, else it is *refused* (the proxy's 404 `model_not_found`), counted apart from the
  requests a pod could not serve in time (`unserved`).
- Idle per pod: the proxy's `last_request_by_model` (in the `ObservedSet`'s ProxyView) is
  the latest request per model; `plan_set` ends a pod alone after its own idle time
  (`EndPod`), and each pod's guard has that idle time too (watchdog/focus.py `pod_config`).
- Wake per model: with `wake_on_request`, a request for a pod that is down, when no
  session is active or that pod has ended alone in the running session, runs the pass
  `podmgr up NAME` runs (request "start", names = that pod; proxy/wake.py runs `podmgr up
  ... NAME` with several pods): only that pod starts (a new session marks the others "not
  asked for"). Without it, the modelled person runs `podmgr up` (every pod) when no
  session is active, and `podmgr up NAME` for a pod that ended alone in the running one.
  The rule of the one-pod replay holds per pod too: a pod that ended alone for a reason
  that allows no wake (crash loop, ...: podmgr/rules.py) is not woken again that UTC day.
- Actions: `ForPod(name, action)` is applied with the one-pod handlers of replay.py on
  the pod's one-pod config (`pod_config`) and the state focused on its record, with its
  own counters (`counting_for`), as apply.py `_for_pod` does; `EndPod` and `ChoosePods`
  change `Session.ended_pods` as apply.py `_end_pod` and `_choose` do.
- Prices and guards: each pod's own GPU types priced from the catalog (prices.py, per
  pod); a pod's guard gets the share of the budget `guard_budget` computes at its create
  (apply.py `_with_share`, with the other pods' prices as `_other_prices` reads them) and
  is told its own name's cost so far (`guard_session`).

The result's totals are the sums over the pods (`ReplayResult.by_pod`, one `PodResult`
per configured pod): billed time and cost from the RunPod model's pods by their marker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from podmgr.config import Config
from podmgr.config.upstreams import UpstreamSpec
from podmgr.rules import allows_wake
from podmgr.state import ONE_POD, Session
from podmgr.watchdog import actions as act
from podmgr.watchdog.accounting import book
from podmgr.watchdog.focus import counting_for, guard_budget, guard_session, is_set, pod_config
from podmgr.watchdog.observed import ProxyView, Request
from podmgr.watchdog.plan_set import (
    NOT_ASKED,
    ChoosePods,
    EndPod,
    ForPod,
    ObservedSet,
    PodView,
    SetAction,
    plan_set,
)
from podmgr.whatif.replay import (
    DAY,
    PodResult,
    Prices,
    ReplayLoop,
    ReplayResult,
    finish_result,
    new_model,
    replay,
    run_events,
)
from podmgr.whatif.runpod_model import RunPodModel, StartupPace
from podmgr.whatif.trace import TraceRequest

__all__ = ["replay_pods"]


class _SetReplay(ReplayLoop):
    """The replay's loop for a set: one state, one RunPod model, passes of `plan_set`."""

    def __init__(
        self,
        config: Config,
        prices: Mapping[str, Prices],
        model: RunPodModel,
        fallbacks: list[UpstreamSpec],
    ) -> None:
        super().__init__(config, prices[config.pod_names[0]], model, fallbacks)
        self.whole = config
        self.prices_by_pod = prices
        self.pod_of_model = {entry.model: entry.name for entry in config.pods}
        self.focused_on: str | None = None
        self.last_by_model: dict[str, float] = {}
        self.waiting_for: dict[str, list[float]] = {name: [] for name in config.pod_names}
        self.up_names: set[str] = set()  # the pods a running `podmgr up NAME` waits for
        self.ended_at: dict[str, float] = {}  # when each pod last ended alone
        self.by_pod = {
            entry.name: PodResult(entry.name, entry.model, entry.gpu_type_ids[0])
            for entry in config.pods
        }

    # --- hooks of the one-pod replay -------------------------------------------------------
    def focus(self) -> str:
        return self.focused_on or ONE_POD

    def count_cold_start(self) -> None:
        super().count_cold_start()
        if self.focused_on is not None:
            self.by_pod[self.focused_on].cold_starts += 1

    def price(self, gpu: str, spot: bool) -> float:
        return self.prices_by_pod[self.focus()].of(gpu, spot)

    def create_config(self, gpu: str, spot: bool) -> Config:
        """The pod's config with its guard's share of the budget (apply.py `_with_share`)."""
        name = self.focus()
        others = {other: self.price_of(other) for other in self.whole.pod_names if other != name}
        share = guard_budget(self.whole, self.state, name, {**others, name: self.price(gpu, spot)})
        limits = self.config.limits.model_copy(update={"max_cost_usd": share})
        return self.config.model_copy(update={"limits": limits})

    def price_of(self, name: str) -> float | None:
        """$/h of another pod: its record's, else its first GPU type's (apply.py
        `_other_prices`)."""
        record = self.state.pods.get(name)
        if record is not None and record.cost_per_hr > 0:
            return record.cost_per_hr
        first = self.whole.pod_entry(name).gpu_type_ids[0]
        return self.prices_by_pod[name].of(first, False) or None

    def guard_session(self) -> Session | None:
        return guard_session(self.state.session, self.whole, self.focus())

    # --- requests --------------------------------------------------------------------------
    def pod_for(self, model: str | None) -> str | None:
        """The configured pod serving `model` (no model: the first pod), or None."""
        if model is None:
            return self.whole.pod_names[0]
        return self.pod_of_model.get(model)

    def ready(self, name: str, now: float) -> bool:
        record = self.state.pods.get(name)
        if record is None or record.phase != "ready":
            return False
        live = self.model.pods.get(record.id)
        return live is not None and live.serving(now)

    def wanted(self, name: str) -> bool:
        """Pod `name` runs in the active session (it has not ended alone)."""
        session = self.state.session
        return session is not None and session.active and name not in session.ended_pods

    def may_wake(self, name: str, now: float) -> bool:
        """A request may start pod `name` (`podmgr up NAME`) now: the one-pod rules for a
        session (wake hours, the day after a no-wake end), and for a pod that ended alone
        for a reason that allows no wake, not that UTC day either."""
        if not self.may_start(now):
            return False
        session = self.state.session
        if session is None or not session.active:
            return True
        reason = session.ended_pods.get(name)
        if reason is None or reason == NOT_ASKED or allows_wake(reason):
            return True
        ended = self.ended_at.get(name, now)
        return math.floor(ended / DAY) != math.floor(now / DAY)

    def up_for(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """The names `podmgr up` is run with to start these pods (module docstring): the
        proxy's wake names them; a person starting a session starts every pod."""
        if self.whole.limits.wake_on_request or self.session_active():
            return names
        return ()

    def replay_request(self, request: TraceRequest) -> None:
        now = request.at
        self.model.settle(now)
        name = self.pod_for(request.model)
        if name is None:
            self.elsewhere(request, None)
            return
        self.last_request_at = now
        self.last_by_model[self.by_pod[name].model] = now
        session = self.current_session()
        if session is not None:
            session.last_request_at = now
        if self.session_active() and self.ready(name, now):
            self.serve_pod(name, now)
            return
        if not self.wanted(name) and self.may_wake(name, now):
            self.run_pass(now, "start", self.up_for((name,)))
            if self.session_active() and self.ready(name, now):
                self.serve_pod(name, now)
                return
        self.elsewhere(request, name)

    def elsewhere(self, request: TraceRequest, name: str | None) -> None:
        """A request its pod cannot answer now: a fallback serving its model, else it waits
        for its pod (starting in the session), else unserved (`name` None: refused)."""
        fallback = next((u for u in self.fallbacks if u.serves(request.model)), None)
        if fallback is not None:
            self.result.count_fallback(fallback, request)
            if name is not None:
                self.by_pod[name].fallback += 1
        elif name is None:
            self.result.refused_requests += 1
            refused = self.result.refused_models
            refused[str(request.model)] = refused.get(str(request.model), 0) + 1
        elif self.wanted(name):
            self.waiting_for[name].append(request.at)
        else:
            self.result.unserved_requests += 1
            self.by_pod[name].unserved += 1

    def serve_pod(self, name: str, now: float, waited: float | None = None) -> None:
        """Pod `name` answers a request (its guard sees it)."""
        self.result.pod_requests += 1
        self.by_pod[name].served += 1
        if waited is not None:
            self.result.waits.append(waited)
            self.by_pod[name].waits.append(waited)
        record = self.state.pods.get(name)
        if record is not None and record.id in self.model.pods:
            self.model.pods[record.id].served(now)

    # --- one pass ---------------------------------------------------------------------------
    def observe_set(self, now: float) -> ObservedSet:
        views = {}
        for name, record in self.state.pods.items():
            live = self.model.pods.get(record.id)
            healthy: bool | None = None
            if live is not None and live.status(now) == "RUNNING" and now >= live.container_at:
                healthy = live.serving(now)
            views[name] = PodView(healthy=healthy)
        proxy = ProxyView(
            pid=1,
            healthy=True,
            last_request_at=self.last_request_at,
            last_request_by_model=dict(self.last_by_model),
        )
        return ObservedSet(pods=self.model.listing(now), proxy=proxy, views=views)

    def run_pass(self, now: float, request: Request = "pass", names: tuple[str, ...] = ()) -> None:
        self.model.settle(now)
        observed = self.observe_set(now)
        self.state = book(self.state, observed.everyone(), now)  # as runner._observe_and_plan_set
        self.result.passes += 1
        for action in plan_set(self.whole, self.state, observed, now, request, names):
            self.apply_set(action, now)
        self.settle_waiting(now, request)
        if request == "start" and self.session_active():
            self.up_names |= set(names or self.whole.pod_names)
        self.up_names = {n for n in self.up_names if self.wanted(n) and not self.ready(n, now)}
        self.in_up_loop = bool(self.up_names)
        if self.in_up_loop:
            self.schedule(now + self.whole.startup.poll_interval_seconds, "poll")

    def settle_waiting(self, now: float, request: Request) -> None:
        """Waiting requests: served by their pod once ready; those whose pod went down
        (ended alone, or the session ended) start it again at once where that is allowed
        (the wake, or the modelled person), else they go unserved."""
        for name, waiting in self.waiting_for.items():
            if waiting and self.session_active() and self.ready(name, now):
                for arrived in waiting:
                    self.serve_pod(name, now, now - arrived)
                waiting.clear()
        stranded = [n for n, waiting in self.waiting_for.items() if waiting and not self.wanted(n)]
        wake = tuple(n for n in stranded if request != "start" and self.may_wake(n, now))
        for name in stranded:
            if name not in wake:
                self.result.unserved_requests += len(self.waiting_for[name])
                self.by_pod[name].unserved += len(self.waiting_for[name])
                self.waiting_for[name].clear()
        if wake:
            latest = max(max(self.waiting_for[name]) for name in wake)
            self.run_pass(now, "start", self.up_for(wake))
            session = self.current_session()
            if session is not None:
                session.last_request_at = max(session.last_request_at or latest, latest)

    # --- actions (apply.py's for a set, no I/O) ----------------------------------------------
    def apply_set(self, action: SetAction, now: float) -> None:
        if isinstance(action, ForPod):
            self.apply_for(action.pod, action.action, now)
        elif isinstance(action, ChoosePods):  # Applier._choose
            session = self.state.session
            if session is not None:
                ended = {k: v for k, v in session.ended_pods.items() if k not in action.started}
                ended.update({name: NOT_ASKED for name in action.left_out})
                session.ended_pods = ended
        else:
            self.apply(action, now)

    def apply_for(self, name: str, action: act.Action | EndPod, now: float) -> None:
        """Applier._for_pod: the pod's one-pod config, the state focused on its record."""
        self.config, self.focused_on = pod_config(self.whole, name), name
        try:
            with self.state.focused(name), counting_for(self.state.session, name):
                if isinstance(action, EndPod):  # Applier._end_pod
                    session = self.state.session
                    if session is not None and session.active:
                        session.ended_pods = {**session.ended_pods, name: action.reason}
                        self.ended_at[name] = now
                else:
                    self.apply(action, now)
        finally:
            self.config, self.focused_on = self.whole, None


def replay_pods(
    config: Config,
    requests: list[TraceRequest],
    prices: Mapping[str, Prices],
    *,
    pace: StartupPace,
    preemptions_per_hour: float = 0.0,
    seed: int = 1,
) -> ReplayResult:
    """What `config` would have done and cost on `requests`, per pod and in total;
    `prices` by configured pod name. A one-pod config replays exactly as `replay()`."""
    if not is_set(config):
        result = replay(
            config, requests, prices[ONE_POD], pace=pace,
            preemptions_per_hour=preemptions_per_hour, seed=seed,
        )  # fmt: skip
        result.by_pod = [_one_pod(config, result)]
        return result
    model = new_model(config, pace, preemptions_per_hour, seed)
    fallbacks = [u for u in config.upstreams if u.kind != "pod"]
    run = _SetReplay(config, prices, model, fallbacks)
    end = run_events(run, requests)
    result = finish_result(run.result, model, end)
    for name, waiting in run.waiting_for.items():
        result.unserved_requests += len(waiting)
        run.by_pod[name].unserved += len(waiting)
    for name, part in run.by_pod.items():
        part.billed_seconds = model.billed_seconds(end, name)
        part.cost_usd = model.cost_usd(end, name)
    result.by_pod = list(run.by_pod.values())
    return result


def _one_pod(config: Config, result: ReplayResult) -> PodResult:
    """A one-pod replay's figures as its one pod's (it answers every model)."""
    return PodResult(
        name=ONE_POD,
        model=config.pod.model,
        gpu_type_id=config.pod.gpu_type_ids[0],
        billed_seconds=result.billed_seconds,
        cost_usd=result.pod_cost_usd,
        cold_starts=result.cold_starts,
        served=result.pod_requests,
        waits=list(result.waits),
        fallback=result.fallback_requests,
        unserved=result.unserved_requests,
    )
