"""Spot pods: the one thing podmgr still asks RunPod's GraphQL API, until RunPod retires it.

REST API v2 has no spot create (CreatePodRequest has no `interruptible`; SkyPilot's RunPod
backend notes "Spot pods have no v2 endpoint yet"; RUNPOD_FACTS.md), so a spot pod is
created with GraphQL's `podRentInterruptable`, sent through the `runpod` SDK's own
transport (`runpod.api.graphql.run_graphql_query`: `POST {RUNPOD_API_BASE_URL}/graphql`),
imported only here and only when `interruptible` is set (~1.5 s). The bid is the GPU
type's spot price in the pod's cloud (`gpuTypes { secureSpotPrice communitySpotPrice }`).
The mutation's fields follow SkyPilot's `generate_spot_pod_deployment_mutation`
(sky/provision/runpod/api/pods.py, "refer to graphql-spec.runpod.io
#definition-PodRentInterruptableInput"). Values are written as JSON string literals, which
GraphQL reads the same way, so no value can change the query's meaning (the SDK
interpolates without escaping: RUNPOD_FACTS.md).

Everything after the create (list, get, start, stop, terminate, logs) goes through v2, on
the same pods. RunPod retires GraphQL in early 2027 (RunPod docs,
sdks/graphql/configurations.mdx): `GRAPHQL_RETIREMENT` is the warning `config validate`
and `--refresh-catalog` print for a spot config.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from podmgr.errors import ApiError, AuthError, CapacityError, PodmgrError, TransientApiError
from podmgr.runpod.create import SPOT_ENV, start_command
from podmgr.runpod.problems import classify_graphql_message
from podmgr.runpod.values import PodSpec

__all__ = ["GRAPHQL_RETIREMENT", "SpotCaller", "classify_sdk_error", "create_spot_pod"]

T = TypeVar("T")

GRAPHQL_RETIREMENT = (
    "interruptible: spot pods are created through RunPod's GraphQL API (REST v2 has no spot "
    "create), which RunPod retires in early 2027 (RunPod docs, sdks/graphql/configurations); "
    "after that, spot creates fail and podmgr needs interruptible: false"
)


class SpotCaller(Protocol):
    """What a spot create needs of its caller (RunPodClient, client.py): the API key, and
    `call`, which retries transient failures and translates the rest."""

    @property
    def api_key(self) -> str: ...

    def call(self, what: str, fn: Callable[[], T]) -> T: ...

    def create_once(self, what: str, name: str, send: Callable[[], str]) -> str: ...


def create_spot_pod(client: SpotCaller, spec: PodSpec) -> str:
    """Create a spot pod on the spec's GPU type and cloud; its id. CapacityError: no spot
    offer or no machine (try the next candidate)."""
    sdk = _sdk(client.api_key)
    bid = client.call("spot_price", lambda: _spot_price(sdk, spec))
    if not bid:
        raise CapacityError(f"{spec.gpu_type_id} has no spot offer in the {spec.cloud_type} cloud")
    mutation = _mutation(spec, bid)

    def create() -> str:
        data = _run(sdk, mutation, "podRentInterruptable")
        pod = data.get("podRentInterruptable") if isinstance(data, dict) else None
        if not isinstance(pod, dict) or not pod.get("id"):
            raise ApiError("RunPod answered podRentInterruptable without a pod")
        return str(pod["id"])

    # Not `call`: a create answered with an error may have made the pod (the REST create's
    # rule, client.py): look for it by name rather than send it again.
    return client.create_once("create_spot_pod", spec.name, create)


def _spot_price(sdk: Any, spec: PodSpec) -> float | None:
    query = (
        f"query {{ gpuTypes(input: {{id: {json.dumps(spec.gpu_type_id)}}}) "
        "{ id secureSpotPrice communitySpotPrice } }"
    )
    data = _run(sdk, query, "gpuTypes")
    rows = data.get("gpuTypes") if isinstance(data, dict) else None
    row = next((r for r in rows or () if r.get("id") == spec.gpu_type_id), None)
    if row is None:
        return None
    price = row.get("secureSpotPrice" if spec.cloud_type == "SECURE" else "communitySpotPrice")
    return float(price) if price else None


def _mutation(spec: PodSpec, bid: float) -> str:
    env = {**spec.env, SPOT_ENV: "1"}
    fields: dict[str, Any] = {
        "name": spec.name,
        "imageName": spec.image_name,
        "gpuTypeId": spec.gpu_type_id,
        "bidPerGpu": bid,
        "cloudType": spec.cloud_type,
        "gpuCount": spec.gpu_count,
        "containerDiskInGb": spec.container_disk_in_gb,
        "volumeInGb": spec.volume_in_gb,
        "volumeMountPath": spec.volume_mount_path,
        "ports": spec.ports,
        "dockerArgs": start_command(spec) or "",
    }
    if spec.network_volume_id:
        fields["networkVolumeId"] = spec.network_volume_id
    if spec.allowed_cuda_versions:
        fields["allowedCudaVersions"] = list(spec.allowed_cuda_versions)
    parts = [f"{key}: {_literal(value)}" for key, value in fields.items()]
    parts.append(
        "env: [" + ", ".join(
            f"{{key: {json.dumps(k)}, value: {json.dumps(v)}}}" for k, v in env.items()
        ) + "]"
    )  # fmt: skip
    return "mutation { podRentInterruptable(input: {" + ", ".join(parts) + "}) { id } }"


def _literal(value: Any) -> str:
    """A GraphQL literal: strings and lists as JSON, enums bare, booleans lower-case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value in ("SECURE", "COMMUNITY"):
        return value  # CloudTypeEnum
    return json.dumps(value)


def _sdk(api_key: str) -> Any:
    if not api_key:
        raise AuthError("RUNPOD_API_KEY is not set; export it (cron: see crontab.example)")
    import logging

    import runpod

    runpod.api_key = api_key
    # The SDK's import turns on INFO logs of every HTTP request; keep cron logs quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return runpod


def _run(sdk: Any, query: str, what: str) -> Any:
    from runpod.api.graphql import run_graphql_query

    del sdk
    try:
        answer = run_graphql_query(query)
    except Exception as error:  # the edge: the SDK's failures become ours
        raise classify_sdk_error(error, what) from error
    return answer.get("data") if isinstance(answer, dict) else None


def classify_sdk_error(error: BaseException, what: str) -> PodmgrError:
    """Map a failure of the `runpod` SDK to the exception tree.

    The SDK hides HTTP statuses except 401 (runpod/api/graphql.py): a non-JSON answer (an
    HTML 403/429/5xx page) surfaces as a JSON decoding error, retried as transient.
    """
    if isinstance(error, PodmgrError):
        return error
    text = str(error) or type(error).__name__
    if "runpod" not in sys.modules:
        return ApiError(f"RunPod API call failed: {type(error).__name__}: {text}")
    import requests
    from runpod import error as rp_error

    if isinstance(error, rp_error.AuthenticationError):
        return AuthError(f"RunPod rejected the API key (RUNPOD_API_KEY): {text}")
    if isinstance(error, rp_error.QueryError):
        return classify_graphql_message(text, what=what)
    if isinstance(error, (requests.RequestException, ValueError, KeyError, TypeError)):
        # ValueError covers json.JSONDecodeError: an HTML 403/429/5xx page, not JSON.
        return TransientApiError(f"RunPod's GraphQL API unreachable or not answering: {text}")
    return ApiError(f"RunPod API call failed: {type(error).__name__}: {text}")
