"""The RunPod adapter's edge: the SDK's errors (GPU catalog), bounded retries, pod ids."""

from __future__ import annotations

import json

import pytest
import requests
from runpod import error as rp_error

from podmgr.errors import (
    ApiError,
    AuthError,
    CapacityError,
    ConfigError,
    TransientApiError,
)
from podmgr.runpod.client import RunPodClient, check_pod_id, classify, parse_pod

CAPACITY = (
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again."
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            rp_error.AuthenticationError("Unauthorized request, please check your API key."),
            AuthError,
        ),
        (rp_error.AuthenticationError("No API key provided"), AuthError),
        (rp_error.QueryError("Unauthorized"), AuthError),
        (rp_error.QueryError(CAPACITY), CapacityError),
        (
            rp_error.QueryError(CAPACITY.replace("specifications.", "with enough disk space.")),
            CapacityError,
        ),
        (
            rp_error.QueryError(
                "There are not enough free GPUs on the host machine to start this pod."
            ),
            CapacityError,
        ),
        # A GraphQL "not found" is not a gone pod: pods go through REST, where a 404 on
        # the pod's own path says so (issue 10, finding 5).
        (rp_error.QueryError("pod not found to terminate"), ApiError),
        (rp_error.QueryError("Template not found"), ApiError),
        (
            rp_error.QueryError("Something went wrong. Please try again later or contact support."),
            TransientApiError,
        ),
        (rp_error.QueryError("some new validation message"), ApiError),
        (requests.ConnectionError("refused"), TransientApiError),
        (requests.Timeout("read timed out"), TransientApiError),
        (json.JSONDecodeError("Expecting value", "<html>502</html>", 0), TransientApiError),
        (requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0), TransientApiError),
        (KeyError("data"), TransientApiError),
        (ValueError("No GPU found with the specified ID, run runpod.get_gpus()"), ConfigError),
    ],
)
def test_classify(error: Exception, expected: type[Exception]) -> None:
    classified = classify(error)
    assert type(classified) is expected


def test_auth_error_is_never_retried() -> None:
    calls: list[int] = []
    client = RunPodClient(api_key="test-runpod-key-not-real", retry_initial_seconds=0)

    def failing() -> None:
        calls.append(1)
        raise rp_error.AuthenticationError("Unauthorized request, please check your API key.")

    with pytest.raises(AuthError):
        client.call("x", failing)
    assert calls == [1]


def test_transient_errors_are_retried_within_a_bounded_time() -> None:
    slept: list[float] = []
    client = RunPodClient(
        api_key="test-runpod-key-not-real",
        retry_initial_seconds=0.5,
        retry_max_seconds=0.0,
        sleep=slept.append,
    )
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise requests.ConnectionError("refused")
        return "ok"

    # retry_max_seconds=0: the first failure is final (tenacity measures real time)
    with pytest.raises(TransientApiError):
        client.call("x", flaky)
    assert attempts == [1] and slept == []
    attempts.clear()
    client = RunPodClient(
        api_key="test-runpod-key-not-real",
        retry_initial_seconds=0.5,
        retry_max_seconds=30.0,
        sleep=slept.append,
    )
    assert client.call("x", flaky) == "ok"
    assert len(attempts) == 3
    assert len(slept) == 2 and 0 < slept[0] <= 1.5 and slept[1] >= 1.0  # exponential, jittered


def test_missing_key_is_an_auth_error_before_any_import() -> None:
    client = RunPodClient(api_key="")
    with pytest.raises(AuthError, match="RUNPOD_API_KEY"):
        client.sdk()


@pytest.mark.parametrize("pod_id", ['abc"}', "a b", "x\n", "", "a" * 65])
def test_pod_ids_with_unsafe_characters_are_refused(pod_id: str) -> None:
    with pytest.raises(ApiError):
        check_pod_id(pod_id)


def test_parse_pod_reads_env_list_runtime_and_uptime() -> None:
    pod = parse_pod(
        {
            "id": "p1",
            "name": "podmgr-a",
            "desiredStatus": "RUNNING",
            "costPerHr": 0.69,
            "uptimeSeconds": 12,
            "gpuCount": 2,
            "env": ["PODMGR_MANAGED=1", "X=a=b"],
            "runtime": {"ports": [{"privatePort": 8000}], "uptimeInSeconds": 14},
        }
    )
    assert pod.running and pod.has_runtime and pod.uptime_seconds == 14 and pod.gpu_count == 2
    assert pod.runtime_read
    assert pod.env == {"PODMGR_MANAGED": "1", "X": "a=b"}
    bare = parse_pod({"id": "p2", "desiredStatus": "EXITED", "runtime": None, "env": None})
    assert not bare.running and not bare.has_runtime and bare.env == {}
