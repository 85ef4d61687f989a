"""The RunPod adapter: the only module that imports `runpod`, and podmgr's edge to it.

`import runpod` costs ~1.5 s, so it happens on the first API call, never at import time.
The SDK reads the module global `runpod.api_key` and `RUNPOD_API_BASE_URL` on every call;
this adapter sets the key from `RUNPOD_API_KEY` (the SDK itself only reads a config file).

Every SDK failure is translated into the project's exception tree (`classify`): auth
errors are never retried; network errors, timeouts, 5xx/429 pages and RunPod's generic
"Something went wrong" are retried with exponential backoff and jitter (tenacity) for at
most `retry_max_seconds` in total. The SDK builds GraphQL by string interpolation, so every
value it interpolates is checked here first (`check_graphql_safe`, pod id pattern).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import tenacity

from podmgr.config import check_graphql_safe
from podmgr.errors import (
    ApiError,
    AuthError,
    CapacityError,
    ConfigError,
    PodGoneError,
    PodmgrError,
    TransientApiError,
)
from podmgr.logs import get_logger
from podmgr.runpod_models import GpuType, PodInfo, PodSpec, gpu_type_from, parse_pod

__all__ = ["GpuType", "PodInfo", "PodSpec", "RunPodClient", "classify", "parse_pod"]

T = TypeVar("T")
log = get_logger("runpod")

_POD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CAPACITY_MARKERS = (
    "no longer any instances available",
    "not enough free gpus",
    "no instances available",
)
_GONE_MARKERS = ("not found", "does not exist")
_TRANSIENT_MARKERS = ("something went wrong", "try again later", "rate limit", "too many requests")
_AUTH_MARKERS = ("unauthorized", "api key", "forbidden")


def _message_has(message: str, markers: Sequence[str]) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in markers)


def classify(error: BaseException) -> PodmgrError:
    """Map an SDK, requests or JSON failure to the project's exception tree."""
    import requests
    from runpod import error as rp_error

    if isinstance(error, PodmgrError):
        return error
    text = str(error) or type(error).__name__
    if isinstance(error, rp_error.AuthenticationError):
        return AuthError(f"RunPod rejected the API key (RUNPOD_API_KEY): {text}")
    if isinstance(error, rp_error.QueryError):
        if _message_has(text, _CAPACITY_MARKERS):
            return CapacityError(text)
        if _message_has(text, _TRANSIENT_MARKERS):
            return TransientApiError(text)
        if _message_has(text, _AUTH_MARKERS):
            return AuthError(f"RunPod refused the request ({text}); check RUNPOD_API_KEY")
        if _message_has(text, _GONE_MARKERS):
            return PodGoneError(text)
        return ApiError(f"RunPod API error: {text}")
    if isinstance(error, (requests.RequestException, json.JSONDecodeError)):
        # JSONDecodeError: an HTML 429/5xx page where the SDK expected JSON.
        return TransientApiError(f"RunPod API unreachable or not answering JSON: {text}")
    if isinstance(error, (KeyError, TypeError)):
        # The SDK indexes ["data"][...]: a 5xx JSON body without data lands here.
        return TransientApiError(f"RunPod API answered without data: {text}")
    if isinstance(error, ValueError) and "No GPU found" in text:
        return ConfigError(f"RunPod does not know this GPU type: {text}", field="gpu_type_id")
    return ApiError(f"RunPod API call failed: {type(error).__name__}: {text}")


def check_pod_id(pod_id: str) -> str:
    """Pod ids go into GraphQL strings: allow only the characters RunPod ids use."""
    if not _POD_ID.fullmatch(pod_id):
        raise ApiError(f"refusing pod id {pod_id!r}: unexpected characters")
    return pod_id


