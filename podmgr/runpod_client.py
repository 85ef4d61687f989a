"""The RunPod adapter the watchdog uses: pods over REST v1, the GPU catalog over the SDK.

Pods go through RunPod's REST API v1 (runpod_rest.py, httpx), plus one small GraphQL query
for a RUNNING pod's runtime in `get_pod` (runpod_graphql.py, httpx; REST's Pod has none).
Only the GPU catalog (`gpu_catalog`, `get_gpu`, `list_gpus`: prices and stock exist only in
GraphQL) uses the `runpod` SDK, imported on first use there: a watchdog pass never
imports it (~1.5 s, RUNPOD_FACTS.md). The SDK reads the module global `runpod.api_key`,
which is set here from `RUNPOD_API_KEY`.

Every failure reaches the caller as a PodmgrError (runpod_classify.py: by HTTP status and
RunPod's error body). TransientApiErrors (network, timeouts, 429, 5xx, "Something went
wrong") are retried with exponential backoff and jitter (tenacity) for at most
`retry_max_seconds`; key problems (401, 403) never are.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import tenacity

from podmgr.config import check_graphql_safe
from podmgr.errors import (
    ApiError,
    AuthError,
    ConfigError,
    PodGoneError,
    PodmgrError,
    TransientApiError,
    UnconfirmedCreateError,
)
from podmgr.logs import get_logger
from podmgr.runpod_classify import classify_graphql_message
from podmgr.runpod_graphql import GraphqlApi
from podmgr.runpod_models import GpuType, PodInfo, PodSpec, gpu_type_from, parse_env, parse_pod
from podmgr.runpod_rest import PodCreateInput, RestApi, RestPod

__all__ = [
    "GpuType",
    "PodInfo",
    "PodSpec",
    "RunPodClient",
    "classify",
    "create_input",
    "parse_pod",
    "pod_info",
]

T = TypeVar("T")
log = get_logger("runpod")

_POD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# REST's Pod.desiredStatus may say TERMINATED (RunPod OpenAPI v1, Pod); GraphQL's listing
# drops such pods (RUNPOD_FACTS.md). The watchdog reads a terminated pod as a gone one.
TERMINATED = "TERMINATED"
# A pod created by a create that answered 500 was "slow to appear in listings"
# (transformerlab-app#2305; RUNPOD_FACTS.md); how slow is not documented.
LISTING_LAG_SECONDS = 10.0


def classify(error: BaseException) -> PodmgrError:
    """Map a failure of the `runpod` SDK (catalog calls only) to the exception tree.

    The SDK hides HTTP statuses except 401 (runpod/api/graphql.py): a non-JSON answer (an
    HTML 403/429/5xx page) surfaces as a JSON decoding error, retried as transient.
    """
    if isinstance(error, PodmgrError):
        return error
    text = str(error) or type(error).__name__
    if isinstance(error, httpx.RequestError):
        return TransientApiError(f"RunPod API unreachable: {text}")
    if "runpod" not in sys.modules:  # then it is not the SDK's: do not import it for this
        return ApiError(f"RunPod API call failed: {type(error).__name__}: {text}")
    import requests
    from runpod import error as rp_error

    if isinstance(error, rp_error.AuthenticationError):
        return AuthError(f"RunPod rejected the API key (RUNPOD_API_KEY): {text}")
    if isinstance(error, rp_error.QueryError):
        return classify_graphql_message(text, what="a GPU catalog query")
    if _no_gpu(error):
        return ConfigError(f"RunPod does not know this GPU type: {text}", field="gpu_type_id")
    if isinstance(error, (requests.RequestException, ValueError)):
        # ValueError covers json.JSONDecodeError: an HTML 403/429/5xx page, not JSON.
        return TransientApiError(f"RunPod API unreachable or not answering JSON: {text}")
    if isinstance(error, (KeyError, TypeError)):
        # The SDK indexes ["data"][...]: a 5xx JSON body without data lands here.
        return TransientApiError(f"RunPod API answered without data: {text}")
    return ApiError(f"RunPod API call failed: {type(error).__name__}: {text}")


def _no_gpu(error: BaseException) -> bool:
    """The SDK's own ValueError for an unknown GPU id (runpod/api/ctl_commands.py)."""
    return type(error) is ValueError and str(error).startswith("No GPU found")


