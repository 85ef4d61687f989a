"""RunPod's REST API v1 over httpx: the pod lifecycle and the pod billing records.

The base URL comes from `RUNPOD_REST_URL` (default `https://rest.runpod.io/v1`), read when
a client is made, as the SDK reads `RUNPOD_API_BASE_URL`; the key goes in `Authorization:
Bearer <key>` (RunPod OpenAPI v1, securitySchemes.ApiKey). The models hold the parts of
the document's schemas podmgr uses, written from it (RunPod OpenAPI v1, "Runpod API"
0.1.0, components.schemas PodCreateInput, Pod, BillingRecords); unknown fields are
ignored, so a richer answer never breaks a pass.

Every failure leaves this module as a PodmgrError (runpod_classify.py decides which):
a network error or timeout is a TransientApiError, an answer that does not fit the
document an ApiError. Retries are the caller's (RunPodClient.call).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from podmgr.errors import ApiError, AuthError, PodGoneError, PodmgrError, TransientApiError
from podmgr.runpod_classify import classify_status, error_message

__all__ = [
    "DEFAULT_REST_URL",
    "BillingRecord",
    "PodCreateInput",
    "RestApi",
    "RestGpu",
    "RestPod",
    "rest_url",
]

DEFAULT_REST_URL = "https://rest.runpod.io/v1"
DEFAULT_TIMEOUT_SECONDS = 30.0  # the SDK's timeout for GraphQL (RUNPOD_FACTS.md)


def rest_url() -> str:
    """`RUNPOD_REST_URL` or RunPod's REST base, without a trailing slash."""
    return (os.environ.get("RUNPOD_REST_URL") or DEFAULT_REST_URL).rstrip("/")


