"""`podmgr sim` as a process: the start-up lines, clean exit on signals, the key check."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from podmgr.sim.process import SimProcess, SimStartError


def test_prints_both_lines_and_serves(sim: SimProcess) -> None:
    assert sim.base_url.startswith("http://127.0.0.1:")
    assert sim.pod_url_template == sim.base_url + "/pods/{pod_id}-{port}"
    assert sim.startup_seconds is not None  # measured (bench/ reports it); never bounded here
    assert httpx.get(sim.base_url + "/_sim/health", timeout=5).status_code == 200


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_exits_zero_on_signal(signum: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "podmgr", "sim", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    second = process.stdout.readline()
    third = process.stdout.readline()
    assert first.startswith("RUNPOD_API_BASE_URL=http://127.0.0.1:")
    assert second.startswith("POD_URL_TEMPLATE=http://127.0.0.1:")
    assert second.rstrip().endswith("/pods/{pod_id}-{port}")
    base = first.rstrip().partition("=")[2]
    assert third.rstrip() == f"RUNPOD_REST_URL={base}/v2"
    assert process.stdout.readline().rstrip() == "RUNPOD_API_KEY=sim-key-not-secret"
    process.send_signal(signum)
    assert process.wait(timeout=10) == 0
    process.stdout.close()


def test_only_configured_keys_are_accepted() -> None:
    with SimProcess(api_keys=("key-one-not-real", "key-two-not-real")) as sim:
        for key, expected in (("key-two-not-real", 200), ("nope", 401)):
            answer = httpx.post(
                sim.base_url + "/graphql",
                json={"query": "{ myself { id } }"},
                headers={"Authorization": f"Bearer {key}"},
                timeout=5,
            )
            assert answer.status_code == expected


def test_start_failure_raises_with_stderr() -> None:
    with pytest.raises(SimStartError, match="--fault"), SimProcess(faults=["nonsense"]):
        pass


def test_faults_from_the_command_line_are_listed() -> None:
    with SimProcess(faults=["capacity:x2,gpu_type_ids=NVIDIA L40S", "api_error:0.5"]) as sim:
        faults = sim.faults()
        assert [(f["fault"], f["count"], f["probability"]) for f in faults] == [
            ("capacity", 2, None),
            ("api_error", None, 0.5),
        ]
        sim.clear_faults()
        assert sim.faults() == []


def test_seed_makes_pod_ids_repeatable() -> None:
    ids = []
    for _ in range(2):
        with SimProcess(extra_args=["--seed", "42"]) as sim:
            ids.append((sim.create_pod(), sim.create_pod()))
    assert ids[0] == ids[1]
    assert ids[0][0] != ids[0][1]