def check_pod_id(pod_id: str) -> str:
    """Pod ids go into URL paths: allow only the characters RunPod ids use."""
    if not _POD_ID.fullmatch(pod_id):
        raise ApiError(f"refusing pod id {pod_id!r}: unexpected characters")
    return pod_id


def create_input(spec: PodSpec) -> PodCreateInput:
    """PodSpec -> RunPod OpenAPI v1, PodCreateInput.

    `docker_args` becomes `dockerStartCmd` (the image's CMD, split as a shell would);
    `gpuTypeIds` holds the one GPU type of this attempt; no public IP unless asked (issue
    10, finding 9); `templateId` only when set (finding 3); `allowedCudaVersions`, the
    host CUDA floor (podmgr/cuda.py), whenever the spec has one.
    """
    if spec.cloud_type not in ("SECURE", "COMMUNITY"):
        raise ConfigError(
            f"{spec.cloud_type!r}: RunPod's REST API v1 takes SECURE or COMMUNITY "
            "(RunPod OpenAPI v1, PodCreateInput.cloudType)",
            field="cloud_type",
        )
    try:
        start_cmd = shlex.split(spec.docker_args)
    except ValueError as error:
        raise ConfigError(
            f"cannot split {spec.docker_args!r}: {error}", field="docker_args"
        ) from None
    return PodCreateInput(
        name=spec.name,
        image_name=spec.image_name,
        gpu_type_ids=[spec.gpu_type_id],
        gpu_count=spec.gpu_count,
        cloud_type=spec.cloud_type,  # type: ignore[arg-type]  # checked above
        container_disk_in_gb=spec.container_disk_in_gb,
        volume_in_gb=spec.volume_in_gb,
        volume_mount_path=spec.volume_mount_path,
        ports=[port.strip() for port in spec.ports.split(",") if port.strip()],
        env=dict(spec.env),
        docker_start_cmd=start_cmd or None,
        docker_entrypoint=list(spec.docker_entrypoint) or None,
        support_public_ip=spec.support_public_ip,
        template_id=spec.template_id or None,
        allowed_cuda_versions=list(spec.allowed_cuda_versions) or None,
        interruptible=spec.interruptible or None,
        network_volume_id=spec.network_volume_id,
        data_center_ids=list(spec.data_center_ids) or None,
        min_download_mbps=spec.min_download_mbps,
    )


