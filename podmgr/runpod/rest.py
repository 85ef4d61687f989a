"""RunPod's REST API v2 over httpx: one method per request, no retries (client.py retries).

The base URL comes from `RUNPOD_REST_URL` (default `https://api.runpod.io/v2`), read when a
client is made; the key goes in `Authorization: Bearer <key>` (RunPod OpenAPI v2,
securitySchemes). A base ending in `/v1` is refused (exit 2): v1 was retired on
2026-11-15 (RunPod docs, api-reference/overview.mdx, api-reference-v2/migrate-from-v1.mdx).

Bodies and answers are the document's (wire.py). Every answer's `RateLimit` header is read,
and the next call waits when a window runs low (ratelimit.py), before RunPod answers 429.
Every failure leaves this module as a PodmgrError (problems.py decides which): a network
error or timeout is a TransientApiError, an answer that does not fit the document an
ApiError.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from podmgr.errors import ApiError, AuthError, ConfigError, PodGoneError, TransientApiError
from podmgr.runpod import wire
from podmgr.runpod.problems import classify_status
from podmgr.runpod.ratelimit import (
    Window,
    parse_rate_limit,
    pause_before_next,
    retry_after_seconds,
)

__all__ = ["DEFAULT_REST_URL", "LogLine", "RestApi", "rest_url", "strict_from_env"]

DEFAULT_REST_URL = "https://api.runpod.io/v2"
DEFAULT_TIMEOUT_SECONDS = 30.0
# How long a pass waits for the next line of a followed log stream before it stops reading.
LOG_IDLE_SECONDS = 0.3
LOG_MAX_SECONDS = 5.0
# The document's maximum `tail` (components.parameters.LogTail).
LOG_TAIL_MAX = 5000
MAX_RATE_PAUSE_SECONDS = 60.0


def rest_url() -> str:
    """`RUNPOD_REST_URL` or RunPod's v2 base, without a trailing slash; ConfigError (exit 2)
    for a v1 base."""
    url = (os.environ.get("RUNPOD_REST_URL") or DEFAULT_REST_URL).rstrip("/")
    if url.endswith("/v1"):
        raise ConfigError(
            f"{url} is RunPod's REST API v1, retired on November 15, 2026: set "
            f"RUNPOD_REST_URL to the v2 base ({DEFAULT_REST_URL}) or unset it",
            field="RUNPOD_REST_URL",
        )
    return url


def strict_from_env() -> bool:
    """`PODMGR_RUNPOD_STRICT=1`: refuse answers outside the document (tests set it)."""
    return os.environ.get("PODMGR_RUNPOD_STRICT", "") == "1"


class LogLine(wire.ReadModel):
    """One event of `GET /pods/{id}/logs`: `{"ts", "source", "line"}` (getPodLogs)."""

    REQUIRED = frozenset({"ts", "source", "line"})
    ts: str = ""
    source: str = ""
    line: str = ""
    id: str = ""  # the SSE event id (the document: the event's ts)


M = TypeVar("M", bound=BaseModel)


class RestApi:
    """One httpx client for RunPod's REST API v2; each method is one request."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
        strict: bool | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise AuthError("RUNPOD_API_KEY is not set; export it (cron: see crontab.example)")
        self._http = httpx.Client(
            base_url=base_url or rest_url(),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        self.strict = strict_from_env() if strict is None else strict
        self._sleep = sleep
        self.rate_windows: list[Window] = []
        # The last `RateLimit-Policy` RunPod sent (quota `q` per window `w`), as given.
        self.rate_policy: str | None = None

    def close(self) -> None:
        self._http.close()

    # --- pods ----------------------------------------------------------------------------
    def list_pods(self) -> list[wire.Pod]:
        """`GET /pods` -> `{"pods": [...]}` (listPods); no name filter exists: the caller
        filters. A `nextCursor` in an answer is followed (SkyPilot's v2 migration, #10846,
        follows cursor pagination; the August 2026 document shows none)."""
        pods: list[wire.Pod] = []
        params: dict[str, str] = {}
        for _page in range(100):
            body = self._request("GET", "/pods", params=params)
            pods += self._parse(wire.ListPodsResponse, body, "GET /pods").pods
            cursor = body.get("nextCursor") if isinstance(body, dict) else None
            if not cursor:
                break
            params = {"cursor": str(cursor)}
        return pods

    def get_pod(self, pod_id: str) -> wire.Pod | None:
        """`GET /pods/{id}`; None when RunPod answers 404 (the pod is gone)."""
        try:
            body = self._request("GET", f"/pods/{pod_id}", pod_resource=True)
        except PodGoneError:
            return None
        return self._parse(wire.Pod, body, "GET /pods/{id}")

    def create_pod(self, request: wire.CreatePodRequest) -> wire.Pod:
        """`POST /pods` (201 with the new Pod; createPod)."""
        body = self._request("POST", "/pods", json=request.body(), create=True)
        return self._parse(wire.Pod, body, "POST /pods")

    def pod_action(self, pod_id: str, action: str) -> wire.Pod | None:
        """`POST /pods/{id}/action` `{"action": ...}` (podAction): the updated pod, or None
        for `terminate` (204)."""
        body = self._request(
            "POST", f"/pods/{pod_id}/action", json={"action": action}, pod_resource=True
        )
        return None if body is None else self._parse(wire.Pod, body, "POST /pods/{id}/action")

    def delete_pod(self, pod_id: str) -> None:
        """`DELETE /pods/{id}` (204; deletePod); PodGoneError when RunPod answers 404."""
        self._request("DELETE", f"/pods/{pod_id}", pod_resource=True)

    def pod_logs(
        self,
        pod_id: str,
        *,
        after: str | None = None,
        source: str | None = None,
        idle_seconds: float = LOG_IDLE_SECONDS,
        max_seconds: float = LOG_MAX_SECONDS,
    ) -> list[LogLine]:
        """The pod's log lines after the event id `after` (all kept lines when None), read
        from `GET /pods/{id}/logs` (getPodLogs, Server-Sent Events). The stream follows the
        pod; reading stops once no line came for `idle_seconds`, or after `max_seconds`."""
        return list(
            self.follow_logs(
                pod_id, after=after, source=source, idle_seconds=idle_seconds,
                max_seconds=max_seconds,
            )
        )  # fmt: skip

    def follow_logs(
        self,
        pod_id: str,
        *,
        after: str | None = None,
        source: str | None = None,
        tail: int | None = None,
        idle_seconds: float | None = LOG_IDLE_SECONDS,
        max_seconds: float | None = LOG_MAX_SECONDS,
    ) -> Iterator[LogLine]:
        """The log lines as they come; `idle_seconds`/`max_seconds` None: until the stream
        ends (the pod terminated)."""
        params: dict[str, str] = {"tail": str(LOG_TAIL_MAX if tail is None else tail)}
        if source:
            params["source"] = source
        headers = {"Last-Event-ID": after} if after else {}
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_SECONDS, read=idle_seconds)
        what = "GET /pods/{id}/logs"
        self._pace()
        started = time.monotonic()
        try:
            with self._http.stream(
                "GET", f"/pods/{pod_id}/logs", params=params, headers=headers, timeout=timeout
            ) as response:
                self._note(response)
                if not response.is_success:
                    response.read()
                    raise self._failure(response, what, pod_resource=True, create=False)
                for event in _sse_events(response.iter_lines()):
                    yield self._log_line(event, what)
                    if max_seconds is not None and time.monotonic() - started > max_seconds:
                        return
        except httpx.ReadTimeout:
            return  # no line for idle_seconds: what there was has been read
        except httpx.RequestError as error:
            raise TransientApiError(f"RunPod unreachable for {what}: {error!r}") from error

    def _log_line(self, event: Mapping[str, str], what: str) -> LogLine:
        try:
            data = json.loads(event.get("data", ""))
        except ValueError:
            raise ApiError(f"RunPod answered {what} with an event that is not JSON") from None
        line = self._parse(LogLine, data, what)
        return line.model_copy(update={"id": event.get("id") or line.ts})

    # --- catalog, volumes, billing --------------------------------------------------------
    def list_gpus(
        self, *, cloud: str, count: int = 1, min_cuda: str | None = None
    ) -> list[wire.GpuType]:
        """`GET /catalog/gpus?include=AVAILABILITY&product=POD&cloud=...` (listGpuTypes):
        prices, stock and the CUDA versions with free machines, in one cloud."""
        params = {"include": "AVAILABILITY", "product": "POD", "cloud": cloud, "count": str(count)}
        if min_cuda:
            params["minCudaVersion"] = min_cuda
        body = self._request("GET", "/catalog/gpus", params=params)
        return self._parse(wire.ListGpuTypesResponse, body, "GET /catalog/gpus").gpus

    def get_network_volume(self, volume_id: str) -> wire.NetworkVolume | None:
        """`GET /network-volumes/{id}` (getNetworkVolume); None when RunPod answers 404."""
        try:
            body = self._request("GET", f"/network-volumes/{volume_id}", pod_resource=True)
        except PodGoneError:  # a 404 on this resource's own path: no such volume
            return None
        return self._parse(wire.NetworkVolume, body, "GET /network-volumes/{id}")

    def pod_billing(
        self, *, start_time: str, bucket_size: str = "day", pod_id: str | None = None
    ) -> list[wire.PodBillingRecord]:
        """`GET /billing/pods` (listPodBilling): one record per pod per bucket."""
        params = {"startTime": start_time, "bucketSize": bucket_size}
        if pod_id:
            params["podId"] = pod_id
        body = self._request("GET", "/billing/pods", params=params)
        return self._parse(wire.ListPodBillingResponse, body, "GET /billing/pods").records

    # --- plumbing ------------------------------------------------------------------------
    def _pace(self) -> None:
        """Wait before a call when the last answer said a window is nearly spent."""
        pause = pause_before_next(self.rate_windows, MAX_RATE_PAUSE_SECONDS)
        if pause > 0:
            self._sleep(pause)
            self.rate_windows = []

    def _note(self, response: httpx.Response) -> None:
        windows = parse_rate_limit(response.headers.get("RateLimit"))
        if windows:
            self.rate_windows = windows
        policy = response.headers.get("RateLimit-Policy")
        if policy:
            self.rate_policy = policy

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        pod_resource: bool = False,
        create: bool = False,
    ) -> Any:
        """One request; the decoded JSON answer (None when empty) or a PodmgrError."""
        what = f"{method} {_template(path)}"
        self._pace()
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
        self._note(response)
        if response.is_success:
            return _decode(response)
        raise self._failure(response, what, pod_resource=pod_resource, create=create)

    def _failure(
        self, response: httpx.Response, what: str, *, pod_resource: bool, create: bool
    ) -> ApiError:
        error = classify_status(
            response.status_code,
            _decode(response),
            what=what,
            fallback=f"HTTP {response.status_code} {response.reason_phrase}",
            pod_resource=pod_resource,
            create=create,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
        assert isinstance(error, ApiError)
        return error

    def _parse(self, model: type[M], body: Any, what: str) -> M:
        try:
            parsed = model.model_validate(body)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ApiError(
                f"RunPod's answer to {what} does not fit its API document: {where}: {first['msg']}"
            ) from None
        if self.strict:
            problems = wire.check_strict(parsed)
            if problems:
                raise ApiError(f"RunPod's answer to {what} breaks its document: {problems[:5]}")
        return parsed


def _template(path: str) -> str:
    """`/pods/abc/action` -> `/pods/{id}/action`: messages name the route, not the id."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] in ("pods", "network-volumes"):
        parts[2] = "{id}"
    return "/".join(parts)


def _decode(response: httpx.Response) -> Any:
    """JSON when the answer is JSON; its text otherwise (an HTML error page, empty 204)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-Sent Events: fields until a blank line; `:` comments skipped (WHATWG HTML,
    "Parsing an event stream")."""
    event: dict[str, str] = {}
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if "data" in event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data" and "data" in event:
            event["data"] += "\n" + value
        else:
            event[name] = value
    if "data" in event:
        yield event
