"""Replay a request trace through the real `plan()` on a virtual clock (issue 14, what-if).

Each watchdog pass is the real one's decision part: `book()` (podmgr/watchdog/accounting)
then `plan()` (podmgr/watchdog/plan), on what the RunPod model (runpod_model.py) shows at
that virtual time. Their actions are applied to an in-memory State with the transitions
podmgr/watchdog/apply.py makes (each handler below names its counterpart), without I/O.
Pods are created with the real `pod_spec`, so their guards carry the real limits.

Passes run when the real ones would: cron every `watchdog_interval_seconds` (aligned as
cron aligns them), and `podmgr up`'s loop every `poll_interval_seconds` from a session's
start until the pod serves (runner.run_until_serving).

How sessions start:
- `wake_on_request: true`: a request that finds no active session starts one (the proxy's
  wake, podmgr/proxy/wake.py), outside `wake_hours` not (UTC in the replay);
- otherwise a person runs `podmgr up` at their first request after the pod went down (the
  modelled person notices at once and waits like the request does).
Either way, after a session ended for a reason that allows no wake (budget, crash loop,
no container, ...: the table in podmgr/rules.py), nothing starts another until the next
UTC day: the wake does not, and the person is modelled as respecting the limit for the day.
Each session keeps the id the watchdog's state gave it (state.Session.id).

A request is served by the pod when the state says it is ready; else by the first
fallback upstream (`kind: openai`) serving its model, paid by its tokens; else it waits for
the pod to be marked ready (that wait is reported). If its session ends first (the pod
was already down when it came: its guard ended it for idle), the next session starts for
it at once when one may start (as the wake or the person would), else it goes unserved.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from podmgr.config import Config
from podmgr.config.upstreams import UpstreamSpec, in_wake_hours
from podmgr.guard.launch import guard_limits
from podmgr.rules import allows_wake, label
from podmgr.state import ONE_POD, PodRecord, Session, State
from podmgr.watchdog import actions as act
from podmgr.watchdog.accounting import accrue_pod, book
from podmgr.watchdog.focus import is_set
from podmgr.watchdog.observed import Observed, ProxyView, Request
from podmgr.watchdog.plan import plan
from podmgr.watchdog.spec import pod_spec
from podmgr.whatif.runpod_model import RunPodModel, StartupPace, VirtualPod
from podmgr.whatif.trace import TraceRequest

__all__ = [
    "PodResult",
    "Prices",
    "ReplayLoop",
    "ReplayResult",
    "SessionResult",
    "always_on",
    "finish_result",
    "new_model",
    "replay",
    "run_events",
    "token_cost",
    "wait_percentiles",
]

DAY = 86400.0


@dataclass(frozen=True)
class Prices:
    """Hourly price of one pod per GPU type, on-demand and spot."""

    on_demand: dict[str, float]
    spot: dict[str, float]
    source: str

    def of(self, gpu: str, spot: bool) -> float:
        table = self.spot if spot and gpu in self.spot else self.on_demand
        return table.get(gpu, 0.0)


@dataclass
class SessionResult:
    started_at: float
    session_id: str = ""
    ended_at: float | None = None
    end_reason: str | None = None
    deadline: float = 0.0
    cost_usd: float = 0.0
    last_request_at: float | None = None

    @property
    def ended_why(self) -> str:
        """The end reason as people are told it (podmgr/rules.py), "-" while running."""
        return label(self.end_reason)


@dataclass
class PodResult:
    """One configured pod's part of a replay (config `pods`; a one-pod config: "pod")."""

    name: str
    model: str
    gpu_type_id: str
    billed_seconds: float = 0.0
    cost_usd: float = 0.0
    cold_starts: int = 0
    served: int = 0  # requests the pod answered (at once or after waiting)
    waits: list[float] = field(default_factory=list)  # those that waited for it to be ready
    fallback: int = 0  # requests for its model a fallback upstream answered
    unserved: int = 0  # requests for its model nothing answered