def pod_info(pod: RestPod, now: float) -> PodInfo:
    """A REST Pod as a PodInfo; the runtime is not read (`runtime_read` False).

    REST has no uptime: a RUNNING pod's uptime is counted from `lastStartedAt`.
    """
    started = pod.started_at()
    running = pod.desired_status == "RUNNING"
    uptime = max(0.0, now - started) if running and started is not None else None
    return PodInfo(
        id=pod.id,
        name=pod.name or "",
        desired_status=pod.desired_status or "UNKNOWN",
        cost_per_hr=float(pod.cost_per_hr or 0.0),
        uptime_seconds=uptime,
        gpu_count=(pod.gpu.count if pod.gpu and pod.gpu.count else 1),
        env=parse_env(pod.env),
        interruptible=bool(pod.interruptible),
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
        self._sleep = sleep
        self._transport = transport
        self._now = clock
        # How long a retried create looks for the failed attempt's pod before it creates
        # again; at most half the retry budget, so the retry itself still gets its turn.
        self._listing_lag = min(listing_lag_seconds, retry_max_seconds / 2)
        self._rest: RestApi | None = None
        self._graphql: GraphqlApi | None = None
        self._sdk: Any = None

    # --- plumbing ----------------------------------------------------------------------
    def rest(self) -> RestApi:
        """The REST client, made on first use (reads RUNPOD_REST_URL then)."""
        if self._rest is None:
            self._rest = RestApi(self._api_key, transport=self._transport)
        return self._rest

    def graphql(self) -> GraphqlApi:
        """The GraphQL client for the runtime query, made on first use."""
        if self._graphql is None:
            self._graphql = GraphqlApi(self._api_key, transport=self._transport)
        return self._graphql

    def sdk(self) -> Any:
        """The runpod module, imported on first use, with our key set (catalog only)."""
        if self._sdk is None:
            if not self._api_key:
                raise AuthError("RUNPOD_API_KEY is not set; export it (cron: see crontab.example)")
            import logging

            import runpod

            runpod.api_key = self._api_key
            # The SDK's import turns on INFO logs of every HTTP request; keep cron logs quiet.
            logging.getLogger("httpx").setLevel(logging.WARNING)
            self._sdk = runpod
        return self._sdk

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one API call, retrying transient failures, raising PodmgrErrors only."""

        def attempt() -> T:
            try:
                return fn()
            except Exception as error:  # the edge: everything foreign is translated here
                raise classify(error) from error

        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            outcome = retry_state.outcome
            error = outcome.exception() if outcome is not None else None
            log.warning(
                "api_retry", call=what, attempt=retry_state.attempt_number, error=str(error)
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_worth_retrying),
            wait=tenacity.wait_exponential_jitter(
                initial=self._initial, max=30, jitter=min(1.0, self._initial)
            ),
            stop=tenacity.stop_after_delay(self._max_total),
            before_sleep=before_sleep,
            sleep=self._sleep or time.sleep,
            reraise=True,
        )
        return retrying(attempt)

    # --- pods (REST) -------------------------------------------------------------------
    def list_pods(self) -> list[PodInfo]:
        """Every pod of the account but terminated ones. The runtime is NOT read (REST's
        Pod has none): each PodInfo has `runtime_read` False, `has_runtime` False meaning
        "not read"."""
        rest = self.rest()
        pods = self.call("list_pods", rest.list_pods)
        now = self._now()
        return [pod_info(pod, now) for pod in pods if pod.desired_status != TERMINATED]

    def get_pod(self, pod_id: str) -> PodInfo | None:
        """The pod, or None when RunPod no longer knows it (404) or it is TERMINATED. For a
        RUNNING pod the runtime is read through GraphQL: `has_runtime` says whether the
        container is up."""
        rest = self.rest()
        check_pod_id(pod_id)
        pod = self.call("get_pod", lambda: rest.get_pod(pod_id))
        if pod is None or pod.desired_status == TERMINATED:
            return None
        info = pod_info(pod, self._now())
        if not info.running:
            return info
        graphql = self.graphql()
        runtime = self.call("pod_runtime", lambda: graphql.pod_runtime(pod_id))
        uptime = runtime.uptime_seconds
        return PodInfo(
            id=info.id,
            name=info.name,
            desired_status=info.desired_status,
            cost_per_hr=info.cost_per_hr,
            uptime_seconds=uptime if uptime is not None else info.uptime_seconds,
            has_runtime=runtime.container_up,
            gpu_count=info.gpu_count,
            env=info.env,
            runtime_read=True,
            interruptible=info.interruptible,
        )

    def create_pod(self, spec: PodSpec) -> str:
        """Create one pod; returns its id. CapacityError means: try another GPU type.

        A create answered with a failure that may have applied (a 5xx, a timeout, RunPod's
        generic error; runpodctl#45) may still have made a pod, and RunPod's listing can
        show it late (transformerlab-app#2305). So the create is sent again only after a
        failure that surely did nothing (no connection, 429). After any other, we look for
        our (unique) name for up to `listing_lag_seconds` and return that pod; if it has
        not shown up, `UnconfirmedCreateError` ends the pass without a second create: the
        next pass adopts the pod by name or, once it has waited long enough, creates again.
        """
        rest = self.rest()
        body = create_input(spec)
        failed_at: list[float] = []

        def create() -> str:
            if failed_at:  # the failed attempt may have made the pod after all
                until = failed_at[-1] + self._listing_lag
                existing = self._await_by_name(spec.name, until)
                if existing is not None:
                    log.info("create_found_after_error", pod_id=existing.id, name=spec.name)
                    return existing.id
                raise UnconfirmedCreateError(
                    f"the create of {spec.name} failed in a way that may have made the pod, "
                    f"which did not show up in {self._listing_lag:.0f}s; not sending it again"
                )
            try:
                return rest.create_pod(body).id
            except TransientApiError as error:
                if error.may_have_applied:
                    failed_at.append(time.monotonic())
                raise

        return self.call("create_pod", create)

    def _await_by_name(self, name: str, until: float) -> RestPod | None:
        """Our pod by its unique name, looked for until `until` (time.monotonic): a pod made
        by a create that answered an error can be slow to appear in listings
        (transformerlab-app#2305)."""
        poll = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda pod: pod is None),
            stop=tenacity.stop_after_delay(max(0.0, until - time.monotonic())),
            wait=tenacity.wait_fixed(min(1.0, max(0.05, self._listing_lag / 5))),
            sleep=self._sleep or time.sleep,
            retry_error_callback=lambda _state: None,
        )
        found: RestPod | None = poll(self._find_by_name, name)
        return found

    def _find_by_name(self, name: str) -> RestPod | None:
        pods = self.rest().list_pods(name=name)
        # The filter is RunPod's; the check is ours (an older RunPod may ignore it).
        return next((p for p in pods if p.name == name and p.desired_status != TERMINATED), None)

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
        return volume.data_center_id

    def stop_pod(self, pod_id: str) -> None:
        rest = self.rest()
        check_pod_id(pod_id)
        self.call("stop_pod", lambda: rest.stop_pod(pod_id))

    def resume_pod(self, pod_id: str, gpu_count: int) -> None:
        """`POST /pods/{podId}/start`; REST takes no GPU count: the pod keeps its own."""
        del gpu_count
        rest = self.rest()
        check_pod_id(pod_id)
        self.call("resume_pod", lambda: rest.start_pod(pod_id))

    def terminate_pod(self, pod_id: str) -> bool:
        """Terminate; True if it was terminated now, False if it was already gone."""
        rest = self.rest()
        check_pod_id(pod_id)
        try:
            self.call("terminate_pod", lambda: rest.delete_pod(pod_id))
        except PodGoneError:
            return False
        return True

    # --- GPU catalog (GraphQL through the runpod SDK) ----------------------------------
    def list_gpus(self) -> list[GpuType]:
        sdk = self.sdk()
        raw = self.call("get_gpus", lambda: sdk.get_gpus())
        return [
            GpuType(id=str(g["id"]), display_name=str(g.get("displayName") or g["id"]),
                    memory_gb=g.get("memoryInGb"))
            for g in raw or ()
        ]  # fmt: skip

    def get_gpu(self, gpu_id: str, gpu_count: int = 1) -> GpuType:
        sdk = self.sdk()
        check_graphql_safe(gpu_id, "GPU type id")
        return gpu_type_from(self.call("get_gpu", lambda: sdk.get_gpu(gpu_id, gpu_count)))

    def gpu_catalog(self, gpu_count: int = 1) -> list[GpuType]:
        """Every GPU type with prices and stock, in one query (the SDK has no such call)."""
        self.sdk()
        from runpod.api.graphql import run_graphql_query

        query = _CATALOG_QUERY.replace("GPU_COUNT", str(int(gpu_count)))
        raw = self.call("gpu_catalog", lambda: run_graphql_query(query)["data"]["gpuTypes"])
        return [gpu_type_from(g) for g in raw or ()]


_CATALOG_QUERY = """
query GpuCatalog {
  gpuTypes {
    id displayName memoryInGb secureCloud communityCloud securePrice communityPrice
    secureSpotPrice communitySpotPrice
    lowestPrice(input: {gpuCount: GPU_COUNT}) { uninterruptablePrice stockStatus }
  }
}
"""


def _worth_retrying(error: BaseException) -> bool:
    """Transient failures, except a create that must not be sent again."""
    return isinstance(error, TransientApiError) and not isinstance(error, UnconfirmedCreateError)
