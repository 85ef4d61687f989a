"""Watchdog passes whose outcome depends on how RunPod's REST errors are read (issue 10)."""

from __future__ import annotations

import pytest
from wdkit import Harness

from podmgr.errors import ApiError


def test_an_unknown_template_ends_the_pass_naming_it_not_as_a_gone_pod(wd: Harness) -> None:
    """Finding 3/5: "Template not found" read as "pod gone" (exit 5) or "no capacity"."""
    wd.configure(template_id="no-such-template")
    with pytest.raises(ApiError) as caught:
        wd.run()
    assert type(caught.value) is ApiError and caught.value.exit_code == 1
    assert "emplate" in caught.value.message
    assert wd.alive() == []


@pytest.mark.parametrize("hide_seconds", [0.0, 0.5])
def test_a_create_answered_500_after_applying_leaves_one_pod(
    wd: Harness, hide_seconds: float
) -> None:
    """Finding 4: REST create answered 500 while the pod was made, and the pod was slow to
    appear in listings (transformerlab-app#2305): the retry must find it, not make another."""
    wd.sim.set_fault("api_error_after_apply", count=1, field="create", hide_seconds=hide_seconds)
    wd.run()
    assert [f["fired"] for f in wd.sim.faults()] == [1]
    [record] = wd.ledger()
    assert record["status"] == "RUNNING" and wd.state().pod.id == record["id"]  # type: ignore[union-attr]
    wd.run("shutdown")
    assert wd.alive() == []


def test_cloud_type_all_tries_secure_then_community(wd: Harness) -> None:
    """v2's create takes SECURE or COMMUNITY only (RunPod OpenAPI v2, CreatePodRequest):
    `cloud_type: ALL` tries the GPU type in Secure Cloud, then in Community Cloud."""
    wd.configure(cloud_type="ALL", gpu_type_id="NVIDIA GeForce RTX 4090")
    wd.sim.set_fault("capacity", count=1)  # the first create (Secure Cloud) finds none
    wd.run()
    [record] = wd.ledger()
    assert record["cloud_type"] == "COMMUNITY" and record["status"] == "RUNNING"
    assert any("NVIDIA GeForce RTX 4090 (SECURE) refused" in line for line in wd.lines)
    wd.run("shutdown")
    assert wd.alive() == []
