"""A pod that never gets a container (STARTING, no runtime): replaced once, then the end.

On a host whose CUDA is older than the image needs, the container never starts while
the pod bills (vllm#18813, dstack#3299; RUNPOD_FACTS.md "Startup as it really is"). The
simulator plays it with an image pull longer than the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wdkit import Harness, MakeWd

from podmgr.errors import StartupError
from podmgr.sim.process import SimProcess


@pytest.fixture(scope="module")
def stuck_sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=3600, load_seconds=0.1) as process:
        yield process


@pytest.fixture
def stuck_wd(stuck_sim: SimProcess, make_wd: MakeWd) -> Harness:
    return make_wd(stuck_sim)


def test_no_container_is_replaced_once_then_the_session_ends_naming_image_and_cuda(
    stuck_wd: Harness,
) -> None:
    stuck_wd.configure(no_container_timeout_seconds=1, max_startup_attempts=2000, max_restarts=3)
    with pytest.raises(StartupError) as raised:
        stuck_wd.up()
    message = raised.value.message
    assert "image/CUDA problem" in message and "vllm/vllm-openai:v0.8.5" in message, message
    assert "CUDA" in message
    pods = stuck_wd.ledger()
    assert len(pods) == 2, pods  # the first, and its one replacement
    assert all(p["status"] == "TERMINATED" for p in pods)
    state = stuck_wd.state()
    assert state.session is not None and state.session.end_reason == "no_container"
    assert state.session.no_container_replacements == 1 and state.pod is None
    assert any("replacing it on another host" in line for line in stuck_wd.lines)
    # each pod's phase, once per pod, as its log said it (podmgr/watchdog/podlog.py)
    assert sum("image pull (from the pod's log)" in line for line in stuck_wd.lines) == 2
    stuck_wd.run("shutdown")
