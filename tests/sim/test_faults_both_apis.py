"""Issue 10's faults on both APIs: REST v2 (httpx) and GraphQL (the real `runpod` SDK).

Each fault plays in the world operations (podmgr/sim/operations.py), so both APIs see it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import runpod
from runpod.error import QueryError

from podmgr.sim.faults import parse_fault
from podmgr.sim.process import SimProcess

from .v2kit import act, create_body, problem_of

RTX_4090 = "NVIDIA GeForce RTX 4090"
WENT_WRONG = "Something went wrong. Please try again later or contact support."
MISLEADING = "There are no longer any instances available with enough disk space."

pytestmark = pytest.mark.usefixtures("runpod_env")


def rest_create(rest: httpx.Client, **overrides: Any) -> httpx.Response:
    return rest.post("/pods", json=create_body(**{"name": "faults", **overrides}))


def rest_pod(rest: httpx.Client, **overrides: Any) -> str:
    answer = rest_create(rest, **overrides)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def sdk_pod(**overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "name": "faults-sdk",
        "image_name": "vllm/vllm-openai:v0.11.0",
        "gpu_type_id": RTX_4090,
        "support_public_ip": False,
        "start_ssh": False,
        **overrides,
    }
    return str(runpod.create_pod(**arguments)["id"])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"gave up after {timeout} s waiting for {what}")


def ledger_of(sim: SimProcess, pod_id: str) -> dict[str, Any]:
    return next(record for record in sim.ledger() if record["id"] == pod_id)


# --- api_error_after_apply --------------------------------------------------------------
def test_rest_create_answers_500_but_the_pod_exists_and_bills(
    sim: SimProcess, rest: httpx.Client
) -> None:
    sim.set_fault("api_error_after_apply", count=1, field="create", hide_seconds=600)
    answer = rest_create(rest)
    assert problem_of(answer, 500)["detail"] == WENT_WRONG
    (record,) = sim.ledger()
    assert record["status"] == "RUNNING"
    wait_for("billing to run", lambda: ledger_of(sim, record["id"])["billed_seconds"] > 0)
    assert rest.get("/pods").json() == {"pods": []}  # slow to appear in listings
    assert runpod.get_pods() == []
    assert rest.get(f"/pods/{record['id']}").status_code == 200


def test_rest_after_apply_html_body(sim: SimProcess, rest: httpx.Client) -> None:
    sim.set_fault("api_error_after_apply", count=1, body="html")
    answer = rest_create(rest)
    assert answer.status_code == 500 and answer.headers["content-type"].startswith("text/html")
    assert len(sim.ledger()) == 1


def test_graphql_create_went_wrong_but_the_pod_exists(sim: SimProcess) -> None:
    sim.set_fault("api_error_after_apply", count=1, field="create")
    with pytest.raises(QueryError, match=r"^Something went wrong"):
        sdk_pod()
    (record,) = sim.ledger()
    assert record["status"] == "RUNNING"
    assert [pod["id"] for pod in runpod.get_pods()] == [record["id"]]


@pytest.mark.parametrize("api", ["rest", "graphql"])
def test_stop_start_terminate_take_effect_before_the_error(
    sim: SimProcess, rest: httpx.Client, api: str
) -> None:
    pod_id = rest_pod(rest)
    for op, expected in (("stop", "EXITED"), ("start", "RUNNING"), ("terminate", "TERMINATED")):
        sim.set_fault("api_error_after_apply", count=1, field=op)
        if api == "rest":
            answer = act(rest, pod_id, op)
            assert answer.status_code == 500, (op, answer.text)
        else:
            call = {"stop": runpod.stop_pod, "terminate": runpod.terminate_pod}.get(op)
            with pytest.raises(QueryError, match=r"^Something went wrong"):
                call(pod_id) if call else runpod.resume_pod(pod_id, gpu_count=1)
        assert ledger_of(sim, pod_id)["status"] == expected, op


def test_after_apply_field_matches_only_its_operation(sim: SimProcess, rest: httpx.Client) -> None:
    sim.set_fault("api_error_after_apply", count=1, field="terminate")
    pod_id = rest_pod(rest)
    assert act(rest, pod_id, "stop").status_code == 200
    assert sim.faults()[0]["remaining"] == 1


# --- list_error -------------------------------------------------------------------------
def test_list_error_fails_rest_listing_but_not_the_pods_own_get(
    sim: SimProcess, rest: httpx.Client
) -> None:
    pod_id = rest_pod(rest)
    sim.set_fault("list_error", count=1)
    listing = rest.get("/pods")
    assert problem_of(listing, 500)["detail"] == WENT_WRONG
    sim.set_fault("list_error", count=1, status=503)
    page = rest.get("/pods")
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    sim.set_fault("list_error")
    assert rest.get(f"/pods/{pod_id}").status_code == 200
    assert runpod.get_pod(pod_id)["id"] == pod_id


# --- container_crash --------------------------------------------------------------------
@pytest.mark.parametrize("api", ["rest", "graphql"])
def test_container_crash_keeps_running_without_runtime_until_restarted(
    sim: SimProcess, rest: httpx.Client, api: str
) -> None:
    pod_id = rest_pod(rest)
    sim.wait_serving(pod_id)
    sim.set_fault("container_crash", count=1, pod_id=pod_id)
    if api == "rest":  # REST v2: the container is in an unrecoverable error state
        assert rest.get(f"/pods/{pod_id}").json()["status"] == "ERROR"
    else:
        assert runpod.get_pod(pod_id)["desiredStatus"] == "RUNNING"
    seen = runpod.get_pod(pod_id)
    assert (seen["desiredStatus"], seen["runtime"]) == ("RUNNING", None)
    assert rest.get(f"/pods/{pod_id}").json()["runtime"] is None
    assert httpx.get(sim.pod_url(pod_id) + "/health", timeout=30.0).status_code == 502
    assert sim.pod_phase(pod_id)["phase"] == "crashed"
    assert ledger_of(sim, pod_id)["status"] == "RUNNING"
    assert act(rest, pod_id, "start").status_code == 200  # ERROR allows start, not stop
    sim.wait_serving(pod_id)
    assert runpod.get_pod(pod_id)["runtime"] is not None


def test_pod_crash_is_runpod_stopping_the_pod(sim: SimProcess, rest: httpx.Client) -> None:
    pod_id = rest_pod(rest)
    sim.set_fault("pod_crash", count=1, pod_id=pod_id)
    assert rest.get(f"/pods/{pod_id}").json()["status"] == "EXITED"
    assert ledger_of(sim, pod_id)["ended_by"] == "runpod"


# --- transient_status -------------------------------------------------------------------
def test_transient_status_on_rest_create_and_start(sim: SimProcess, rest: httpx.Client) -> None:
    sim.set_fault("transient_status", count=1, seconds=600)
    created = rest_create(rest)
    assert created.json()["status"] == "PROVISIONING"  # GraphQL's CREATED
    pod_id = created.json()["id"]
    assert rest.get(f"/pods/{pod_id}").json()["status"] == "PROVISIONING"
    act(rest, pod_id, "stop")
    assert act(rest, pod_id, "start").json()["status"] in ("STARTING", "RUNNING")
    act(rest, pod_id, "stop")
    sim.set_fault("transient_status", count=1, seconds=600, pod_id=pod_id)
    assert act(rest, pod_id, "start").json()["status"] == "STARTING"  # GraphQL's RESTARTING


# --- unknown_template -------------------------------------------------------------------
def test_unknown_template_without_fault_is_not_found(sim: SimProcess, rest: httpx.Client) -> None:
    answer = rest_create(rest, templateId="vllm")
    assert problem_of(answer, 404)["detail"] == "Template not found"
    with pytest.raises(QueryError, match=r"^Template not found$"):
        sdk_pod(template_id="vllm")
    assert sim.ledger() == []
    assert rest_pod(rest, templateId="runpod-torch-v21")


@pytest.mark.parametrize(
    ("params", "message", "status"),
    [({}, MISLEADING, 400), ({"message": "not_found"}, "Template not found", 404)],
)
def test_unknown_template_fault(
    sim: SimProcess, rest: httpx.Client, params: dict[str, str], message: str, status: int
) -> None:
    sim.set_fault("unknown_template", **params)
    assert rest_pod(rest)  # no template named: the fault does not play
    answer = rest_create(rest, templateId="runpod-torch-v21")
    assert problem_of(answer, status)["detail"] == message
    with pytest.raises(QueryError) as caught:
        sdk_pod(template_id="runpod-torch-v21")
    assert str(caught.value) == message
    assert len(sim.ledger()) == 1


# --- call-level faults on REST ----------------------------------------------------------
def test_api_error_and_something_went_wrong_on_rest(sim: SimProcess, rest: httpx.Client) -> None:
    sim.set_fault("api_error", count=1, status=503, field="list")
    page = rest.get("/pods")
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    sim.set_fault("api_something_went_wrong", count=1, field="create")
    answer = rest_create(rest)
    assert problem_of(answer, 500)["detail"] == WENT_WRONG
    assert sim.ledger() == []


# --- ledger -----------------------------------------------------------------------------
def test_ledger_interruptible_and_ended_by(sim: SimProcess, rest: httpx.Client) -> None:
    answer = sim.graphql(
        'mutation { podRentInterruptable(input: {name: "spot", imageName: "x", '
        f'gpuTypeId: "{RTX_4090}", gpuCount: 1, bidPerGpu: 0.3}}) {{ id }} }}'
    )
    spot = answer["data"]["podRentInterruptable"]["id"]
    plain = sdk_pod()
    assert ledger_of(sim, spot)["interruptible"] is True
    assert ledger_of(sim, plain)["interruptible"] is False
    assert ledger_of(sim, spot)["ended_by"] is None
    runpod.stop_pod(plain)
    assert ledger_of(sim, plain)["ended_by"] == "user"
    sim.crash_pod(spot)
    assert ledger_of(sim, spot)["ended_by"] == "runpod"
    act(rest, spot, "start")
    rest.delete(f"/pods/{spot}")
    assert ledger_of(sim, spot)["ended_by"] == "user"


def test_fault_forms_parse_and_reject_bad_choices() -> None:
    spec = parse_fault("api_error_after_apply:x1,field=create,hide_seconds=5,body=html")
    assert dict(spec.params) == {"field": "create", "hide_seconds": 5.0, "body": "html"}
    for bad in (
        "api_error_after_apply,field=list",
        "api_error_after_apply,body=xml",
        "unknown_template,message=maybe",
    ):
        with pytest.raises(ValueError, match="must be one of"):
            parse_fault(bad)
    assert parse_fault("container_crash,pod_id=abc").params["pod_id"] == "abc"
