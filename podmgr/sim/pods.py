"""Simulated pods: their lifecycle on a clock, and the billing ledger that outlives them.

A pod's phase is computed from the clock, never from timers: after create, resume or reset
its container starts afresh. It is RUNNING with no runtime for `pull_seconds` ("pulling";
the GraphQL runtime appears when the container starts, RUNPOD_FACTS.md "Pod lifecycle as
the API shows it"), then has runtime ports while the weights download for
`download_seconds` ("downloading") and while vLLM loads for `load_seconds` ("loading"),
the pod URL answering 502 meanwhile, then serves ("serving") until it is stopped, its
container crashes ("crashed": RUNNING without runtime) or its vLLM dies ("dead").

Where the weights go: onto the pod's volume when vLLM's Hugging Face cache is on it (env
`HF_HOME` under `volume_mount_path`, or `--download-dir` under it in the start command)
and `volume_in_gb > 0`; else onto the container disk. Stopping a pod wipes its container
disk ("any data that is only stored on container storage will be lost", RunPod docs
pods/maintenance-and-outages; "The data on the container disk is wiped when the Pod
restarts", RunPod OpenAPI v1, Pod.containerDiskInGb): the next container downloads again,
unless the weights finished downloading onto the volume, which keeps them.

The fault `transient_status` makes a created or resumed pod show CREATED or RESTARTING
(GraphQL; REST v2 shows PROVISIONING or STARTING) for a while, without a container.
Billing runs while the pod is RUNNING; stopped (EXITED) and terminated time is not billed.
Terminated pods leave `live` but keep their ledger record.

A restart in place (REST v2 action `restart`, `PodFleet.reset`) starts a fresh container
without a new image pull (the image is on the host already). A vLLM that cannot start
(podmgr/sim/fatal.py: its arguments are refused, the Hub refuses the model, it runs out of
memory, the pod got zero GPUs, ...) exits at that failure's moment ("failing"), and RunPod
restarts the same container after `RESTART_SECONDS` (`restart_after_exit`: no pull, and
weights already downloaded onto its disk stay), where it fails alike; the URL stays 502.
`on_new_container` is told of every new container (create, start, reset, not RunPod's
restarts), for the faults that strike one (podmgr/sim/fatal.py `arm`).

Two ways vLLM dies while serving: `vllm_dead` (the control route kill-vllm: the server is
gone, `/health` 503, until the pod gets a new container) and `engine_dead` (fault
`vllm_die`, vLLM v0.8.5's V1 engine: the API server lives on, `/health` 200, until a request
needs the engine; podmgr/sim/edge.py answers it 500 and the container exits and restarts).
"""

from __future__ import annotations

import random
import shlex
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from podmgr.sim.fatal import Fatal
from podmgr.sim.podspec import PodSpec, PortSpec
from podmgr.sim.volumes import SimVolume

__all__ = [
    "RESTART_SECONDS",
    "ContainerExit",
    "Phase",
    "PodFleet",
    "PodSpec",
    "PortSpec",
    "SimPod",
    "Timings",
]

Phase = Literal[
    "pulling",
    "downloading",
    "loading",
    "serving",
    "dead",
    "engine_dead",
    "crashed",
    "failing",
    "stopped",
    "terminated",
]
Status = Literal["RUNNING", "EXITED", "TERMINATED"]

# How long RunPod waits before it starts an exited container again (its restart policy's
# timing is undocumented).
RESTART_SECONDS = 2.0
# How much of a start-command JSON refused by argparse its error line shows.
_ARG_ERROR_CHARS = 120
DEFAULT_MODEL = "sim-model"
DEFAULT_MAX_MODEL_LEN = 4096
_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class Timings:
    """How long a (re)started pod pulls its image, downloads the weights and loads them."""

    pull_seconds: float = 0.1
    load_seconds: float = 0.1
    download_seconds: float = 0.0


@dataclass(frozen=True)
class ContainerExit:
    """How a container's process ended before RunPod restarted it: code, when, why
    ("fatal": a start-up failure; "engine_dead": vLLM shut down after its engine died)."""

    code: int
    at: float
    why: str


