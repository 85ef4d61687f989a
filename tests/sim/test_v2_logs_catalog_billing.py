"""REST v2 pod logs (SSE), the GPU catalog with availability, billing and network volumes."""

from __future__ import annotations

import json
import time

import httpx

from podmgr.guard.launch import guard_entrypoint
from podmgr.sim.operations import CAPACITY_MESSAGE
from podmgr.sim.podlogs import format_ts, parse_ts
from podmgr.sim.process import SimProcess

from .v2kit import H100, RTX_4090, act, create, create_body, problem_of, read_events, wait_for


def _serving_lines(events: list[dict[str, object]]) -> bool:
    return any(e["line"] == "INFO:     Application startup complete." for e in events)


def test_logs_stream_system_and_container_lines(sim: SimProcess, rest: httpx.Client) -> None:
    pod_id = create(rest)["id"]
    sim.wait_serving(pod_id)
    events, ended = read_events(rest, f"/pods/{pod_id}/logs", until=_serving_lines)
    assert not ended
    lines = [(e["source"], e["line"]) for e in events]
    assert lines[:3] == [
        ("system", "Pulling image vllm/vllm-openai:v0.8.5"),
        ("system", "Image pulled in 0.1s"),
        ("system", "Starting container"),
    ]
    assert any("api_server.py:1090] vLLM API server version 0.8.5" in line for _s, line in lines)
    assert any("Starting vLLM API server on http://0.0.0.0:8000" in line for _s, line in lines)
    stamps = [parse_ts(str(e["ts"])) for e in events]
    assert stamps == sorted(set(stamps))  # strictly increasing
    assert all(e["id"] == e["ts"] and str(e["ts"]).endswith("Z") for e in events)
    assert format_ts(stamps[0]) == events[0]["ts"]


def test_logs_source_tail_since_and_last_event_id(sim: SimProcess, rest: httpx.Client) -> None:
    pod_id = create(rest)["id"]
    sim.wait_serving(pod_id)
    path = f"/pods/{pod_id}/logs"
    every, _ = read_events(rest, path, until=_serving_lines)
    system, _ = read_events(rest, path, params={"source": "system"}, timeout=1.0)
    assert system and all(e["source"] == "system" for e in system)
    last_two, _ = read_events(rest, path, params={"tail": 2}, timeout=1.0)
    assert [e["id"] for e in last_two] == [e["id"] for e in every[-2:]]
    assert read_events(rest, path, params={"tail": 0}, timeout=1.0)[0] == []
    since, _ = read_events(rest, path, params={"since": every[2]["ts"]}, timeout=1.0)
    assert [e["id"] for e in since] == [e["id"] for e in every[3:]]
    resumed, _ = read_events(
        rest, path, headers={"Last-Event-ID": str(every[-3]["id"])}, timeout=1.0
    )
    assert [e["id"] for e in resumed] == [e["id"] for e in every[-2:]]
    problem_of(rest.get(path, params={"tail": "lots"}), 400)
    problem_of(rest.get("/pods/nope/logs"), 404)


def test_logs_follow_new_lines_and_end_on_terminate(sim: SimProcess, rest: httpx.Client) -> None:
    pod_id = create(rest)["id"]
    sim.wait_serving(pod_id)
    with httpx.Client(base_url=sim.rest_url, headers=rest.headers, timeout=30.0) as other:

        def stop_then_terminate(events: list[dict[str, object]]) -> bool:
            if _serving_lines(events) and not hasattr(stop_then_terminate, "done"):
                stop_then_terminate.done = True  # type: ignore[attr-defined]
                assert act(other, pod_id, "stop").status_code == 200
                assert other.delete(f"/pods/{pod_id}").status_code == 204
            return False

        events, ended = read_events(
            rest, f"/pods/{pod_id}/logs", until=stop_then_terminate, timeout=30.0
        )
    assert ended
    tail = [e["line"] for e in events[-2:]]
    assert tail == ["Stopping container", "Pod terminated"]


