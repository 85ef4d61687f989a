"""The one GraphQL query a watchdog pass makes: a pod's runtime, over httpx.

REST's Pod has no `runtime` (RunPod OpenAPI v1, Pod), and readiness needs to know whether
the container is up. So `get_pod` of a RUNNING pod asks GraphQL for
`pod(input: {podId}) { runtime { uptimeInSeconds ports { privatePort type } } }`, sent
as the `runpod` SDK sends its queries (runpod/api/graphql.py, v1.12.0): `POST
{RUNPOD_API_BASE_URL or https://api.runpod.io}/graphql`, JSON `{"query": ...}` (here with
`variables`, so the pod id is never interpolated), `Authorization: Bearer <key>`, 30 s.
Without importing the SDK (~1.5 s, RUNPOD_FACTS.md).

Failures are classified as REST's are (runpod_classify.py): the status first, then the
GraphQL error message, which arrives with HTTP 200.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx

from podmgr.errors import ApiError, AuthError, TransientApiError
from podmgr.runpod_classify import classify_graphql_message, classify_status, error_message

__all__ = ["DEFAULT_GRAPHQL_BASE", "PodRuntime", "graphql_url", "pod_runtime"]

DEFAULT_GRAPHQL_BASE = "https://api.runpod.io"
TIMEOUT_SECONDS = 30.0

_RUNTIME_QUERY = """
query PodRuntime($podId: String!) {
  pod(input: {podId: $podId}) { id runtime { uptimeInSeconds ports { privatePort type } } }
}
"""


@dataclass(frozen=True)
class PodRuntime:
    """What GraphQL says about a pod's container; `exists` False: GraphQL has no such pod."""

    exists: bool
    container_up: bool = False
    uptime_seconds: float | None = None


def graphql_url() -> str:
    """Where the SDK sends its queries: `RUNPOD_API_BASE_URL` (read on every call) + /graphql."""
    return os.environ.get("RUNPOD_API_BASE_URL", DEFAULT_GRAPHQL_BASE).rstrip("/") + "/graphql"


def pod_runtime(
    api_key: str, pod_id: str, *, transport: httpx.BaseTransport | None = None
) -> PodRuntime:
    """The pod's runtime: the container is up when it lists ports (dstack, c9b4412)."""
    data = run_query(api_key, _RUNTIME_QUERY, {"podId": pod_id}, transport=transport)
    pod = data.get("pod") if isinstance(data, dict) else None
    if not isinstance(pod, dict):
        return PodRuntime(exists=False)
    runtime = pod.get("runtime") or {}
    uptime = runtime.get("uptimeInSeconds")
    return PodRuntime(
        exists=True,
        container_up=bool(runtime.get("ports")),
        uptime_seconds=float(uptime) if uptime is not None else None,
    )


def run_query(
    api_key: str,
    query: str,
    variables: dict[str, Any],
    *,
    transport: httpx.BaseTransport | None = None,
) -> Any:
    """POST one query; its `data`, or a PodmgrError."""
    if not api_key:
        raise AuthError("RUNPOD_API_KEY is not set; export it (cron: see crontab.example)")
    what = "GraphQL pod runtime query"
    try:
        with httpx.Client(timeout=TIMEOUT_SECONDS, transport=transport) as http:
            response = http.post(
                graphql_url(),
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {api_key}"},
            )
    except httpx.TimeoutException as error:
        raise TransientApiError(f"RunPod did not answer the {what} in time: {error}") from error
    except httpx.RequestError as error:
        raise TransientApiError(f"RunPod unreachable for the {what}: {error!r}") from error
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if not response.is_success:
        message = error_message(body, f"HTTP {response.status_code} {response.reason_phrase}")
        raise classify_status(response.status_code, message, what=what, pod_resource=False)
    if not isinstance(body, dict):
        raise ApiError(f"RunPod answered the {what} with something other than JSON")
    errors = body.get("errors")
    if errors:
        raise classify_graphql_message(error_message(body, "unknown error"), what=what)
    return body.get("data")
