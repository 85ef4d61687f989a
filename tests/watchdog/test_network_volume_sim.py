"""Network volumes (issue 11): the weights are downloaded once per volume; without a
volume every start after a stop downloads them again (a stop wipes the container disk).

The simulator downloads for DOWNLOAD seconds; the test reads what each start downloaded
from the simulator (`download_seconds` of the current container), never its speed. The
durations are printed for the README's table (`pytest -s`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from wdkit import Harness, MakeWd

from podmgr.errors import ConfigError
from podmgr.sim.process import SimProcess

DOWNLOAD = 2.0


@pytest.fixture(scope="module")
def volume_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=0.1, load_seconds=0.1, download_seconds=DOWNLOAD) as process:
        yield process


@pytest.fixture
def vwd(volume_sim: SimProcess, make_wd: MakeWd) -> Harness:
    return make_wd(volume_sim)


def new_volume(sim: SimProcess, data_center: str = "EU-RO-1") -> str:
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    body = {"name": "weights", "size": 50, "dataCenter": data_center}
    answer = httpx.post(f"{sim.rest_url}/network-volumes", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def timed_up(wd: Harness) -> float:
    started = time.monotonic()
    wd.up()
    return time.monotonic() - started


def stop_and_serve_again(wd: Harness, pod_id: str) -> float:
    """RunPod stops the pod; the watchdog resumes it; seconds until it serves again."""
    wd.sim.crash_pod(pod_id)
    return timed_up(wd)


def test_with_a_network_volume_a_restart_does_not_download(vwd: Harness) -> None:
    volume = new_volume(vwd.sim)
    vwd.configure(network_volume_id=volume, data_center_ids=["EU-RO-1", "US-TX-3"])
    first = timed_up(vwd)
    [pod] = vwd.ledger()
    assert pod["network_volume_id"] == volume and pod["data_center_id"] == "EU-RO-1", pod
    assert vwd.sim.pod_phase(pod["id"])["download_seconds"] == DOWNLOAD  # the first start
    again = stop_and_serve_again(vwd, pod["id"])
    phase = vwd.sim.pod_phase(pod["id"])
    assert phase["download_seconds"] == 0 and phase["phase"] == "serving", phase
    # A fresh pod on the same volume finds the weights too: once per volume.
    vwd.run("shutdown")
    vwd.up()
    newest = vwd.ledger()[-1]
    assert newest["id"] != pod["id"] and vwd.sim.pod_phase(newest["id"])["download_seconds"] == 0
    print(f"\nnetwork volume: first start {first:.1f}s, restart after a stop {again:.1f}s")


def test_without_a_volume_the_restart_downloads_again(vwd: Harness) -> None:
    first = timed_up(vwd)
    [pod] = vwd.ledger()
    assert vwd.sim.pod_phase(pod["id"])["download_seconds"] == DOWNLOAD
    again = stop_and_serve_again(vwd, pod["id"])
    assert vwd.sim.pod_phase(pod["id"])["download_seconds"] == DOWNLOAD
    print(f"\nno volume: first start {first:.1f}s, restart after a stop {again:.1f}s")


def test_a_volume_outside_data_center_ids_exits_2_before_any_create(vwd: Harness) -> None:
    volume = new_volume(vwd.sim, "EU-RO-1")
    vwd.configure(network_volume_id=volume, data_center_ids=["US-TX-3"])
    with pytest.raises(ConfigError) as raised:
        vwd.run("start")
    assert raised.value.exit_code == 2 and raised.value.field == "data_center_ids"
    assert "EU-RO-1" in raised.value.message
    assert vwd.state().session.end_reason == "create_refused"  # type: ignore[union-attr]
    vwd.configure(network_volume_id="novolume123", data_center_ids=None)
    with pytest.raises(ConfigError) as unknown:
        vwd.run("start")  # the refusal ended the session: a person starts the next
    assert unknown.value.field == "network_volume_id"
    assert vwd.ledger() == []