def test_a_guard_pod_runs_from_start_command_json_and_its_key_is_scoped() -> None:
    """`args` as start-command JSON with the guard as entrypoint: podproc runs it, its
    output is the pod's container log, and the pod-scoped key reaches only its own pod."""
    now = time.time()
    args = json.dumps(
        {
            "entrypoint": guard_entrypoint(),
            "cmd": ["vllm", "serve", "--model", "m", "--port", "8000"],
        }
    )
    env = {"PODMGR_GUARD_CREATED_AT": f"{now:.3f}", "PODMGR_GUARD_DEADLINE": f"{now + 3600:.3f}"}
    with SimProcess(extra_args=["--run-guards"]) as sim:
        headers = {"Authorization": f"Bearer {sim.api_key}"}
        with httpx.Client(base_url=sim.rest_url, headers=headers, timeout=30.0) as rest:
            other = create(rest, name="other")["id"]
            pod_id = create(rest, args=args, env=env)["id"]
            described = wait_for(
                "the guard process", lambda: _process(sim, pod_id).get("pod_key") or None
            )
            key = {"Authorization": f"Bearer {described}"}
            with httpx.Client(base_url=sim.rest_url, headers=key, timeout=30.0) as pod:
                own = pod.get(f"/pods/{pod_id}")
                assert own.status_code == 200 and "RateLimit" in own.headers
                problem_of(pod.get("/pods"), 403)
                problem_of(pod.get(f"/pods/{other}"), 403)
                problem_of(pod.post("/pods", json=create_body()), 403)
                problem_of(pod.get("/catalog/gpus"), 403)
                events, _ = read_events(
                    pod, f"/pods/{pod_id}/logs", params={"source": "container"},
                    until=lambda seen: bool(seen), timeout=30.0,
                )  # fmt: skip
                assert events and all(e["source"] == "container" for e in events)
                assert act(pod, pod_id, "stop").status_code == 200
            assert next(r for r in sim.ledger() if r["id"] == pod_id)["ended_by"] == "pod"


def _process(sim: SimProcess, pod_id: str) -> dict[str, object]:
    answer = httpx.get(f"{sim.base_url}/_sim/pods/{pod_id}/process", timeout=30.0)
    body: dict[str, object] = answer.json()
    return body if body.get("running") else {}


def test_catalog_lists_the_documents_gpu_type_fields(rest: httpx.Client) -> None:
    gpus = rest.get("/catalog/gpus").json()["gpus"]
    first = next(g for g in gpus if g["id"] == RTX_4090)
    assert set(first) == {"id", "name", "pool", "manufacturer", "memory", "secure", "community",
                          "price", "maxCount"}  # fmt: skip
    assert first["price"]["secure"] > 0 and first["maxCount"]["secure"] >= 1
    assert rest.get(f"/catalog/gpus/{RTX_4090}").json()["id"] == RTX_4090
    problem_of(rest.get("/catalog/gpus/NVIDIA Nothing"), 404)
    problem_of(rest.get("/catalog/gpus", params={"include": "AVAILABILITY"}), 400)
    problem_of(rest.get("/catalog/gpus", params={"product": "POD"}), 400)
    bad = {"include": "AVAILABILITY", "product": "POD", "cudaVersions": "12"}
    problem_of(rest.get("/catalog/gpus", params=bad), 422)