class RunPodClient:
    """Pod operations with retries and translated errors; one instance per pass."""

    def __init__(
        self,
        api_key: str | None = None,
        retry_initial_seconds: float = 1.0,
        retry_max_seconds: float = 60.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._api_key = api_key if api_key is not None else os.environ.get("RUNPOD_API_KEY", "")
        self._initial = retry_initial_seconds
        self._max_total = retry_max_seconds
        self._sleep = sleep
        self._sdk: Any = None

    # --- plumbing ----------------------------------------------------------------------
    def sdk(self) -> Any:
        """The runpod module, imported on first use, with our key set."""
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
        """Run one SDK call, retrying transient failures, raising PodmgrErrors only."""

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
            retry=tenacity.retry_if_exception_type(TransientApiError),
            wait=tenacity.wait_exponential_jitter(
                initial=self._initial, max=30, jitter=min(1.0, self._initial)
            ),
            stop=tenacity.stop_after_delay(self._max_total),
            before_sleep=before_sleep,
            sleep=self._sleep or time.sleep,
            reraise=True,
        )
        return retrying(attempt)

    # --- queries -----------------------------------------------------------------------
    def list_pods(self) -> list[PodInfo]:
        sdk = self.sdk()
        raw = self.call("get_pods", lambda: sdk.get_pods())
        return [parse_pod(item) for item in raw or ()]

    def get_pod(self, pod_id: str) -> PodInfo | None:
        """The pod, or None when RunPod no longer knows it."""
        sdk = self.sdk()
        check_pod_id(pod_id)
        try:
            raw = self.call("get_pod", lambda: sdk.get_pod(pod_id))
        except PodGoneError:
            return None
        return parse_pod(raw) if raw else None

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
        sdk = self.sdk()
        from runpod.api.graphql import run_graphql_query

        query = _CATALOG_QUERY.replace("GPU_COUNT", str(int(gpu_count)))
        raw = self.call("gpu_catalog", lambda: run_graphql_query(query)["data"]["gpuTypes"])
        del sdk
        return [gpu_type_from(g) for g in raw or ()]

    # --- mutations ---------------------------------------------------------------------
    def create_pod(self, spec: PodSpec) -> str:
        """Create one pod; returns its id. CapacityError means: try another GPU type.

        A create whose answer was lost (timeout, 5xx after the fact) may still have made a
        pod, so before each retry we look for our (unique) name and return that pod instead.
        """
        sdk = self.sdk()
        _check_spec(spec)

        tries: list[int] = []

        def create() -> str:
            if tries:  # a retry: the failed attempt may have made the pod after all
                existing = self._find_by_name(spec.name)
                if existing is not None:
                    return existing.id
            tries.append(1)
            result = sdk.create_pod(
                name=spec.name,
                image_name=spec.image_name,
                gpu_type_id=spec.gpu_type_id,
                cloud_type=spec.cloud_type,
                gpu_count=spec.gpu_count,
                volume_in_gb=spec.volume_in_gb,
                container_disk_in_gb=spec.container_disk_in_gb,
                docker_args=spec.docker_args,
                ports=spec.ports,
                volume_mount_path=spec.volume_mount_path,
                env=dict(spec.env),
                template_id=spec.template_id,
                # The SDK asks for a public IP and SSH unless told not to (finding 9 of
                # issue 10): podmgr reaches vLLM through RunPod's HTTP proxy only.
                support_public_ip=spec.support_public_ip,
                start_ssh=False,
            )
            if not result or not result.get("id"):
                raise TransientApiError("RunPod returned no pod id for create")
            return str(result["id"])

        return self.call("create_pod", create)

    def _find_by_name(self, name: str) -> PodInfo | None:
        sdk = self.sdk()
        try:
            pods = [parse_pod(p) for p in sdk.get_pods() or ()]
        except Exception as error:
            raise classify(error) from error
        return next((p for p in pods if p.name == name), None)

    def stop_pod(self, pod_id: str) -> None:
        sdk = self.sdk()
        check_pod_id(pod_id)
        self.call("stop_pod", lambda: sdk.stop_pod(pod_id))

    def resume_pod(self, pod_id: str, gpu_count: int) -> None:
        sdk = self.sdk()
        check_pod_id(pod_id)
        self.call("resume_pod", lambda: sdk.resume_pod(pod_id, gpu_count))

    def terminate_pod(self, pod_id: str) -> bool:
        """Terminate; True if it was terminated now, False if it was already gone."""
        sdk = self.sdk()
        check_pod_id(pod_id)
        try:
            self.call("terminate_pod", lambda: sdk.terminate_pod(pod_id))
        except PodGoneError:
            return False
        return True


_CATALOG_QUERY = """
query GpuCatalog {
  gpuTypes {
    id displayName memoryInGb secureCloud communityCloud securePrice communityPrice
    lowestPrice(input: {gpuCount: GPU_COUNT}) { uninterruptablePrice stockStatus }
  }
}
"""


def _check_spec(spec: PodSpec) -> None:
    """Refuse any value that would break the SDK's string-built GraphQL mutation."""
    try:
        for what, value in (
            ("name", spec.name),
            ("image_name", spec.image_name),
            ("gpu_type_id", spec.gpu_type_id),
            ("docker_args", spec.docker_args),
            ("ports", spec.ports),
            ("volume_mount_path", spec.volume_mount_path),
            ("template_id", spec.template_id or ""),
            *((f"env.{k}", v) for k, v in spec.env.items()),
            *((f"env name {k}", k) for k in spec.env),
        ):
            check_graphql_safe(value, what)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if spec.cloud_type not in ("SECURE", "COMMUNITY", "ALL"):
        raise ConfigError(f"unknown cloud type {spec.cloud_type}", field="cloud_type")
