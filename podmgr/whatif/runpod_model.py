"""A model of RunPod for `podmgr cost simulate`: pods that start, bill, get preempted, and
are ended by their guard, on a virtual clock.

What it claims, and where from:
- Start-up: no container for `pull_seconds` (image pull), then the container is up and
  vLLM downloads (`download_seconds`) and loads (`load_seconds`) the model before /health
  answers 200. Defaults 150 + 40 + 60 s: the pace `make acceptance` uses for a real pod
  (../shared/RUNPOD_FACTS.md, "Startup as it really is": pulls of vllm-openai take minutes).
  A pod with a network volume keeps the weights after its first download (RunPod docs
  storage/network-volumes); a resumed or restarted pod pulls nothing but downloads again
  without one (its container disk is wiped: docs pods/manage-pods, stop).
- Billing: per second from creation to termination, nothing while stopped (RunPod docs
  accounts-billing/billing; GPU only: the model leaves storage out).
- Spot: RunPod may stop an interruptible pod at any time (docs pods/pricing, spot); here
  at exponentially distributed times, `preemptions_per_hour`, from a seeded generator, so a
  run is reproducible.
- The pod's guard (podmgr/guard/guard.py) ends its own pod at the session deadline, when the
  budget would pass before its next check, and after `idle_seconds` without requests, as
  the rules in its create request say (PODMGR_GUARD_RULES from podmgr/rules.py, in the
  same `pod_spec` the watchdog sends). Its idle
  clock is the guard's: it starts when the model has loaded (vLLM answers `/metrics` only
  then) and moves only with requests that reached the pod (`served`), never with those a
  fallback answered while the pod was not marked ready: a pod is never ended for idle
  before it served, and requests elsewhere do not keep it up.
- Several pods (config `pods`): each pod carries its configured name (`owner`) as the
  watchdog's PODMGR_POD marker in its env (podmgr/watchdog/identity.py), so the listing
  tells the pods apart as RunPod's does; a one-pod config's pods carry none, as before.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from podmgr.guard.guard import Limits
from podmgr.guard.launch import guard_rules_of
from podmgr.runpod.values import PodInfo
from podmgr.watchdog.identity import MARKER_POD, ONE_POD

__all__ = ["RunPodModel", "StartupPace", "VirtualPod"]


@dataclass(frozen=True)
class StartupPace:
    """Seconds of each start-up phase of a fresh pod."""

    pull_seconds: float = 150.0
    download_seconds: float = 40.0
    load_seconds: float = 60.0


@dataclass
class VirtualPod:
    """One pod on the model's clock, with its billed intervals."""

    id: str
    name: str
    gpu_type_id: str
    cost_per_hr: float
    interruptible: bool
    created_at: float
    container_at: float
    ready_at: float
    guard: dict[str, str] | None = None
    preempt_at: float | None = None
    ended_at: float | None = None  # terminated (by podmgr or its guard)
    ended_by: str | None = None
    stopped_at: float | None = None
    intervals: list[list[float]] = field(default_factory=list)
    last_served_at: float | None = None  # the last request the pod answered
    end_reason: str | None = None  # its guard's rule, when its guard ended it
    owner: str = "pod"  # the configured pod it was made for (its PODMGR_POD marker)

    def served(self, now: float) -> None:
        """The pod answered a request at `now`: its guard's idle clock starts again."""
        self.last_served_at = now

    def status(self, now: float) -> str:
        if self.ended_at is not None and now >= self.ended_at:
            return "TERMINATED"
        if self.stopped_at is not None and now >= self.stopped_at:
            return "EXITED"
        return "RUNNING"

    def serving(self, now: float) -> bool:
        return self.status(now) == "RUNNING" and now >= self.ready_at

    def billed_seconds(self, upto: float) -> float:
        return sum(max(0.0, min(end, upto) - start) for start, end in self.intervals)