def test_catalog_availability_gpu_stock_and_cuda_scope() -> None:
    extra = ["--gpu-stock", f"{H100}=NONE", "--gpu-stock", f"{RTX_4090}=LOW",
             "--host-cuda", "12.4,12.8"]  # fmt: skip
    with SimProcess(extra_args=extra) as sim:
        headers = {"Authorization": f"Bearer {sim.api_key}"}
        with httpx.Client(base_url=sim.rest_url, headers=headers, timeout=30.0) as rest:
            params = {"include": "AVAILABILITY", "product": "POD"}
            gpus = {g["id"]: g for g in rest.get("/catalog/gpus", params=params).json()["gpus"]}
            assert gpus[RTX_4090]["availability"] == "LOW"
            assert gpus[RTX_4090]["cudaVersions"] == [
                {"version": "12.4", "available": True},
                {"version": "12.8", "available": True},
            ]
            assert gpus[RTX_4090]["dataCenters"][0]["availability"] == "LOW"
            assert gpus[H100]["availability"] == "NONE" and "dataCenters" not in gpus[H100]
            floor = rest.get(
                f"/catalog/gpus/{RTX_4090}", params={**params, "minCudaVersion": "12.5"}
            )
            assert [v["version"] for v in floor.json()["cudaVersions"]] == ["12.8"]
            none = rest.get(f"/catalog/gpus/{RTX_4090}", params={**params, "cudaVersions": "13.0"})
            assert none.json()["availability"] == "NONE"
            community = rest.get(f"/catalog/gpus/{H100}", params={**params, "cloud": "COMMUNITY"})
            assert community.json()["availability"] == "NONE"
            refused = rest.post("/pods", json=create_body(gpu={"id": H100}))
            assert problem_of(refused, 400)["detail"] == CAPACITY_MESSAGE
            # The capacity fault does not change the catalog: it is not a reservation.
            sim.set_fault("capacity", count=1)
            again = rest.get(f"/catalog/gpus/{RTX_4090}", params=params).json()
            assert again["availability"] == "LOW"
            problem_of(rest.post("/pods", json=create_body()), 400)


def test_billing_one_record_per_pod_per_bucket(sim: SimProcess, rest: httpx.Client) -> None:
    first, second = create(rest)["id"], create(rest)["id"]
    wait_for("billing", lambda: sim.total_cost() > 0)
    act(rest, first, "stop")
    answer = rest.get("/billing/pods", params={"bucketSize": "hour"})
    assert answer.status_code == 200
    body = answer.json()
    assert {r["podId"] for r in body["records"]} == {first, second}
    record = body["records"][0]
    assert set(record) == {"startTime", "endTime", "podId", "totalAmount", "gpuAmount",
                           "cpuAmount", "diskAmount"}  # fmt: skip
    meta = body["metadata"]
    assert meta["recordCount"] == len(body["records"]) and meta["uniquePodCount"] == 2
    assert meta["query"]["bucketSize"] == "hour" and meta["totals"]["totalAmount"] > 0
    one = rest.get("/billing/pods", params={"podId": first, "lastN": 2}).json()
    assert [r["podId"] for r in one["records"]] == [first]
    stopped = sum(r["totalAmount"] for r in one["records"])
    ledger = next(r for r in sim.ledger() if r["id"] == first)
    assert abs(stopped - ledger["cost_usd"]) < 1e-5
    both = {"lastN": 1, "startTime": "2026-01-01T00:00:00Z"}
    problem_of(rest.get("/billing/pods", params=both), 400)


def test_network_volumes_and_a_pod_that_mounts_one(rest: httpx.Client) -> None:
    made = rest.post("/network-volumes", json={"name": "w", "size": 50, "dataCenter": "US-TX-3"})
    assert made.status_code == 201, made.text
    volume = made.json()
    assert volume == {"id": volume["id"], "name": "w", "size": 50, "dataCenter": "US-TX-3",
                      "type": "STANDARD"}  # fmt: skip
    assert rest.get("/network-volumes").json() == {"networkVolumes": [volume]}
    assert rest.get(f"/network-volumes/{volume['id']}").json() == volume
    problem_of(rest.get("/network-volumes/nope"), 404)
    mounts = {"network": [{"volumeId": volume["id"], "path": "/runpod-volume"}]}
    pod = create(rest, mounts=mounts)
    assert pod["mounts"] == mounts and pod["dataCenterId"] == "US-TX-3"
    problem_of(rest.delete(f"/network-volumes/{volume['id']}"), 400)  # mounted
    assert rest.delete(f"/pods/{pod['id']}").status_code == 204
    assert rest.delete(f"/network-volumes/{volume['id']}").status_code == 204
    problem_of(rest.post("/network-volumes", json={"name": "w", "size": 5000}), 422)


def test_persistent_mount_shows_back(rest: httpx.Client) -> None:
    mounts = {"persistent": {"size": 20, "path": "/workspace"}}
    assert create(rest, mounts=mounts)["mounts"] == mounts
