"""The REST adapter on an injected transport: the create body, classification, retries.

httpx.MockTransport stands in for RunPod; the same paths against the real simulator are
in test_runpod_client_sim.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from podmgr.errors import (
    ApiError,
    AuthError,
    CapacityError,
    ConfigError,
    PodGoneError,
    TransientApiError,
)
from podmgr.runpod.client import RunPodClient, create_input
from podmgr.runpod.values import PodSpec

KEY = "test-runpod-key-not-real"
REST = "http://rest.test/v1"
CAPACITY = (
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again."
)
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_REST_URL", REST)
    monkeypatch.setenv("RUNPOD_API_BASE_URL", "http://graphql.test")


def client(handler: Handler, retry_max_seconds: float = 5.0) -> RunPodClient:
    return RunPodClient(
        api_key=KEY,
        retry_initial_seconds=0.01,
        retry_max_seconds=retry_max_seconds,
        sleep=lambda _s: None,
        transport=httpx.MockTransport(handler),
        clock=lambda: 1_000_000.0,
    )


def spec(**changes: Any) -> PodSpec:
    values: dict[str, Any] = {
        "name": 'podmgr-x "quoted"',
        "image_name": "vllm/vllm-openai:v0.8.5",
        "gpu_type_id": "NVIDIA GeForce RTX 4090",
        "cloud_type": "COMMUNITY",
        "gpu_count": 1,
        "container_disk_in_gb": 50,
        "volume_in_gb": 0,
        "volume_mount_path": "/workspace",
        "docker_args": "--model 'org/m' --max-model-len 4096",
        "ports": "8000/http",
        "env": {"PODMGR_MANAGED": "1", "X": 'a"b'},
        "template_id": None,
    }
    values.update(changes)
    return PodSpec(**values)


def test_create_body_follows_pod_create_input() -> None:
    body = create_input(spec()).body()
    assert body == {
        "name": 'podmgr-x "quoted"',
        "imageName": "vllm/vllm-openai:v0.8.5",
        "gpuTypeIds": ["NVIDIA GeForce RTX 4090"],
        "gpuCount": 1,
        "cloudType": "COMMUNITY",
        "containerDiskInGb": 50,
        "volumeInGb": 0,
        "volumeMountPath": "/workspace",
        "ports": ["8000/http"],
        "env": {"PODMGR_MANAGED": "1", "X": 'a"b'},
        "dockerStartCmd": ["--model", "org/m", "--max-model-len", "4096"],
        "supportPublicIp": False,
    }
    assert create_input(spec(template_id="tpl1")).body()["templateId"] == "tpl1"


@pytest.mark.parametrize(("changes", "field"), [
    ({"cloud_type": "ALL"}, "cloud_type"),
    ({"docker_args": "--model 'unclosed"}, "docker_args"),
])  # fmt: skip
def test_create_refuses_what_rest_cannot_send(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        create_input(spec(**changes))


def answer(status: int, body: Any = None, text: str | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text)
        return httpx.Response(status, json=body)

    return handler


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(401, {"error": "invalid api key"}, AuthError, id="401"),
        pytest.param(403, {"error": "forbidden"}, AuthError, id="403-read-only-key"),
        pytest.param(404, {"error": "Template not found"}, ApiError, id="template-not-found"),
        pytest.param(400, {"error": "Network volume not found"}, ApiError, id="volume-not-found"),
        pytest.param(500, {"error": CAPACITY}, CapacityError, id="capacity-500"),
        pytest.param(400, {"error": CAPACITY.replace(
            "the requested specifications", "enough disk space")}, CapacityError, id="disk"),
        pytest.param(400, {"error": "create pod: this machine does not have the resources "
                                    "to deploy this pod"}, CapacityError, id="machine"),
        pytest.param(429, None, TransientApiError, id="429"),
        pytest.param(502, None, TransientApiError, id="502"),
        pytest.param(400, {"error": "gpuCount must be at least 1"}, ApiError, id="400"),
    ],
)  # fmt: skip
def test_create_errors_by_status_and_body(
    status: int, body: Any, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as caught:
        client(answer(status, body), retry_max_seconds=0).create_pod(spec())
    assert type(caught.value) is expected  # a 404 on POST /pods is not PodGoneError
    if body and expected is ApiError:
        assert body["error"] in str(caught.value)


def test_an_html_error_page_is_transient() -> None:
    html = "<html><body>502 Bad Gateway</body></html>"
    with pytest.raises(TransientApiError, match="502"):
        client(answer(502, text=html), retry_max_seconds=0).list_pods()


@pytest.mark.parametrize("status", [401, 403])
def test_key_problems_are_never_retried(status: int) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        return httpx.Response(status, json={"error": "no"})

    with pytest.raises(AuthError) as caught:
        client(handler, retry_max_seconds=60).list_pods()
    assert caught.value.exit_code == 3 and seen == ["/v1/pods"]


def test_transient_errors_are_retried_then_succeed() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=[])

    assert client(handler).list_pods() == []
    assert len(calls) == 3


def test_404_on_the_pods_own_resource_is_gone() -> None:
    rp = client(answer(404, {"error": "pod not found"}))
    assert rp.get_pod("abc123") is None
    assert rp.terminate_pod("abc123") is False
    with pytest.raises(PodGoneError):
        rp.stop_pod("abc123")
    with pytest.raises(PodGoneError):
        rp.resume_pod("abc123", 1)


def rest_pod(status: str = "RUNNING", **extra: Any) -> dict[str, Any]:
    return {
        "id": "abc123",
        "name": "podmgr-a",
        "desiredStatus": status,
        "costPerHr": 0.69,
        "lastStartedAt": "1970-01-12T13:46:10Z",  # 999_970 s after the epoch
        "env": {"PODMGR_MANAGED": "1"},
        "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 2},
        "machine": {"gpuTypeId": "x"},
        **extra,
    }


def test_list_pods_does_not_read_the_runtime() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "rest.test", "list_pods must not query GraphQL"
        pods = [rest_pod(), rest_pod("EXITED", id="p2"), rest_pod("TERMINATED", id="p3")]
        return httpx.Response(200, json=pods)

    running, stopped = client(handler).list_pods()  # the terminated pod is left out
    assert running.running and not running.runtime_read and not running.has_runtime
    assert running.uptime_seconds == 30.0 and running.gpu_count == 2
    assert running.env == {"PODMGR_MANAGED": "1"} and running.cost_per_hr == 0.69
    assert stopped.stopped and stopped.uptime_seconds is None


@pytest.mark.parametrize(("runtime", "up"), [
    ({"uptimeInSeconds": 12, "ports": [{"privatePort": 8000, "type": "http"}]}, True),
    (None, False),
])  # fmt: skip
def test_get_pod_reads_the_runtime_of_a_running_pod(runtime: Any, up: bool) -> None:
    queries: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "graphql.test":
            assert request.url.path == "/graphql"
            assert request.headers["Authorization"] == f"Bearer {KEY}"
            queries.append(json.loads(request.content))
            return httpx.Response(200, json={"data": {"pod": {"id": "abc123", "runtime": runtime}}})
        assert request.url.path == "/v1/pods/abc123"
        return httpx.Response(200, json=rest_pod())

    pod = client(handler).get_pod("abc123")
    assert pod is not None and pod.runtime_read and pod.has_runtime is up
    assert pod.uptime_seconds == (12.0 if up else 30.0)
    assert queries[0]["variables"] == {"podId": "abc123"}


def test_a_terminated_pod_is_a_gone_one() -> None:
    assert client(answer(200, rest_pod("TERMINATED"))).get_pod("abc123") is None


def test_get_pod_of_a_stopped_pod_asks_rest_only() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "rest.test"
        return httpx.Response(200, json=rest_pod("EXITED"))

    pod = client(handler).get_pod("abc123")
    assert pod is not None and pod.stopped and not pod.has_runtime


def test_graphql_permission_error_is_a_key_problem() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "graphql.test":
            return httpx.Response(200, json={"data": {"pod": None},
                                             "errors": [{"message": "Unauthorized"}]})  # fmt: skip
        return httpx.Response(200, json=rest_pod())

    with pytest.raises(AuthError):
        client(handler).get_pod("abc123")


def test_a_create_that_failed_after_applying_returns_the_pod_it_made() -> None:
    made: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            made.append(rest_pod(name=json.loads(request.content)["name"]))
            return httpx.Response(500, json={"error": "Something went wrong"})
        assert request.url.params["name"] == 'podmgr-x "quoted"'
        return httpx.Response(200, json=made)

    assert client(handler).create_pod(spec()) == "abc123"
    assert len(made) == 1


def test_an_answer_outside_the_document_is_an_api_error() -> None:
    with pytest.raises(ApiError, match="does not fit"):
        client(answer(200, [{"name": "no id"}])).list_pods()


def test_billing_records_are_read_with_their_filters() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/billing/pods"
        assert dict(request.url.params) == {"bucketSize": "hour", "grouping": "podId",
                                            "podId": "abc123"}  # fmt: skip
        record = {"amount": 0.5, "podId": "abc123", "timeBilledMs": 3600000}
        return httpx.Response(200, json=[{**record, "time": "2026-01-01T00:00:00Z"}])

    records = client(handler).rest().pod_billing(bucket_size="hour", pod_id="abc123")
    assert records[0].amount == 0.5 and records[0].time_billed_ms == 3_600_000


def test_a_retried_create_waits_for_a_pod_slow_to_appear_in_listings() -> None:
    """transformerlab-app#2305: the pod of a create answered 500 showed up in listings late."""
    posts: list[int] = []
    lists: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(1)
            return httpx.Response(500, json={"message": "Something went wrong"})
        lists.append(1)
        visible = len(lists) > 2
        return httpx.Response(200, json=[rest_pod(name=spec().name)] if visible else [])

    assert client(handler).create_pod(spec()) == "abc123"
    assert posts == [1] and len(lists) == 3


@pytest.mark.parametrize(("status", "expected"), [
    (403, AuthError), (502, TransientApiError), (400, ApiError),
])  # fmt: skip
def test_the_runtime_query_is_classified_by_status(status: int, expected: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "graphql.test":
            return httpx.Response(status, text="<html>error page</html>")
        return httpx.Response(200, json=rest_pod())

    with pytest.raises(expected) as caught:
        client(handler, retry_max_seconds=0).get_pod("abc123")
    assert type(caught.value) is expected and str(status) in str(caught.value)