@dataclass
class SimPod:
    """A pod and its billing record."""

    id: str
    spec: PodSpec
    machine_id: str
    created_at: float
    status: Status = "RUNNING"
    gpu_count: int = 1
    run_started_at: float | None = None
    closed_billed_seconds: float = 0.0
    terminated_at: float | None = None
    last_status_change: float = 0.0
    vllm_dead: bool = False
    # Fault `transient_status`: a status shown instead of RUNNING until `transient_until`.
    transient_status: str | None = None
    transient_until: float = 0.0
    # Fault `api_error_after_apply` with `hide_seconds`: left out of listings until then.
    hidden_until: float = 0.0
    # Who last stopped or terminated the pod: "user" (the account's key), "pod" (the
    # pod-scoped key, i.e. the pod's guard) or "runpod".
    ended_by: str | None = None
    # Closed billing intervals (start, end) for GET /v2/billing/pods buckets.
    billed_intervals: list[tuple[float, float]] = field(default_factory=list)
    last_started_at: float = 0.0
    # When the current container started (create, start, reset): the phases count from it.
    container_started_at: float = 0.0
    # This container's weights download (0 when the volume already holds them).
    download_seconds: float = 0.0
    # The weights finished downloading onto the pod's volume (kept across stops).
    volume_has_weights: bool = False
    # Fault `container_crash`: RUNNING, no runtime, URL 502, until stopped and started.
    container_crashed: bool = False
    # The host's CUDA version, and whether the image starts on it (podmgr/sim/hosts.py):
    # if not, the pod stays RUNNING without a container for as long as it lives.
    host_cuda: str | None = None
    image_starts: bool = True
    # The network volume attached at create (podmgr/sim/volumes.py): it replaces the pod
    # volume at `volume_mount_path` and keeps the weights for every pod that mounts it.
    network_volume: SimVolume | None = None
    # This container skipped the image pull (a restart in place: the image is on the host).
    skip_pull: bool = False
    # Fault `zero_gpus`: started with zero GPUs ("You may be allocated zero GPUs", RunPod
    # docs pods/manage-pods.mdx, pods/troubleshooting/zero-gpus.mdx) until the next stop.
    zero_gpus: bool = False
    # A start-up failure drawn for this container (podmgr/sim/fatal.py); RunPod's restarts
    # of the container keep it, a new container (create, start, reset) clears it.
    fatal: Fatal | None = None
    # Fault `vllm_die`: vLLM's V1 engine died; its API server still answers (module docstring).
    engine_dead: bool = False
    # Set when RunPod restarted this container after its process exited; None otherwise.
    last_exit: ContainerExit | None = None

    def shown_status(self, now: float) -> str:
        """The status the API reports: RUNNING shows as CREATED/RESTARTING for a while."""
        if self.status == "RUNNING" and self.transient_status and now < self.transient_until:
            return self.transient_status
        return self.status

    def show_transient(self, status: str, now: float, seconds: float) -> None:
        self.transient_status, self.transient_until = status, now + seconds

    @property
    def cost_per_hr(self) -> float:
        return round(self.spec.cost_per_hr / self.spec.gpu_count * self.gpu_count, 6)

    @property
    def model(self) -> str:
        """The model vLLM serves: `--model X` from the docker args, else "sim-model"."""
        return _arg_value(self.spec.docker_args, "--model") or DEFAULT_MODEL

    @property
    def max_model_len(self) -> int:
        value = _arg_value(self.spec.docker_args, "--max-model-len")
        return int(value) if value and value.isdigit() else DEFAULT_MAX_MODEL_LEN

    @property
    def vllm_api_key(self) -> str | None:
        """The key vLLM requires on /v1/*: env VLLM_API_KEY, or `--api-key` in the args."""
        return self.spec.env.get("VLLM_API_KEY") or _arg_value(self.spec.docker_args, "--api-key")

    @property
    def weights_on_volume(self) -> bool:
        """vLLM's HF cache is on the pod's volume: HF_HOME or --download-dir under its mount."""
        spec = self.spec
        if spec.volume_in_gb <= 0 and self.network_volume is None:
            return False
        mount = spec.volume_mount_path.rstrip("/") + "/"
        places = (spec.env.get("HF_HOME"), _arg_value(spec.docker_args, "--download-dir"))
        return any(place and (place + "/").startswith(mount) for place in places)

    @property
    def failure(self) -> Fatal | None:
        """Why this container's vLLM cannot start, if it cannot: arguments argparse refuses
        come first (start-command JSON passed literally), then zero GPUs, then a fault."""
        error = self.spec.vllm_arg_error
        if error is not None:
            shown = error if len(error) <= _ARG_ERROR_CHARS else error[:_ARG_ERROR_CHARS] + "..."
            return Fatal("start_command_json", {"arg": shown})
        if self.zero_gpus:
            return Fatal("zero_gpus")
        return self.fatal

    @property
    def vllm_fails(self) -> bool:
        """vLLM exits on start (see `failure`)."""
        return self.failure is not None

    @property
    def shown_gpu_count(self) -> int:
        return 0 if self.zero_gpus else self.gpu_count

    def billed_seconds(self, now: float) -> float:
        running = now - self.run_started_at if self.run_started_at is not None else 0.0
        return self.closed_billed_seconds + max(0.0, running)

    def uptime(self, now: float, timings: Timings) -> float | None:
        """Seconds since the container started, or None while it has no runtime."""
        if self.status != "RUNNING" or self.run_started_at is None:
            return None
        if self.shown_status(now) != self.status:
            return None  # still shown as CREATED/RESTARTING: no container yet
        if self.container_crashed or not self.image_starts:
            return None
        started = max(self.run_started_at, self.container_started_at)
        pull = 0.0 if self.skip_pull else timings.pull_seconds
        up = now - max(started + pull, self.transient_until)
        return up if up >= 0 else None

    def phase(self, now: float, timings: Timings) -> Phase:
        if self.status == "TERMINATED":
            return "terminated"
        if self.status == "EXITED" or self.run_started_at is None:
            return "stopped"
        if self.container_crashed:
            return "crashed"
        up = self.uptime(now, timings)
        if up is None:
            restarting = self.last_exit is not None and now < self.container_started_at
            return "failing" if restarting else "pulling"
        failure = self.failure
        if failure is not None and up >= failure.offset(
            self.download_seconds, timings.load_seconds
        ):
            return "failing"
        if up < self.download_seconds:
            return "downloading"
        if up < self.download_seconds + timings.load_seconds:
            return "loading"
        if self.vllm_dead:
            return "dead"
        return "engine_dead" if self.engine_dead else "serving"

    def keep_downloaded_weights(self, now: float, timings: Timings) -> None:
        """Before the container goes: weights fully downloaded onto the volume stay there."""
        if not self.weights_on_volume or self.weights_kept:
            return
        up = self.uptime(now, timings)
        if up is not None and up >= self.download_seconds:
            self.volume_has_weights = True
            if self.network_volume is not None:
                self.network_volume.has_weights = True

    @property
    def weights_kept(self) -> bool:
        """The volume (network or pod) already holds the weights."""
        if self.network_volume is not None:
            return self.network_volume.has_weights
        return self.volume_has_weights

    def start_container(self, now: float, timings: Timings, pull: bool = True) -> None:
        """A fresh container: pull, download (unless the volume holds the weights), load."""
        self.skip_pull = not pull
        self.container_started_at = now
        self.last_started_at = now
        self.vllm_dead = self.engine_dead = False
        self.container_crashed = False
        self.fatal = self.last_exit = None
        kept = self.weights_on_volume and self.weights_kept
        self.download_seconds = 0.0 if kept else timings.download_seconds

    def restart_after_exit(self, now: float, timings: Timings, code: int, why: str) -> None:
        """The container's process exited: RunPod starts the same container again after
        RESTART_SECONDS, without a pull; its disk keeps weights it finished downloading, and
        a start-up failure drawn for it stays (see the module docstring)."""
        up = self.uptime(now, timings)
        downloaded = up is not None and up >= self.download_seconds
        self.keep_downloaded_weights(now, timings)
        fatal = self.fatal
        self.start_container(now + RESTART_SECONDS, timings, pull=False)
        self.fatal = fatal
        if downloaded:
            self.download_seconds = 0.0
        self.last_exit = ContainerExit(code, now, why)

    def ledger_record(self, now: float) -> dict[str, Any]:
        billed = self.billed_seconds(now)
        return {
            "id": self.id,
            "name": self.spec.name,
            "gpu_type_id": self.spec.gpu_type_id,
            "gpu_count": self.gpu_count,
            "cost_per_hr": self.cost_per_hr,
            "cloud_type": self.spec.cloud_type,
            "status": self.status,
            "created_at": self.created_at,
            "terminated_at": self.terminated_at,
            "billed_seconds": billed,
            "cost_usd": billed * self.cost_per_hr / 3600.0,
            "image_name": self.spec.image_name,
            "template_id": self.spec.template_id,
            "ports": ",".join(f"{p.number}/{p.type}" for p in self.spec.ports),
            "support_public_ip": self.spec.support_public_ip,
            "start_ssh": self.spec.start_ssh,
            "interruptible": self.spec.interruptible,
            "ended_by": self.ended_by,
            "host_cuda": self.host_cuda,
            "network_volume_id": self.spec.network_volume_id,
            "data_center_id": self.spec.data_center_ids[0] if self.spec.data_center_ids else None,
            "allowed_cuda_versions": list(self.spec.allowed_cuda_versions),
        }

    def run_intervals(self, now: float) -> list[tuple[float, float]]:
        """Every billed interval, the open one ending `now`."""
        if self.run_started_at is None:
            return list(self.billed_intervals)
        return [*self.billed_intervals, (self.run_started_at, now)]


