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

__all__ = ["DEFAULT_GRAPHQL_BASE", "GraphqlApi", "PodRuntime", "graphql_url"]

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


class GraphqlApi:
    """One httpx client for RunPod's GraphQL endpoint (kept across a pass's readiness
    polls, so each poll does not pay a new TLS handshake); no retries."""

    def __init__(self, api_key: str, *, transport: httpx.BaseTransport | None = None) -> None:
        if not api_key:
            raise AuthError("RUNPOD_API_KEY is not set; export it (cron: see crontab.example)")
        self._http = httpx.Client(
            timeout=TIMEOUT_SECONDS,
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}"},
        )

    def close(self) -> None:
        self._http.close()

    def pod_runtime(self, pod_id: str) -> PodRuntime:
        """The pod's runtime: the container is up when it lists ports (dstack, c9b4412)."""
        data = self.run_query(_RUNTIME_QUERY, {"podId": pod_id}, what="the pod runtime query")
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

    def run_query(self, query: str, variables: dict[str, Any], *, what: str) -> Any:
        """POST one query; its `data`, or a PodmgrError."""
        try:
            response = self._http.post(graphql_url(), json={"query": query, "variables": variables})
        except httpx.TimeoutException as error:
            raise TransientApiError(f"RunPod did not answer {what} in time: {error}") from error
        except httpx.RequestError as error:
            raise TransientApiError(f"RunPod unreachable for {what}: {error!r}") from error
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if not response.is_success:
            fallback = f"HTTP {response.status_code} {response.reason_phrase}"
            message = error_message(body, fallback)
            raise classify_status(response.status_code, message, what=what, pod_resource=False)
        if not isinstance(body, dict):
            raise ApiError(f"RunPod answered {what} with something other than JSON")
        if body.get("errors"):
            raise classify_graphql_message(error_message(body, "unknown error"), what=what)
        return body.get("data")
