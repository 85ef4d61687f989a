"""The pods doctor creates, and every wait on them, each bounded by a time given.

Doctor never leaves a billing pod: every create is recorded before anything else happens
(the id in the meter, the unique name while the answer is out), and `terminate_all` ends
whatever is still alive, looking a pod up by name when its create answered in a way that
may have made it (REST v2 creates can succeed and still answer an error: runpodctl#45,
transformerlab-app#2305; ../shared/RUNPOD_FACTS.md).

Each wait looks at RunPod at most once per `poll_seconds`: the rate limit is per user and
the guard in the pod spends the same budget (RunPod OpenAPI v2, TooManyRequestsError).
"""

from __future__ import annotations

from dataclasses import dataclass

from podmgr.config import Config
from podmgr.doctor.report import Meter
from podmgr.errors import PodmgrError, StartupError, UnconfirmedCreateError
from podmgr.guard.check import GuardFinding, guard_finding
from podmgr.guard.launch import guard_problem
from podmgr.runpod.client import RunPodClient
from podmgr.state import Session
from podmgr.watchdog.clock import Clock
from podmgr.watchdog.identity import new_pod_name, new_vllm_key
from podmgr.watchdog.readiness import HealthProbe, probe_health
from podmgr.watchdog.spec import pod_spec

__all__ = ["DoctorPod", "DoctorPods"]


@dataclass(frozen=True)
class DoctorPod:
    """A pod doctor made: its id and name, the key its vLLM requires, whether it has the
    guard, and when it was created (epoch seconds)."""

    id: str
    name: str
    vllm_key: str
    guarded: bool
    created_at: float


class DoctorPods:
    """Creates doctor's pods and waits on them; `terminate_all` for the `finally`."""

    def __init__(
        self,
        client: RunPodClient,
        config: Config,
        cid: str,
        session: Session,
        meter: Meter,
        clock: Clock,
        *,
        poll_seconds: float,
        price: float,
        probe: HealthProbe = probe_health,
    ) -> None:
        self.client = client
        self.config = config
        self.cid = cid
        self.session = session
        self.meter = meter
        self.clock = clock
        self.poll = poll_seconds
        self.price = price
        self.probe = probe
        self.created: list[str] = []
        self._unconfirmed: list[str] = []

    # --- create and end ---------------------------------------------------------------
    def create(self, *, guard: bool) -> DoctorPod:
        """One pod on the config's GPU type and cloud, with the guard when asked and
        possible (podmgr/guard/launch.py `guard_problem`)."""
        cfg, now = self.config, self.clock.now()
        name, key = new_pod_name(cfg.pod.pod_name_prefix, self.cid), new_vllm_key()
        with_guard = guard and guard_problem(cfg) is None
        spec = pod_spec(
            cfg, self.cid, name, cfg.pod.gpu_type_ids[0], key, cfg.pod.cloud_type,
            session=self.session, now=now, guard=with_guard,
        )  # fmt: skip
        self._unconfirmed.append(name)
        try:
            pod_id = self.client.create_pod(spec)
        except UnconfirmedCreateError:
            raise  # the name stays: terminate_all looks for it
        except PodmgrError:
            self._unconfirmed.remove(name)  # refused: nothing was made
            raise
        self._unconfirmed.remove(name)
        self.created.append(pod_id)
        self.meter.created(pod_id, self.price, self.clock.now())
        return DoctorPod(pod_id, name, key, with_guard, now)

    def terminate(self, pod_id: str) -> None:
        self.client.terminate_pod(pod_id)
        self.meter.ended(pod_id, self.clock.now())

    def terminate_all(self) -> list[str]:
        """Terminate every pod doctor made that is not seen ended; the ids terminated.
        Keeps going past a failure or a Ctrl-C, and raises the first one at the end."""
        done: list[str] = []
        first: BaseException | None = None
        ids = self.meter.alive()
        try:
            ids += self._pods_by_name()
        except PodmgrError as error:  # the known pods are terminated all the same
            first = error
        for pod_id in ids:
            try:
                self.terminate(pod_id)
                done.append(pod_id)
            except (PodmgrError, KeyboardInterrupt) as error:
                first = first or error
        if first is not None:
            raise first
        return done

    def _pods_by_name(self) -> list[str]:
        """Pods of creates that may have applied without an answer (found by name)."""
        if not self._unconfirmed:
            return []
        names = set(self._unconfirmed)
        return [pod.id for pod in self.client.list_pods() if pod.name in names]

    # --- waits ---------------------------------------------------------------------------
    def guard_finding(self, pod: DoctorPod, until: float) -> GuardFinding | None:
        """Follow the pod's container log (`GET /pods/{id}/logs`, source `container`, SSE)
        until the guard's armed line or vLLM's refusal of the start-command JSON
        (podmgr/guard/check.py), or `until`; None when neither came in time."""
        rest = self.client.rest()
        cursor: list[str | None] = [None]

        def read() -> list[str]:
            lines = rest.follow_logs(
                pod.id, source="container", after=cursor[0],
                idle_seconds=self.poll, max_seconds=max(self.poll, 5.0),
            )  # fmt: skip
            texts = []
            for line in lines:
                cursor[0] = line.id or cursor[0]
                texts.append(line.line)
            return texts

        while self.clock.now() < until:
            began = self.clock.now()
            finding = guard_finding(self.client.call("pod_logs", read))
            if finding is not None:
                return finding
            self._still_there(pod)
            self.clock.sleep(began + self.poll - self.clock.now())  # a stream that ends early
        return None

    def wait_serving(self, pod: DoctorPod, until: float) -> str | None:
        """Probe `GET {pod url}/health` until 200 (podmgr/watchdog/readiness.py); None when
        it serves, else the last thing seen when `until` came."""
        url = self.config.pod.pod_url(pod.id)
        detail = "not probed"
        while self.clock.now() < until:
            status, detail = self.probe(url)
            if status == 200:
                return None
            self._still_there(pod)
            self.clock.sleep(self.poll)
        return detail

    def wait_gone(self, pod: DoctorPod, until: float) -> float | None:
        """`GET /pods/{id}` until RunPod no longer has the pod (404 or TERMINATED); when it
        was seen gone (epoch seconds), or None when `until` came first."""
        while self.clock.now() < until:
            if self.client.get_pod(pod.id) is None:
                seen = self.clock.now()
                self.meter.ended(pod.id, seen)
                return seen
            self.clock.sleep(self.poll)
        return None

    def _still_there(self, pod: DoctorPod) -> None:
        """StartupError when the pod is gone or in ERROR; notes RunPod's rate otherwise."""
        live = self.client.get_pod(pod.id)
        if live is None:
            self.meter.ended(pod.id, self.clock.now())
            raise StartupError(f"pod {pod.id} is gone from RunPod before it served")
        if live.errored:
            raise StartupError(f"pod {pod.id} is in ERROR: its container failed")
        self.meter.rate_seen(pod.id, live.cost_per_hr)
