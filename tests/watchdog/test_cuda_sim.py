"""Host CUDA on the simulator: `--host-cuda 12.2,12.8 --image-min-cuda 12.4` (issues 11, 19).

A pod placed on a host older than the image needs never gets a container (vllm#18813;
RUNPOD_FACTS.md "Startup as it really is"); the simulator places a create without a CUDA
constraint on the oldest host, so without a floor the first pod never serves. The default
config sends the image's own need (v0.8.5: 12.4) as `gpu.minCudaVersion` and serves at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wdkit import Harness, MakeWd

from podmgr.errors import StartupError
from podmgr.sim.process import SimProcess


@pytest.fixture(scope="module")
def cuda_sim() -> Iterator[SimProcess]:
    extra = ["--host-cuda", "12.2,12.8", "--image-min-cuda", "12.4"]
    with SimProcess(pull_seconds=0.1, load_seconds=0.1, extra_args=extra) as process:
        yield process


@pytest.fixture
def cuda_wd(cuda_sim: SimProcess, make_wd: MakeWd) -> Harness:
    return make_wd(cuda_sim)


def test_default_config_serves_on_the_first_pod(cuda_wd: Harness) -> None:
    # A short no-container time: without the floor the test ends quickly, and fails.
    cuda_wd.configure(no_container_timeout_seconds=3, max_startup_attempts=2000)
    cuda_wd.up()
    pods = cuda_wd.ledger()
    assert len(pods) == 1, pods
    assert pods[0]["host_cuda"] == "12.8", pods
    state = cuda_wd.state()
    assert state.pod is not None and state.pod.phase == "ready"
    cuda_wd.run("shutdown")


def test_a_floor_below_the_image_never_serves_and_the_message_names_cuda(cuda_wd: Harness) -> None:
    # An image tag podmgr does not know, so the config's own low floor is not refused.
    cuda_wd.configure(
        image_name="vllm/vllm-openai:latest", min_cuda_version="12.2",
        no_container_timeout_seconds=1, max_startup_attempts=2000,
    )  # fmt: skip
    with pytest.raises(StartupError) as raised:
        cuda_wd.up()
    message = raised.value.message
    assert "the host's CUDA is 12.2" in message and "raise min_cuda_version" in message, message
    pods = cuda_wd.ledger()
    assert [p["host_cuda"] for p in pods] == ["12.2", "12.2"], pods
    assert all(p["status"] == "TERMINATED" for p in pods)