@dataclass
class ReplayResult:
    """What one config would have cost on the trace."""

    billed_seconds: float = 0.0
    pod_cost_usd: float = 0.0
    fallback_cost_usd: float = 0.0
    sessions: list[SessionResult] = field(default_factory=list)
    cold_starts: int = 0
    preemptions: int = 0
    waits: list[float] = field(default_factory=list)
    pod_requests: int = 0
    fallback_requests: int = 0
    fallback_without_tokens: int = 0  # served by a fallback, no token counts in the trace
    unserved_requests: int = 0
    pod_ends: list[tuple[float, str | None]] = field(default_factory=list)
    pods: list[VirtualPod] = field(default_factory=list)  # the model's pods, as they ended
    passes: int = 0
    # Requests for a model no configured pod and no fallback serves (several pods only: a
    # one-pod config's pod answers every model, as before issue 23).
    refused_requests: int = 0
    refused_models: dict[str, int] = field(default_factory=dict)  # how many per model
    by_pod: list[PodResult] = field(default_factory=list)  # config `pods`: per pod

    @property
    def cost_usd(self) -> float:
        return self.pod_cost_usd + self.fallback_cost_usd

    def count_fallback(self, fallback: UpstreamSpec, request: TraceRequest) -> None:
        """`request` answered by `fallback`: counted, with its tokens' cost."""
        self.fallback_requests += 1
        self.fallback_cost_usd += token_cost(fallback, request)
        if not request.tokens_known:
            self.fallback_without_tokens += 1


def _percentile(values: list[float], point: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(point * len(ordered)) - 1)]


def wait_percentiles(result: ReplayResult | PodResult) -> tuple[float | None, float | None]:
    return _percentile(result.waits, 0.5), _percentile(result.waits, 0.95)


def always_on(requests: list[TraceRequest], price_per_hour: float) -> tuple[float, float]:
    """(billed hours, dollars) of one pod up from the first request to the last."""
    hours = (requests[-1].at - requests[0].at) / 3600
    return hours, hours * price_per_hour


