"""Mutations that half-succeeded (issue 10, finding 4), with an in-memory stand-in for RunPod.

Real RunPod can make a change and still answer an error: `Something went wrong` while the
pod starts anyway (runpodctl#45), a create answering 500 while the pod bills and shows up
in listings only later (transformerlab-app#2305). Passes run with `run_pass` against a
`FakeRunPod` whose mutations can raise after taking effect; the real proxy supervision of
the harness (stand-in proxy) runs alongside.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from wdkit import Harness

from podmgr.errors import ApiError, TransientApiError
from podmgr.runpod.values import PodInfo, PodSpec
from podmgr.watchdog import actions as act
from podmgr.watchdog.runner import PassResult, run_pass

ERROR = "Something went wrong. Please try again later or contact support."


@dataclass
class FakeRunPod:
    """Pods in memory; `fail_after` names mutations that raise once after taking effect."""

    pods: dict[str, PodInfo]
    fail_after: set[str]
    hidden: dict[str, int]  # pod id -> listings that do not show it yet
    creates: int = 0

    def list_pods(self) -> list[PodInfo]:
        shown = [p for p in self.pods.values() if self.hidden.get(p.id, 0) <= 0]
        for pod_id in self.hidden:
            self.hidden[pod_id] -= 1
        return shown

    def get_pod(self, pod_id: str) -> PodInfo | None:
        return self.pods.get(pod_id)

    def gpu_catalog(self, *_args: object, **_kwargs: object) -> list[object]:
        raise ApiError("no catalog here: every configured GPU type is tried")

    def pod_logs(self, pod_id: str, after: str | None = None) -> list[object]:
        return []  # the guard's log says nothing decisive here

    def create_pod(self, spec: PodSpec) -> str:
        self.creates += 1
        pod_id = f"fake{self.creates}"
        self.pods[pod_id] = PodInfo(
            id=pod_id, name=spec.name, status="RUNNING", cost_per_hr=0.69,
            uptime_seconds=0.0, env=dict(spec.env),
        )  # fmt: skip
        self._after("create")
        return pod_id

    def stop_pod(self, pod_id: str) -> None:
        self.set(pod_id, status="EXITED", has_runtime=False)
        self._after("stop")

    def resume_pod(self, pod_id: str, gpu_count: int) -> None:
        self.set(pod_id, status="RUNNING", has_runtime=False)
        self._after("resume")

    def terminate_pod(self, pod_id: str) -> bool:
        return self.pods.pop(pod_id, None) is not None

    def set(self, pod_id: str, **values: object) -> None:
        self.pods[pod_id] = replace(self.pods[pod_id], **values)  # type: ignore[arg-type]

    def _after(self, what: str) -> None:
        if what in self.fail_after:
            self.fail_after.discard(what)
            raise TransientApiError(ERROR)  # the change happened; the answer says otherwise


def one_pass(wd: Harness, fake: FakeRunPod, health: dict[str, int]) -> PassResult:
    def probe(url: str) -> tuple[int | None, str]:
        status = next((code for pod_id, code in health.items() if pod_id in url), 502)
        return status, f"health {status}"

    result = run_pass(
        wd.config, wd.config_path, emit=wd.lines.append, client=fake,  # type: ignore[arg-type]
        proxy_command=wd.command(), probe=probe,
    )  # fmt: skip
    if result.state.proxy_pid:
        wd.proxy_pids.add(result.state.proxy_pid)
    return result


def kinds(result: PassResult) -> list[str]:
    quiet = act.StartProxy | act.NoteLog  # the proxy, and the guard's log bookkeeping
    return [type(a).__name__ for a in result.actions if not isinstance(a, quiet)]


def test_a_start_that_answered_an_error_after_starting_is_counted_once(wd: Harness) -> None:
    fake = FakeRunPod(pods={}, fail_after=set(), hidden={})
    health: dict[str, int] = {}
    wd.configure(restart_backoff_seconds=0)
    one_pass(wd, fake, health)  # creates
    [pod_id] = fake.pods
    fake.set(pod_id, has_runtime=True)
    health[pod_id] = 200
    assert kinds(one_pass(wd, fake, health)) == ["MarkReady"]

    fake.set(pod_id, has_runtime=False)  # the container crashed; the pod stays RUNNING
    fake.fail_after.add("resume")
    with pytest.raises(TransientApiError):
        one_pass(wd, fake, health)
    assert fake.pods[pod_id].status == "RUNNING"  # the start did happen
    state = wd.state()
    assert state.pod is not None and state.pod.phase == "restarting"
    assert state.session is not None and state.session.restarts == 1

    after = one_pass(wd, fake, health)  # the restarting pod, not a ready one to restart
    assert kinds(after) == ["PodProgress"], kinds(after)
    fake.set(pod_id, has_runtime=True)
    assert kinds(one_pass(wd, fake, health)) == ["MarkReady"]
    state = wd.state()
    assert state.session is not None and state.session.restarts == 1
    assert state.pod is not None and state.pod.restarts == 1 and list(fake.pods) == [pod_id]
    assert state.session.cost_usd < 0.01, state.session


def test_a_lost_create_answer_never_makes_a_second_pod(wd: Harness) -> None:
    """The create made the pod, answered an error, and the pod is listed only later."""
    fake = FakeRunPod(pods={}, fail_after={"create"}, hidden={})
    health: dict[str, int] = {}
    with pytest.raises(TransientApiError):
        one_pass(wd, fake, health)
    [pod_id] = fake.pods
    fake.hidden[pod_id] = 2  # the next two listings do not show it yet
    state = wd.state()
    assert state.pod is None and state.pending_create is not None
    assert state.pending_create.name == fake.pods[pod_id].name

    for _ in range(2):
        waiting = one_pass(wd, fake, health)
        assert kinds(waiting) == ["Noop"] and "appear" in waiting.actions[-1].describe()
    adopted = one_pass(wd, fake, health)
    assert "AdoptPod" in kinds(adopted)
    state = wd.state()
    assert state.pod is not None and state.pod.id == pod_id and state.pending_create is None
    assert fake.creates == 1 and list(fake.pods) == [pod_id]