class RunPodModel:
    """The pods of one replay; `settle(now)` plays what happened to them up to `now`."""

    def __init__(
        self,
        pace: StartupPace,
        *,
        preemptions_per_hour: float = 0.0,
        seed: int = 1,
        volume: bool = False,
        volume_owners: frozenset[str] | None = None,
    ) -> None:
        self.pace = pace
        self.preemptions_per_hour = preemptions_per_hour
        self.rng = random.Random(seed)
        self.volume = volume
        self.pods: dict[str, VirtualPod] = {}
        # Several pods: the pods (by configured name) with a network volume; each keeps its
        # own model's weights there (`volume` is then unused).
        self.volume_owners = volume_owners
        self.weights_on_volume: set[str] = set()
        self.preemptions = 0

    # --- the API's side ------------------------------------------------------------------
    def create(
        self,
        name: str,
        gpu: str,
        price: float,
        spot: bool,
        now: float,
        guard: dict[str, str] | None,
        owner: str = "pod",
    ) -> VirtualPod:
        container_at = now + self.pace.pull_seconds
        pod = VirtualPod(
            id=f"whatif{len(self.pods) + 1:04d}",
            name=name,
            gpu_type_id=gpu,
            cost_per_hr=price,
            interruptible=spot,
            created_at=now,
            container_at=container_at,
            ready_at=container_at + self._download(owner) + self.pace.load_seconds,
            guard=guard,
            intervals=[[now, float("inf")]],
            owner=owner,
        )
        pod.preempt_at = self._next_preemption(pod, now)
        self.pods[pod.id] = pod
        return pod

    def start_again(self, pod_id: str, now: float) -> None:
        """A stopped pod resumed, or a running one stopped and started (restart)."""
        pod = self.pods[pod_id]
        if pod.stopped_at is None:
            pod.intervals[-1][1] = now
        pod.stopped_at = None
        pod.container_at = now
        pod.ready_at = now + self._download(pod.owner) + self.pace.load_seconds
        pod.intervals.append([now, float("inf")])
        pod.preempt_at = self._next_preemption(pod, now)

    def terminate(self, pod_id: str, now: float, by: str = "user") -> None:
        pod = self.pods[pod_id]
        if pod.ended_at is not None:
            return
        pod.ended_at, pod.ended_by = now, by
        if pod.stopped_at is None:
            pod.intervals[-1][1] = now

    def listing(self, now: float) -> tuple[PodInfo, ...]:
        """Our pods as `GET /pods` shows them now (terminated ones are gone)."""
        return tuple(
            PodInfo(
                id=pod.id,
                name=pod.name,
                status=pod.status(now),
                cost_per_hr=pod.cost_per_hr,
                uptime_seconds=max(0.0, now - pod.container_at),
                has_runtime=pod.status(now) == "RUNNING" and now >= pod.container_at,
                interruptible=pod.interruptible,
                env={} if pod.owner == ONE_POD else {MARKER_POD: pod.owner},
            )
            for pod in self.pods.values()
            if pod.status(now) != "TERMINATED"
        )

    # --- what happens on its own -----------------------------------------------------------
    def settle(self, now: float) -> None:
        """Preemptions and guard ends that happened by `now`, in the order they happened."""
        for pod in self.pods.values():
            if pod.ended_at is not None:
                continue
            if pod.stopped_at is None and pod.preempt_at is not None and pod.preempt_at <= now:
                pod.stopped_at = pod.preempt_at
                pod.intervals[-1][1] = pod.preempt_at
                self.preemptions += 1
            if pod.stopped_at is None:
                end = self._guard_end(pod)
                if end is not None and end[0] <= now:
                    # a limit already passed when this start began: its first check ends it
                    self.terminate(pod.id, max(end[0], pod.intervals[-1][0]), by="pod")
                    pod.end_reason = end[1]

    def _guard_end(self, pod: VirtualPod) -> tuple[float, str] | None:
        """When and why the pod's guard ends it: the first of its rules (the env the pod was
        created with, podmgr/guard/guard.py) to reach its limit on this model's clock."""
        if not pod.guard:
            return None
        limits = guard_rules_of(pod.guard)
        ends = []
        for rule in limits.active_rules():
            at = self._reached_at(pod, limits, rule.measure, rule.limit)
            if at is not None:
                ends.append((at, rule.reason))
        return min(ends, key=lambda end: end[0]) if ends else None

    @staticmethod
    def _reached_at(pod: VirtualPod, limits: Limits, measure: str, limit: float) -> float | None:
        """When the guard's `measure` reaches `limit` if nothing else happens first."""
        if measure == "clock":
            return limit
        if measure == "projected_cost_usd" and pod.cost_per_hr > 0:
            hours_left = (limit - limits.spent_usd) / pod.cost_per_hr
            return pod.intervals[0][0] + hours_left * 3600 - limits.interval
        if measure == "idle_seconds":
            # from the load (this start's), or the last request it answered since
            served = pod.last_served_at if pod.last_served_at is not None else pod.ready_at
            return max(pod.ready_at, served) + limit
        return None  # the lease: the replay's passes renew it

    def _download(self, owner: str) -> float:
        """Seconds to download the model: none once it is on the pod's network volume."""
        owners = self.volume_owners
        volume = self.volume if owners is None else owner in owners
        if volume and owner in self.weights_on_volume:
            return 0.0
        if volume:
            self.weights_on_volume.add(owner)
        return self.pace.download_seconds

    def _next_preemption(self, pod: VirtualPod, now: float) -> float | None:
        if not pod.interruptible or self.preemptions_per_hour <= 0:
            return None
        return now + self.rng.expovariate(self.preemptions_per_hour / 3600)

    def billed_seconds(self, upto: float, owner: str | None = None) -> float:
        """Seconds billed up to `upto`: every pod's, or those made for `owner` only."""
        return sum(
            pod.billed_seconds(upto)
            for pod in self.pods.values()
            if owner is None or pod.owner == owner
        )

    def cost_usd(self, upto: float, owner: str | None = None) -> float:
        """Dollars billed up to `upto`: every pod's, or those made for `owner` only."""
        return sum(
            pod.billed_seconds(upto) * pod.cost_per_hr / 3600
            for pod in self.pods.values()
            if owner is None or pod.owner == owner
        )
