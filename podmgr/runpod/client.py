"""The RunPod adapter the watchdog uses: pods, catalog, logs and volumes over REST API v2.

Everything goes through RunPod's REST API v2 (rest.py, httpx): an on-demand session makes
no GraphQL call at all. Only a spot pod's create goes through GraphQL (spot.py, through
the `runpod` SDK's transport), because v2 has no spot create (RUNPOD_FACTS.md); RunPod
retires GraphQL in early 2027.

Every failure reaches the caller as a PodmgrError (problems.py: by HTTP status and the
problem's `detail`). TransientApiErrors (network, timeouts, 429, 5xx) are retried for at
most `retry_max_seconds`: after a 429 (or a 503 that says so) the wait is RunPod's
`Retry-After`, otherwise exponential backoff with jitter (tenacity). Key problems, 402,
422 and placement refusals never are.

Lifecycle is `POST /pods/{id}/action` (podAction). A 409 ("not valid for the current
status") is read against the pod's status: a pod already where the action would take it is
a success, not a failure (a stop that RunPod applied but answered 500, retried, meets 409).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import tenacity

from podmgr.errors import (
    ApiError,
    ConfigError,
    ConflictError,
    PodGoneError,
    PodmgrError,
    TransientApiError,
    UnconfirmedCreateError,
)
from podmgr.logs import get_logger
from podmgr.runpod import wire
from podmgr.runpod.create import SPOT_ENV, start_command
from podmgr.runpod.rest import LogLine, RestApi
from podmgr.runpod.values import GpuType, PodInfo, PodSpec

__all__ = [
    "GpuType",
    "PodInfo",
    "PodSpec",
    "RunPodClient",
    "check_pod_id",
    "create_request",
    "pod_info",
]

T = TypeVar("T")
log = get_logger("runpod")

_POD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TERMINATED = "TERMINATED"
# A pod created by a create that answered 500 was "slow to appear in listings"
# (transformerlab-app#2305; RUNPOD_FACTS.md); how slow is not documented.
LISTING_LAG_SECONDS = 10.0
# Where each action takes a pod (RunPod OpenAPI v2, podAction): a 409 for an action whose
# target the pod already has is a success.
_ALREADY_THERE: dict[str, frozenset[str]] = {
    "stop": frozenset({"EXITED", TERMINATED}),
    "start": frozenset({"PROVISIONING", "STARTING", "RUNNING"}),
    "restart": frozenset({"PROVISIONING", "STARTING"}),
}
_CATALOG_CLOUDS = ("SECURE", "COMMUNITY")


def check_pod_id(pod_id: str) -> str:
    """Pod ids go into URL paths: allow only the characters RunPod ids use."""
    if not _POD_ID.fullmatch(pod_id):
        raise ApiError(f"refusing pod id {pod_id!r}: unexpected characters")
    return pod_id


def create_request(spec: PodSpec) -> wire.CreatePodRequest:
    """PodSpec -> RunPod OpenAPI v2, CreatePodRequest: one GPU type and one cloud (v2
    "does not fall back to a different GPU"), the CUDA constraint as a floor or an exact
    set (never both: CreateGpuConfig), a persistent or a network mount (never both)."""
    if spec.cloud_type not in _CATALOG_CLOUDS:
        raise ConfigError(
            f"{spec.cloud_type!r}: RunPod's create takes SECURE or COMMUNITY "
            "(RunPod OpenAPI v2, CreatePodRequest.cloud)",
            field="cloud_type",
        )
    exact = list(spec.allowed_cuda_versions) or None
    gpu = wire.CreateGpuConfig(
        id=spec.gpu_type_id,
        count=spec.gpu_count,
        allowedCudaVersions=exact,
        minCudaVersion=None if exact else spec.min_cuda_version,
    )
    mounts: wire.Mounts | None = None
    if spec.network_volume_id:
        network = [wire.NetworkMount(volumeId=spec.network_volume_id, path=spec.volume_mount_path)]
        mounts = wire.Mounts(network=network)
    elif spec.volume_in_gb > 0:
        persistent = wire.PersistentMount(size=spec.volume_in_gb, path=spec.volume_mount_path)
        mounts = wire.Mounts(persistent=persistent)
    return wire.CreatePodRequest(
        name=spec.name,
        image=spec.image_name,
        args=start_command(spec),
        env=dict(spec.env),
        ports=[port.strip() for port in spec.ports.split(",") if port.strip()],
        disk=spec.container_disk_in_gb,
        mounts=mounts,
        gpu=gpu,
        cloud=spec.cloud_type,  # type: ignore[arg-type]  # checked above
        dataCenterIds=list(spec.data_center_ids) or None,
        templateId=spec.template_id or None,
    )


def pod_info(pod: wire.Pod) -> PodInfo:
    """A v2 Pod as a PodInfo: the container is up when `runtime` lists ports (dstack reads
    the same, commit c9b4412); the rate is `cost` ("Current cost in USD per hour")."""
    runtime = pod.runtime
    uptime = runtime.uptime if runtime is not None else None
    return PodInfo(
        id=pod.id,
        name=pod.name,
        status=pod.status,
        cost_per_hr=float(pod.cost or 0.0),
        uptime_seconds=float(uptime) if uptime is not None else None,
        has_runtime=bool(runtime is not None and runtime.ports),
        gpu_count=pod.gpu.count if pod.gpu is not None else 1,
        env=dict(pod.env),
        interruptible=pod.env.get(SPOT_ENV) == "1",
        actions=tuple(pod.actions),
        cuda_version=pod.cuda_version,
    )


class RunPodClient:
    """Pod operations with retries and translated errors; one instance per pass."""

    def __init__(
        self,
        api_key: str | None = None,
        retry_initial_seconds: float = 1.0,
        retry_max_seconds: float = 60.0,
        sleep: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        listing_lag_seconds: float = LISTING_LAG_SECONDS,
    ) -> None:
        self._api_key = api_key if api_key is not None else os.environ.get("RUNPOD_API_KEY", "")
        self._initial = retry_initial_seconds
        self._max_total = retry_max_seconds
        self._sleep = sleep or time.sleep
        self._transport = transport
        self._now = clock
        # How long a retried create looks for the failed attempt's pod before it creates
        # again; at most half the retry budget, so the retry itself still gets its turn.
        self._listing_lag = min(listing_lag_seconds, retry_max_seconds / 2)
        self._rest: RestApi | None = None

    # --- plumbing ----------------------------------------------------------------------
    def rest(self) -> RestApi:
        """The REST client, made on first use (reads RUNPOD_REST_URL then)."""
        if self._rest is None:
            self._rest = RestApi(self._api_key, transport=self._transport, sleep=self._sleep)
        return self._rest

    @property
    def api_key(self) -> str:
        return self._api_key

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one API call, retrying transient failures, raising PodmgrErrors only."""

        def attempt() -> T:
            try:
                return fn()
            except PodmgrError:
                raise
            except Exception as error:  # the edge: everything foreign is translated here
                raise ApiError(f"RunPod API call {what} failed: {error!r}") from error

        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            outcome = retry_state.outcome
            error = outcome.exception() if outcome is not None else None
            log.warning(
                "api_retry", call=what, attempt=retry_state.attempt_number, error=str(error)
            )

        backoff = tenacity.wait_exponential_jitter(
            initial=self._initial, max=30, jitter=min(1.0, self._initial)
        )

        def wait(retry_state: tenacity.RetryCallState) -> float:
            """RunPod's Retry-After when it gave one (429), else backoff."""
            outcome = retry_state.outcome
            error = outcome.exception() if outcome is not None else None
            asked = getattr(error, "retry_after", None)
            return float(asked) if asked is not None else float(backoff(retry_state))

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_worth_retrying),
            wait=wait,
            stop=tenacity.stop_after_delay(self._max_total),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(attempt)

    # --- pods ----------------------------------------------------------------------------
    def list_pods(self) -> list[PodInfo]:
        """Every pod of the account but terminated ones, runtime included (v2's Pod)."""
        rest = self.rest()
        pods = self.call("list_pods", rest.list_pods)
        return [pod_info(pod) for pod in pods if pod.status != TERMINATED]

    def get_pod(self, pod_id: str) -> PodInfo | None:
        """The pod, or None when RunPod no longer knows it (404) or it is TERMINATED."""
        rest = self.rest()
        check_pod_id(pod_id)
        pod = self.call("get_pod", lambda: rest.get_pod(pod_id))
        if pod is None or pod.status == TERMINATED:
            return None
        return pod_info(pod)

    def create_pod(self, spec: PodSpec) -> str:
        """Create one pod on the spec's one GPU type and cloud; returns its id.

        PlacementError: this candidate was refused (400/403): try the next. BalanceError
        (402): stop at once. ContractError (422): a podmgr bug. A create answered with a
        failure that may have applied (a 5xx, a timeout; runpodctl#45) may still have made a
        pod, and RunPod's listing can show it late (transformerlab-app#2305). So the create
        is sent again only after a failure that surely did nothing (no connection, 429).
        After any other, we look for our (unique) name for up to `listing_lag_seconds` and
        return that pod; if it has not shown up, `UnconfirmedCreateError` ends the pass
        without a second create: the next pass adopts the pod by name or, once it has waited
        long enough, creates again.
        """
        if spec.interruptible:
            from podmgr.runpod.spot import create_spot_pod

            return create_spot_pod(self, spec)
        rest = self.rest()
        body = create_request(spec)
        return self.create_once("create_pod", spec.name, lambda: rest.create_pod(body).id)

    def create_once(self, what: str, name: str, send: Callable[[], str]) -> str:
        """`send` (a create of the pod named `name`; its id) with `call`'s retries, except
        that after a failure that may have applied it is not sent again: the pod is looked
        for by name (see create_pod). The spot create (GraphQL, spot.py) goes through it
        too: retrying it blindly made one live pod per failed attempt (two-pod chaos)."""
        failed_at: list[float] = []

        def create() -> str:
            if failed_at:  # the failed attempt may have made the pod after all
                existing = self._await_by_name(name, failed_at[-1] + self._listing_lag)
                if existing is not None:
                    log.info("create_found_after_error", pod_id=existing.id, name=name)
                    return existing.id
                raise UnconfirmedCreateError(
                    f"the create of {name} failed in a way that may have made the pod, "
                    f"which did not show up in {self._listing_lag:.0f}s; not sending it again"
                )
            try:
                return send()
            except TransientApiError as error:
                if error.may_have_applied:
                    failed_at.append(time.monotonic())
                raise

        return self.call(what, create)

    def _await_by_name(self, name: str, until: float) -> PodInfo | None:
        """Our pod by its unique name, looked for until `until` (time.monotonic)."""
        poll = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda pod: pod is None),
            stop=tenacity.stop_after_delay(max(0.0, until - time.monotonic())),
            wait=tenacity.wait_fixed(min(1.0, max(0.05, self._listing_lag / 5))),
            sleep=self._sleep,
            retry_error_callback=lambda _state: None,
        )
        found: PodInfo | None = poll(self._find_by_name, name)
        return found

    def _find_by_name(self, name: str) -> PodInfo | None:
        pods = self.rest().list_pods()  # v2 has no name filter: filter here
        return next((pod_info(p) for p in pods if p.name == name and p.status != TERMINATED), None)

    def stop_pod(self, pod_id: str) -> None:
        self._action(pod_id, "stop")

    def resume_pod(self, pod_id: str, gpu_count: int = 1) -> None:
        """`start` (from EXITED or ERROR); the pod keeps its own GPU count, and RunPod may
        give it none (RunPod docs, pods/manage-pods.mdx): the watchdog checks."""
        del gpu_count
        self._action(pod_id, "start")

    def terminate_pod(self, pod_id: str) -> bool:
        """`DELETE /pods/{id}` (204); True if terminated now, False if already gone."""
        rest = self.rest()
        check_pod_id(pod_id)
        try:
            self.call("terminate_pod", lambda: rest.delete_pod(pod_id))
        except PodGoneError:
            return False
        except ConflictError:
            # deletePod documents 409; read where the pod is before calling it a failure.
            if self.get_pod(pod_id) is None:
                return False
            raise
        return True

    def _action(self, pod_id: str, action: str) -> None:
        """One podAction; a 409 is a success when the pod is already where it would go."""
        rest = self.rest()
        check_pod_id(pod_id)
        try:
            self.call(f"{action}_pod", lambda: rest.pod_action(pod_id, action))
        except ConflictError as error:
            pod = self.call("get_pod", lambda: rest.get_pod(pod_id))
            status = pod.status if pod is not None else TERMINATED
            if status in _ALREADY_THERE.get(action, frozenset()):
                log.info("action_already_applied", pod_id=pod_id, action=action, status=status)
                return
            raise ApiError(f"{error.message}; the pod is {status}") from error

    # --- logs, volumes, catalog ----------------------------------------------------------
    def pod_logs(self, pod_id: str, after: str | None = None) -> list[LogLine]:
        """The pod's container lines after the event id `after` (a short bounded read)."""
        rest = self.rest()
        check_pod_id(pod_id)
        return self.call("pod_logs", lambda: rest.pod_logs(pod_id, after=after))

    def network_volume_data_center(self, volume_id: str) -> str | None:
        """The data center of the network volume; ConfigError when RunPod has no such
        volume (field network_volume_id)."""
        rest = self.rest()
        check_pod_id(volume_id)
        volume = self.call("get_network_volume", lambda: rest.get_network_volume(volume_id))
        if volume is None:
            raise ConfigError(
                f"RunPod has no network volume {volume_id} (create one: see the README)",
                field="network_volume_id",
            )
        return volume.data_center

    def gpu_catalog(
        self, gpu_count: int = 1, *, min_cuda: str | None = None, clouds: tuple[str, ...] = ()
    ) -> list[GpuType]:
        """Every GPU type with its price, stock and available CUDA versions per cloud:
        `GET /catalog/gpus?include=AVAILABILITY&product=POD&cloud=...`, once per cloud
        (availability is scoped by `cloud`: listGpuTypes)."""
        rest = self.rest()

        def read(cloud: str) -> list[wire.GpuType]:
            return rest.list_gpus(cloud=cloud, count=gpu_count, min_cuda=min_cuda)

        per_cloud = {
            cloud: self.call("gpu_catalog", lambda cloud=cloud: read(cloud))  # type: ignore[misc]
            for cloud in (clouds or _CATALOG_CLOUDS)
        }
        return _merge_catalog(per_cloud)


def _merge_catalog(per_cloud: dict[str, list[wire.GpuType]]) -> list[GpuType]:
    """One GpuType per id from the answers of each cloud."""
    merged: dict[str, dict[str, object]] = {}
    for cloud, gpus in per_cloud.items():
        for gpu in gpus:
            row = merged.setdefault(
                gpu.id,
                {
                    "id": gpu.id,
                    "display_name": gpu.name or gpu.id,
                    "memory_gb": gpu.memory,
                    "secure_price": gpu.price.secure,
                    "community_price": gpu.price.community,
                    "secure_cloud": gpu.secure,
                    "community_cloud": gpu.community,
                    "max_count": gpu.max_count.secure if gpu.max_count else None,
                },
            )
            side = "secure" if cloud == "SECURE" else "community"
            row[f"{side}_stock"] = gpu.availability
            row[f"{side}_cuda"] = tuple(v.version for v in gpu.cuda_versions or () if v.available)
    return [GpuType(**row) for row in merged.values()]  # type: ignore[arg-type]


def _worth_retrying(error: BaseException) -> bool:
    """Transient failures, except a create that must not be sent again."""
    return isinstance(error, TransientApiError) and not isinstance(error, UnconfirmedCreateError)