def _arg_value(args: str, flag: str) -> str | None:
    try:
        words = shlex.split(args or "")
    except ValueError:
        words = (args or "").split()
    for index, word in enumerate(words):
        if word == flag and index + 1 < len(words):
            return words[index + 1]
        if word.startswith(flag + "="):
            return word[len(flag) + 1 :]
    return None


class PodFleet:
    """Every pod ever created, with lifecycle transitions; time comes from `clock`."""

    def __init__(self, timings: Timings, clock: Callable[[], float], rng: random.Random) -> None:
        self.timings = timings
        self.clock = clock
        self._rng = rng
        self._pods: dict[str, SimPod] = {}
        # Told of each new container (create, start, reset): fatal faults are drawn there.
        self.on_new_container: Callable[[SimPod], None] = lambda _pod: None

    def _new_id(self, length: int = 14) -> str:
        while True:
            pod_id = "".join(self._rng.choice(_ID_ALPHABET) for _ in range(length))
            if pod_id not in self._pods:
                return pod_id

    def create(self, spec: PodSpec, network_volume: SimVolume | None = None) -> SimPod:
        now = self.clock()
        pod = SimPod(
            id=self._new_id(),
            spec=spec,
            machine_id=self._new_id(12),
            created_at=now,
            gpu_count=spec.gpu_count,
            run_started_at=now,
            last_status_change=now,
            network_volume=network_volume,
        )
        pod.start_container(now, self.timings)
        self._pods[pod.id] = pod
        self.on_new_container(pod)
        return pod

    def get(self, pod_id: str) -> SimPod | None:
        """A pod that is not terminated, or None."""
        pod = self._pods.get(pod_id)
        return pod if pod is not None and pod.status != "TERMINATED" else None

    def live(self) -> Iterator[SimPod]:
        return (pod for pod in self._pods.values() if pod.status != "TERMINATED")

    def all(self) -> Iterator[SimPod]:
        return iter(self._pods.values())

    def _close_billing(self, pod: SimPod, now: float) -> None:
        if pod.run_started_at is not None:
            pod.closed_billed_seconds += max(0.0, now - pod.run_started_at)
            pod.billed_intervals.append((pod.run_started_at, now))
            pod.run_started_at = None

    def stop(self, pod: SimPod, by: str = "user") -> None:
        """Stop: EXITED, no runtime, billing paused; `by` who stopped it. Idempotent."""
        if pod.status == "RUNNING":
            now = self.clock()
            pod.keep_downloaded_weights(now, self.timings)
            self._close_billing(pod, now)
            pod.status = "EXITED"
            pod.last_status_change = now
            pod.ended_by = by

    def resume(self, pod: SimPod, gpu_count: int) -> None:
        """Start again from the image pull; a fresh vLLM. No-op for a RUNNING pod."""
        if pod.status == "EXITED":
            now = self.clock()
            pod.status = "RUNNING"
            pod.gpu_count = gpu_count
            pod.run_started_at = now
            pod.last_status_change = now
            pod.transient_status = None  # a status shown after create ends with the stop
            pod.zero_gpus = False
            pod.start_container(now, self.timings)
            self.on_new_container(pod)

    def reset(self, pod: SimPod) -> None:
        """A RUNNING pod's container starts afresh without a pull (container disk wiped);
        billing runs on."""
        if pod.status == "RUNNING":
            now = self.clock()
            pod.keep_downloaded_weights(now, self.timings)
            pod.start_container(now, self.timings, pull=False)
            self.on_new_container(pod)

    def terminate(self, pod: SimPod, by: str = "user") -> None:
        now = self.clock()
        if pod.status == "RUNNING":  # a network volume outlives the pod, weights and all
            pod.keep_downloaded_weights(now, self.timings)
        self._close_billing(pod, now)
        pod.status = "TERMINATED"
        pod.terminated_at = now
        pod.last_status_change = now
        pod.ended_by = by

    def pick_running(self, pod_id: str | None) -> SimPod | None:
        """The given pod if RUNNING, or (no id) a random RUNNING pod."""
        if pod_id:
            pod = self.get(pod_id)
            return pod if pod is not None and pod.status == "RUNNING" else None
        running = sorted((p for p in self.live() if p.status == "RUNNING"), key=lambda p: p.id)
        return self._rng.choice(running) if running else None

    def ledger(self) -> dict[str, Any]:
        now = self.clock()
        records = [pod.ledger_record(now) for pod in self._pods.values()]
        return {"pods": records, "total_cost_usd": sum(r["cost_usd"] for r in records)}
