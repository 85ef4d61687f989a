"""The simulator's settings and the one shared world its routes act on (pods, faults, logs).

Everything runs on one asyncio loop, so the world needs no locks: a handler reads and
changes it between awaits.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from podmgr.sim import fatal
from podmgr.sim.faults import FaultBook, FaultSpec
from podmgr.sim.podlogs import PodLogBook
from podmgr.sim.pods import PodFleet, SimPod, Timings
from podmgr.sim.ratelimit import DEFAULT_POLICY, RateLimiter
from podmgr.sim.traffic import PodTraffic
from podmgr.sim.volumes import SimVolume

__all__ = ["DEFAULT_API_KEY", "WORLD", "SimSettings", "SimWorld"]

DEFAULT_API_KEY = "sim-key-not-secret"


@dataclass(frozen=True)
class SimSettings:
    """Options of `podmgr sim` (see podmgr/cli/sim.py for their meaning)."""

    host: str = "127.0.0.1"
    port: int = 0
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    # Keys with RunPod's "Read Only" permission (docs: get-started/api-keys.mdx).
    read_only_keys: tuple[str, ...] = ()
    pull_seconds: float = 0.1
    load_seconds: float = 0.1
    download_seconds: float = 0.0
    token_delay: float = 0.0
    edge_timeout_seconds: float = 100.0
    faults: tuple[FaultSpec, ...] = ()
    # CUDA versions of the hosts, and the one the image needs (podmgr/sim/hosts.py).
    host_cuda: tuple[str, ...] = ()
    image_min_cuda: str | None = None
    seed: int | None = None
    # Run each pod's guard start command as a real process (podmgr/sim/podproc.py).
    run_guards: bool = False
    # REST v2 request budget per window (podmgr/sim/ratelimit.py).
    rate_limit: tuple[tuple[str, int], ...] = DEFAULT_POLICY
    # GPU type id -> availability NONE|LOW|MEDIUM|HIGH (podmgr/sim/v2/catalog.py); others HIGH.
    gpu_stock: tuple[tuple[str, str], ...] = ()
    # Whether a v2 create's `args` in RunPod's start-command JSON form replaces the image's
    # ENTRYPOINT/CMD ("honour") or reaches the entrypoint literally ("ignore")
    # (podmgr/sim/v2/create.py).
    start_command_json: str = "honour"

    @property
    def timings(self) -> Timings:
        return Timings(self.pull_seconds, self.load_seconds, self.download_seconds)


@dataclass
class SimWorld:
    """Settings, pods, faults and pod traffic of one simulator process."""

    settings: SimSettings
    fleet: PodFleet
    faults: FaultBook
    rng: random.Random = field(default_factory=random.Random)
    # POST /graphql requests received (any key, any body): tests prove "no API call" with it.
    graphql_requests: int = 0
    # Requests to the REST API v2 under /v2 (any key), and to the retired /v1 (all 410).
    rest_requests: int = 0
    v1_requests: int = 0
    # Each pod's log (podmgr/sim/podlogs.py), and the account's REST v2 request budget.
    logs: PodLogBook = field(default_factory=lambda: PodLogBook(time.time))
    rate: RateLimiter = field(default_factory=RateLimiter)
    # Network volumes by id (podmgr/sim/volumes.py; objects of SimVolume).
    volumes: dict[str, SimVolume] = field(default_factory=dict)
    # What reached each pod's URL, by pod id (podmgr/sim/traffic.py; for tests).
    traffic: dict[str, PodTraffic] = field(default_factory=dict)
    # Pod-scoped API keys -> their pod id (podmgr/sim/podkeys.py).
    pod_keys: dict[str, str] = field(default_factory=dict)
    # True while a pod run by a real process (podmgr/sim/podproc.py) has none running:
    # its URL then answers 502 as a container without vLLM would.
    container_down: Callable[[str], bool] = lambda _pod_id: False
    # The local URL of such a pod's stand-in vllm: every request to the pod's URL passes its
    # middlewares there first (podmgr/sim/edge.py).
    local_vllm_url: Callable[[str], str | None] = lambda _pod_id: None

    @classmethod
    def create(cls, settings: SimSettings, clock: Callable[[], float] = time.time) -> SimWorld:
        rng = random.Random(settings.seed)
        world = cls(settings, PodFleet(settings.timings, clock, rng), FaultBook(rng), rng)
        world.logs = PodLogBook(clock)
        world.rate = RateLimiter(settings.rate_limit)
        world.add_faults(settings.faults)
        world.fleet.on_new_container = world._arm_fatal
        return world

    def _arm_fatal(self, pod: SimPod) -> None:
        """A new container: draw the faults that make its vLLM fail (podmgr/sim/fatal.py)."""
        self.arm_fatal(pod, self.now(), named_only=False)

    def arm_fatal(self, pod: SimPod, now: float, *, named_only: bool) -> None:
        """Draw the fatal faults for the pod's container, unless one is armed already: any that
        matches (`named_only`: only those naming this pod by `pod_id`) whose moment the
        container has not passed (see podmgr/sim/fatal.py's docstring)."""
        if pod.fatal is not None:
            return
        timings = self.settings.timings
        up = pod.uptime(now, timings)
        for name in fatal.FATAL_FAULTS:

            def matches(params: Mapping[str, Any], name: str = name) -> bool:
                target = params.get("pod_id")
                if target != pod.id and (named_only or target not in (None, "")):
                    return False
                if up is None:
                    return True
                moment = fatal.FAILURES[fatal.variant(name, params)].moment
                return up < fatal.moment_offset(moment, pod.download_seconds, timings.load_seconds)

            fault = self.faults.draw(name, matches)
            if fault is not None:
                spec = fault.spec
                pod.fatal = fatal.Fatal.of(name, spec.params, pod.model, pod.spec.docker_args)
                return

    def add_faults(self, specs: Sequence[FaultSpec]) -> None:
        for spec in specs:
            self.faults.add(spec)

    def traffic_of(self, pod_id: str) -> PodTraffic:
        return self.traffic.setdefault(pod_id, PodTraffic())

    def now(self) -> float:
        return self.fleet.clock()


WORLD = web.AppKey("world", SimWorld)
"""Where the aiohttp app keeps its world."""