class _Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class PodCreateInput(_Model):
    """The fields of RunPod OpenAPI v1, PodCreateInput, that podmgr sends.

    Fields left None are not sent, so RunPod's documented default applies. There is no
    SSH switch in PodCreateInput: SSH needs a `22/tcp` port and a public key, and podmgr
    exposes only vLLM's HTTP port (issue 10, finding 9).
    """

    name: str
    image_name: str
    gpu_type_ids: list[str]
    gpu_count: int = 1
    cloud_type: Literal["SECURE", "COMMUNITY"] = "SECURE"
    container_disk_in_gb: int | None = None
    volume_in_gb: int | None = None
    volume_mount_path: str | None = None
    ports: list[str] = Field(default_factory=list)  # ["8000/http"]
    env: dict[str, str] = Field(default_factory=dict)  # an object, not GraphQL's list
    docker_start_cmd: list[str] | None = None  # overrides the image's CMD
    docker_entrypoint: list[str] | None = None  # overrides the image's ENTRYPOINT
    support_public_ip: bool | None = None
    template_id: str | None = None
    interruptible: bool | None = None
    allowed_cuda_versions: list[str] | None = None
    data_center_ids: list[str] | None = None
    network_volume_id: str | None = None
    min_download_mbps: float | None = None

    def body(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class RestGpu(_Model):
    """RunPod OpenAPI v1, Pod.gpu (the parts podmgr reads)."""

    id: str | None = None
    count: int | None = None
    display_name: str | None = None


class RestPod(_Model):
    """RunPod OpenAPI v1, Pod (the parts podmgr reads). It has no `runtime`."""

    id: str
    name: str | None = None
    desired_status: str | None = None  # RUNNING | EXITED | TERMINATED in the document
    cost_per_hr: float | None = None
    adjusted_cost_per_hr: float | None = None
    last_started_at: str | None = None  # ISO 8601, e.g. "2024-07-12T19:14:40.144Z"
    # An object in the document; GraphQL's ["KEY=VALUE"] list is accepted too (parse_env).
    env: dict[str, str] | list[str] | None = None
    gpu: RestGpu | None = None
    image: str | None = None
    interruptible: bool | None = None
    machine_id: str | None = None
    port_mappings: Any = None  # read by nobody yet: never a reason to refuse an answer
    public_ip: Any = None

    def started_at(self) -> float | None:
        """`lastStartedAt` as an epoch, or None when absent or unreadable."""
        if not self.last_started_at:
            return None
        try:
            return datetime.fromisoformat(self.last_started_at).timestamp()
        except ValueError:
            return None


class NetworkVolume(_Model):
    """RunPod OpenAPI v1, NetworkVolume."""

    id: str
    name: str | None = None
    size: int | None = None
    data_center_id: str | None = None


class BillingRecord(_Model):
    """One item of RunPod OpenAPI v1, BillingRecords (`GET /billing/pods`)."""

    amount: float = 0.0
    time: str | None = None
    pod_id: str | None = None
    gpu_type_id: str | None = None
    time_billed_ms: int | None = None
    disk_space_billed_gb: int | None = None


class RestApi:
    """One httpx client for RunPod's REST API; each method is one request, no retries."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise AuthError("RUNPOD_API_KEY is not set; export it (cron: see crontab.example)")
        self._http = httpx.Client(
            base_url=base_url or rest_url(),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # --- pods ----------------------------------------------------------------------
    def list_pods(self, name: str | None = None) -> list[RestPod]:
        """`GET /pods`, filtered by exact `name` (RunPod OpenAPI v1, ListPods) if given."""
        params = {"name": name} if name is not None else None
        return _parse_list(RestPod, self._request("GET", "/pods", params=params), "GET /pods")

    def get_pod(self, pod_id: str) -> RestPod | None:
        """`GET /pods/{podId}`; None when RunPod answers 404 (the pod is gone)."""
        try:
            answer = self._request("GET", f"/pods/{pod_id}", pod_id=pod_id)
        except PodGoneError:
            return None
        return _parse(RestPod, answer, "GET /pods/{podId}")

    def create_pod(self, spec: PodCreateInput) -> RestPod:
        """`POST /pods` (201 with the new Pod)."""
        return _parse(RestPod, self._request("POST", "/pods", json=spec.body()), "POST /pods")

    def start_pod(self, pod_id: str) -> None:
        self._request("POST", f"/pods/{pod_id}/start", pod_id=pod_id)

    def stop_pod(self, pod_id: str) -> None:
        self._request("POST", f"/pods/{pod_id}/stop", pod_id=pod_id)

    def delete_pod(self, pod_id: str) -> None:
        """`DELETE /pods/{podId}` (204); PodGoneError when RunPod answers 404."""
        self._request("DELETE", f"/pods/{pod_id}", pod_id=pod_id)

    # --- network volumes -----------------------------------------------------------
    def get_network_volume(self, volume_id: str) -> NetworkVolume | None:
        """`GET /networkvolumes/{networkVolumeId}`; None when RunPod answers 404."""
        what = "GET /networkvolumes/{networkVolumeId}"
        try:
            answer = self._request("GET", f"/networkvolumes/{volume_id}", pod_id=volume_id)
        except PodGoneError:  # a 404 on this resource's own path: no such volume
            return None
        return _parse(NetworkVolume, answer, what)

    # --- billing -------------------------------------------------------------------
    def pod_billing(
        self,
        *,
        bucket_size: Literal["hour", "day", "week", "month", "year"] = "day",
        grouping: Literal["podId", "gpuTypeId"] = "podId",
        pod_id: str | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
    ) -> list[BillingRecord]:
        """`GET /billing/pods` (RunPod OpenAPI v1, PodBilling); times are ISO 8601."""
        given = {
            "bucketSize": bucket_size,
            "grouping": grouping,
            "podId": pod_id,
            "startTime": start_time,
            "endTime": end_time,
        }
        params = {key: value for key, value in given.items() if value is not None}
        answer = self._request("GET", "/billing/pods", params=params)
        return _parse_list(BillingRecord, answer, "GET /billing/pods")

    # --- plumbing ------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        pod_id: str | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        """One request; the decoded JSON answer (None when empty) or a PodmgrError."""
        what = f"{method} {path}"
        try:
            response = self._http.request(method, path, params=params, json=json)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            # No connection: the request never reached RunPod, so it did nothing.
            raise TransientApiError(
                f"RunPod unreachable for {what}: {error!r}", may_have_applied=False
            ) from error
        except httpx.TimeoutException as error:
            raise TransientApiError(f"RunPod did not answer {what} in time: {error}") from error
        except httpx.RequestError as error:
            raise TransientApiError(f"RunPod unreachable for {what}: {error!r}") from error
        body = _decode(response)
        if response.is_success:
            return body
        message = error_message(body, f"HTTP {response.status_code} {response.reason_phrase}")
        raise classify_status(
            response.status_code, message, what=what, pod_resource=pod_id is not None
        )


def _decode(response: httpx.Response) -> Any:
    """JSON when the answer is JSON; its text otherwise (an HTML error page, empty 204)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


M = TypeVar("M", bound=_Model)


def _parse(model: type[M], body: Any, what: str) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise _unexpected(what, error) from None


def _parse_list(model: type[M], body: Any, what: str) -> list[M]:
    if not isinstance(body, list):
        raise ApiError(f"RunPod answered {what} with {type(body).__name__}, not a list")
    try:
        return [model.model_validate(item) for item in body]
    except ValidationError as error:
        raise _unexpected(what, error) from None


def _unexpected(what: str, error: ValidationError) -> PodmgrError:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return ApiError(
        f"RunPod's answer to {what} does not fit its API document: {where}: {first['msg']}"
    )