class ReplayLoop:
    """The loop's state: the watchdog's State, the model, the waiting requests."""

    def __init__(
        self, config: Config, prices: Prices, model: RunPodModel, fallbacks: list[UpstreamSpec]
    ) -> None:
        self.config = config
        self.prices = prices
        self.model = model
        self.fallbacks = fallbacks
        self.state = State()
        self.result = ReplayResult()
        self.last_request_at: float | None = None
        self.waiting: list[float] = []
        self.in_up_loop = False
        self.names = 0
        self.queue: list[tuple[float, int, str]] = []
        self.sequence = 0

    # --- hooks a set's replay (whatif/pods.py) overrides ------------------------------------
    def focus(self) -> str:
        """The configured pod the action being applied is for ("pod": a one-pod config)."""
        return ONE_POD

    def count_cold_start(self) -> None:
        self.result.cold_starts += 1

    def anything_up(self, now: float) -> bool:
        """A cron pass runs: a session is active, a record is held or RunPod lists a pod."""
        return self.session_active() or bool(self.state.pods) or bool(self.model.listing(now))

    def create_config(self, gpu: str, spot: bool) -> Config:
        """The config a pod is created with (a set's pod: its guard's share of the budget)."""
        return self.config

    def guard_session(self) -> Session | None:
        """The session as the new pod's guard is told it (watchdog/focus.py)."""
        return self.state.session

    def price(self, gpu: str, spot: bool) -> float:
        return self.prices.of(gpu, spot)

    def poll(self, now: float) -> None:
        """`podmgr up`'s loop polls (runner.run_until_serving)."""
        if self.in_up_loop:
            self.run_pass(now)

    # --- events ----------------------------------------------------------------------------
    def schedule(self, at: float, kind: str) -> None:
        self.sequence += 1
        heapq.heappush(self.queue, (at, self.sequence, kind))

    def session_active(self) -> bool:
        return self.state.session is not None and self.state.session.active

    def pod_ready(self, now: float) -> bool:
        pod = self.state.pod
        if pod is None or pod.phase != "ready":
            return False
        live = self.model.pods.get(pod.id)
        return live is not None and live.serving(now)

    def replay_request(self, request: TraceRequest) -> None:
        now = request.at
        self.model.settle(now)
        self.last_request_at = now
        session = self.current_session()
        if session is not None:
            session.last_request_at = now
        if self.session_active() and self.pod_ready(now):
            self.serve(now)
            return
        if not self.session_active() and self.may_start(now):
            self.run_pass(now, "start")
            if self.session_active() and self.pod_ready(now):
                self.serve(now)
                return
        fallback = next((u for u in self.fallbacks if u.serves(request.model)), None)
        if fallback is not None:
            self.result.count_fallback(fallback, request)
        elif self.session_active():
            self.waiting.append(now)
        else:
            self.result.unserved_requests += 1

    def serve(self, now: float) -> None:
        """The state's pod answers a request (its guard sees it)."""
        self.result.pod_requests += 1
        pod = self.state.pod
        if pod is not None and pod.id in self.model.pods:
            self.model.pods[pod.id].served(now)

    def may_start(self, now: float) -> bool:
        """A wake (or the modelled person) may start a session now (module docstring)."""
        session = self.state.session
        if session is not None and not session.active and not allows_wake(session.end_reason):
            ended = session.ended_at or now
            if math.floor(ended / DAY) == math.floor(now / DAY):
                return False
        if self.config.limits.wake_on_request:
            minute = int(now % DAY // 60)
            return in_wake_hours(self.config.limits.wake_hours, minute)
        return True

    def current_session(self) -> SessionResult | None:
        if self.result.sessions and self.result.sessions[-1].ended_at is None:
            return self.result.sessions[-1]
        return None

    # --- one pass ---------------------------------------------------------------------------
    def observe(self, now: float) -> Observed:
        pods = self.model.listing(now)
        pod = self.state.pod
        healthy: bool | None = None
        if pod is not None:
            live = self.model.pods.get(pod.id)
            if live is not None and live.status(now) == "RUNNING" and now >= live.container_at:
                healthy = live.serving(now)
        proxy = ProxyView(pid=1, healthy=True, last_request_at=self.last_request_at)
        return Observed(pods=pods, pod_healthy=healthy, proxy=proxy)

    def run_pass(self, now: float, request: Request = "pass") -> None:
        self.model.settle(now)
        observed = self.observe(now)
        self.state = book(self.state, observed, now)
        self.result.passes += 1
        for action in plan(self.config, self.state, observed, now, request):
            self.apply(action, now)
        if self.session_active() and self.pod_ready(now):
            self.serve_waiting(now)
        if self.waiting and not self.session_active():
            # The session ended (its pod's guard ended it for idle, say) with requests
            # waiting: they came after the pod went down, so the wake, or the modelled
            # person, starts the next session for them at once, where that is allowed.
            if request != "start" and self.may_start(now):
                self.run_pass(now, "start")
                session = self.current_session()
                if session is not None and self.waiting:
                    session.last_request_at = max(self.waiting)
                return
            self.result.unserved_requests += len(self.waiting)
            self.waiting.clear()
        if request == "start" and self.session_active():
            self.in_up_loop = True
        if self.in_up_loop:
            if self.session_active() and not self.pod_ready(now):
                self.schedule(now + self.config.startup.poll_interval_seconds, "poll")
            else:
                self.in_up_loop = False

    def serve_waiting(self, now: float) -> None:
        for arrived in self.waiting:
            self.result.waits.append(now - arrived)
            self.serve(now)
        self.waiting.clear()

    # --- actions (apply.py's transitions, no I/O) --------------------------------------------
    def apply(self, action: act.Action, now: float) -> None:
        state = self.state
        if isinstance(action, act.StartSession):  # Applier._start_session
            session = Session(started_at=action.started_at, deadline=action.deadline)
            state.session = session
            self.result.sessions.append(
                SessionResult(action.started_at, session.id, deadline=action.deadline)
            )
        elif isinstance(action, act.CreatePod):  # Applier._create (first GPU type has room)
            self.create(action, now)
        elif isinstance(action, act.PodProgress):  # Applier._progress
            pod = state.pod
            if pod is not None and pod.id == action.pod_id:
                if pod.progress != action.phase:
                    pod.progress, pod.progress_since = action.phase, now
                if action.phase in ("loading", "serving") and pod.container_seen_at is None:
                    pod.container_seen_at = now
        elif isinstance(action, act.MarkReady) and state.pod is not None:  # _mark_ready
            pod = state.pod
            pod.phase, pod.ready_at, pod.unhealthy_since = "ready", now, None
            pod.progress, pod.progress_since = "serving", now
            pod.container_seen_at = pod.container_seen_at or now
        elif isinstance(action, act.TerminatePod):  # Applier._terminate
            self.terminate(action.pod_id, now)
        elif isinstance(action, act.AbandonPod):  # Applier._abandon
            self.terminate(action.pod_id, now)
            self.count_restart(now)
            if action.replace and state.session is not None:
                state.session.no_container_replacements += 1
        elif isinstance(action, act.ForgetPod):
            state.pod = None
        elif isinstance(action, act.RestartPod | act.ResumePreempted):
            self.start_again(action, now)
        elif isinstance(action, act.EndSession):  # Applier._end_session
            self.end_session(action, now)
        # StartProxy, StopProxy, Noop: the proxy is always up in the replay. AdoptPod: a
        # create here never gets lost, so there is no stray to adopt.

    def create(self, action: act.CreatePod, now: float) -> None:
        gpu = action.gpu_type_ids[0]
        self.names += 1
        name = f"{self.config.pod.pod_name_prefix}whatif-{self.names}"
        spec = pod_spec(
            self.create_config(gpu, action.spot), "whatif", name, gpu, "sk-whatif",
            spot=action.spot, session=self.guard_session(), now=now,
        )  # fmt: skip
        guard = guard_limits(spec.env)
        price = self.price(gpu, action.spot)
        live = self.model.create(name, gpu, price, action.spot, now, guard, self.focus())
        self.state.pod = PodRecord(
            id=live.id, name=name, gpu_type_id=gpu, created_at=now, phase="starting",
            vllm_api_key="sk-whatif", interruptible=action.spot, guard=guard,
        )  # fmt: skip
        self.count_cold_start()
        if action.replaces_lost_pod:
            self.count_restart(now)

    def start_again(self, action: act.RestartPod | act.ResumePreempted, now: float) -> None:
        """Applier._restart and _resume_preempted: the same pod starts again."""
        state, pod = self.state, self.state.pod
        assert pod is not None
        if isinstance(action, act.ResumePreempted):
            if state.session is not None:
                state.session.preemptions = action.preemption
            if action.on_demand:
                self.terminate(pod.id, now)
                self.create(act.CreatePod(tuple(self.config.pod.gpu_type_ids), spot=False), now)
                return
        else:
            self.count_restart(now)
            pod.restarts += 1
        pod.phase, pod.last_restart_at = "restarting", now
        pod.ready_at = pod.container_seen_at = pod.progress = pod.progress_since = None
        self.model.start_again(pod.id, now)
        self.count_cold_start()

    def count_restart(self, now: float) -> None:
        if self.state.session is not None:
            self.state.session.restarts += 1
            self.state.session.last_restart_at = now

    def terminate(self, pod_id: str, now: float) -> None:
        self.model.terminate(pod_id, now)
        pod = self.state.pod
        if pod is not None and pod.id == pod_id:
            if self.state.session is not None:
                accrue_pod(self.state.session, pod, now, self.focus())
            self.state.pod = None

    def end_session(self, action: act.EndSession, now: float) -> None:
        session = self.state.session
        if session is None or not session.active:
            return
        session.ended_at, session.end_reason = now, action.reason
        current = self.current_session()
        if current is not None:
            current.ended_at, current.end_reason = now, action.reason
            current.cost_usd = session.cost_usd
        self.in_up_loop = False  # requests still waiting: run_pass decides their fate


def token_cost(upstream: UpstreamSpec, request: TraceRequest) -> float:
    price_in = upstream.price_input_per_million or 0.0
    price_out = upstream.price_output_per_million or 0.0
    return (request.prompt_tokens * price_in + request.completion_tokens * price_out) / 1e6


def replay(
    config: Config,
    requests: list[TraceRequest],
    prices: Prices,
    *,
    pace: StartupPace,
    preemptions_per_hour: float = 0.0,
    seed: int = 1,
) -> ReplayResult:
    """What `config` would have done and cost on `requests` (sorted by time); a config
    with several pods is replayed by `podmgr.whatif.pods.replay_pods`."""
    if is_set(config):
        raise ValueError("a config with several pods: replay it with whatif.pods.replay_pods")
    model = new_model(config, pace, preemptions_per_hour, seed)
    fallbacks = [u for u in config.upstreams if u.kind != "pod"]
    run = ReplayLoop(config, prices, model, fallbacks)
    end = run_events(run, requests)
    result = finish_result(run.result, model, end)
    result.unserved_requests += len(run.waiting)
    return result


def finish_result(result: ReplayResult, model: RunPodModel, end: float) -> ReplayResult:
    """`result` with what the model of RunPod billed and ended by `end` (one pod or a set)."""
    result.billed_seconds = model.billed_seconds(end)
    result.pod_cost_usd = model.cost_usd(end)
    result.preemptions = model.preemptions
    result.pod_ends = [(p.ended_at or end, p.ended_by) for p in model.pods.values()]
    result.pods = list(model.pods.values())
    return result


def new_model(
    config: Config, pace: StartupPace, preemptions_per_hour: float, seed: int
) -> RunPodModel:
    """The RunPod model of one replay; with several pods, each pod's network volume keeps
    that pod's model."""
    volumes = frozenset(e.name for e in config.pods if e.network_volume_id is not None)
    return RunPodModel(
        pace,
        preemptions_per_hour=preemptions_per_hour,
        seed=seed,
        volume=config.pod.network_volume_id is not None,
        volume_owners=volumes if len(config.pods) > 1 else None,
    )


def run_events(run: ReplayLoop, requests: list[TraceRequest]) -> float:
    """Play the trace's requests, cron's passes and `podmgr up`'s polls in time order;
    the time the replay ends (the last request, or the last pod's end after it)."""
    # Not a first run on this machine: a first pass with no history would start a session.
    run.state.record(requests[0].at, "whatif", "replay start")
    interval = float(run.config.watchdog.interval_seconds)
    first_cron = math.floor(requests[0].at / interval) * interval + interval
    run.schedule(first_cron, "cron")
    for index, request in enumerate(requests):
        run.schedule(request.at, f"request:{index}")
    end_of_trace = requests[-1].at
    model = run.model
    while run.queue:
        at, _, kind = heapq.heappop(run.queue)
        if kind.startswith("request:"):
            run.replay_request(requests[int(kind.split(":")[1])])
        elif kind == "poll":
            run.poll(at)
        else:  # cron: keeps running while the trace lasts or anything is up
            if run.anything_up(at):
                run.run_pass(at)
            if at < end_of_trace or run.session_active() or model.listing(at):
                run.schedule(at + interval, "cron")
    return max(at for at in [end_of_trace, *(p.ended_at or 0.0 for p in model.pods.values())])
