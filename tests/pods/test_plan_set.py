"""plan_set() for two pods (issue 23): each pod by today's rules, the session's rules once.

A big chat pod and a small autocomplete pod ("fim") with its own idle time. Each row is
one pass: what the state holds, what RunPod lists, and what the set decides.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from podmgr.config import Config
from podmgr.runpod.values import PodInfo
from podmgr.state import PodCounters, State
from podmgr.watchdog.actions import (
    CreatePod,
    EndSession,
    ForgetCreate,
    ForgetPod,
    MarkReady,
    Noop,
    RestartPod,
    StartProxy,
    StartSession,
    StopProxy,
    TerminatePod,
)
from podmgr.watchdog.identity import MARKER_POD
from podmgr.watchdog.observed import ProxyView
from podmgr.watchdog.plan import plan
from podmgr.watchdog.plan_set import (
    NOT_ASKED,
    ChoosePods,
    EndPod,
    ForPod,
    ObservedSet,
    PodView,
    SetAction,
    plan_set,
)
from tests.watchdog.helpers import NOW, PROXY_UP, config, live, record, seen, session, state

CHAT, FIM = "Qwen/Qwen2.5-Coder-32B-Instruct", "Qwen/Qwen2.5-Coder-1.5B"


def two_config(**limits: Any) -> Config:
    """`config()` names pod fields flat; a set names them in `pods`."""
    base = {"runtime_seconds": 3600, "max_restarts": 2, "restart_backoff_seconds": 30}
    from podmgr.config import build_config

    return build_config(
        {
            **base,
            "watchdog_interval_seconds": 300,
            "pods": [
                {"name": "chat", "model": CHAT, "gpu_type_id": ["A40"]},
                {"name": "fim", "model": FIM, "gpu_type_id": ["L4"], "idle_timeout_seconds": 300},
            ],
            **limits,
        },
        environ={},
    )


def of(pod_id: str, owner: str | None, **more: Any) -> PodInfo:
    pod = live(pod_id, **more)
    return replace(pod, env={**pod.env, MARKER_POD: owner}) if owner else pod


def both(**more: Any) -> State:
    """A session with both pods ready."""
    base = state(session(), None)
    recent = {"last_request_by_model": {CHAT: NOW - 10, FIM: NOW - 10}}
    pods = {"pods": {"chat": record("c1"), "fim": record("f1")}}
    return base.model_copy(update={**recent, **pods, **more})


LISTED = (of("c1", "chat"), of("f1", "fim"))
HEALTHY = {"chat": PodView(healthy=True), "fim": PodView(healthy=True)}


def for_pod(actions: list[SetAction], name: str) -> list[Any]:
    return [a.action for a in actions if isinstance(a, ForPod) and a.pod == name]


def bare(actions: list[SetAction]) -> list[Any]:
    return [a for a in actions if not isinstance(a, ForPod)]


def test_one_pod_config_is_exactly_plan() -> None:
    one = config()
    st, obs = state(session(), record()), seen(live(), healthy=True)
    assert plan_set(
        one, st, ObservedSet(obs.pods, obs.proxy, None, {"pod": PodView(True)}), NOW
    ) == (plan(one, st, obs, NOW))


def test_first_up_starts_one_session_and_creates_both_pods() -> None:
    actions = plan_set(two_config(), State(), ObservedSet(proxy=PROXY_UP), NOW, "start")
    assert [type(a) for a in bare(actions)] == [StartSession]
    assert for_pod(actions, "chat") == [CreatePod(("A40",), spot=False)]
    assert for_pod(actions, "fim") == [CreatePod(("L4",), spot=False)]


def test_up_one_name_creates_only_that_pod_and_leaves_the_other_out() -> None:
    actions = plan_set(two_config(), State(), ObservedSet(proxy=PROXY_UP), NOW, "start", ("fim",))
    assert ChoosePods(("fim",), ("chat",)) in actions
    assert for_pod(actions, "fim") == [CreatePod(("L4",), spot=False)]
    assert [type(a) for a in for_pod(actions, "chat")] == [Noop]
    assert not any(isinstance(a, EndSession) for a in actions)


def test_up_name_in_a_session_revives_a_pod_that_ended_alone() -> None:
    st = both()
    assert st.session is not None
    st.session.ended_pods = {"fim": "idle"}
    st.pods = {"chat": record("c1")}
    obs = ObservedSet((of("c1", "chat"),), PROXY_UP, None, HEALTHY)
    quiet = plan_set(two_config(), st, obs, NOW)
    assert [type(a) for a in for_pod(quiet, "fim")] == [Noop]  # stays down on a plain pass
    woken = plan_set(two_config(), st, obs, NOW, "start", ("fim",))
    assert ChoosePods(("fim",), ()) in woken
    assert for_pod(woken, "fim") == [CreatePod(("L4",), spot=False)]


def test_each_pod_has_its_own_readiness() -> None:
    st = both(pods={"chat": record("c1"), "fim": record("f1", phase="starting", container_ago=60)})
    views = {"chat": PodView(healthy=True), "fim": PodView(healthy=True)}
    actions = plan_set(two_config(), st, ObservedSet(LISTED, PROXY_UP, None, views), NOW)
    assert [type(a) for a in for_pod(actions, "fim")] == [MarkReady]
    assert [type(a) for a in for_pod(actions, "chat")] == [Noop]


def test_small_pod_idles_out_alone_by_its_own_idle_time() -> None:
    st = both(last_request_by_model={CHAT: NOW - 10, FIM: NOW - 400})
    actions = plan_set(two_config(), st, ObservedSet(LISTED, PROXY_UP, None, HEALTHY), NOW)
    fim = for_pod(actions, "fim")
    assert TerminatePod("f1", "idle") in fim  # only the small pod and isinstance(fim[-1], EndPod)
    assert fim[-1].reason == "idle"
    assert [type(a) for a in for_pod(actions, "chat")] == [Noop]
    assert not any(isinstance(a, EndSession) for a in actions)


def test_a_request_the_proxy_saw_for_the_small_model_keeps_it() -> None:
    st = both(last_request_by_model={FIM: NOW - 400})
    proxy = ProxyView(pid=1, healthy=True, last_request_by_model={FIM: NOW - 20})
    actions = plan_set(two_config(), st, ObservedSet(LISTED, proxy, None, HEALTHY), NOW)
    assert [type(a) for a in for_pod(actions, "fim")] == [Noop]


def test_a_request_for_the_other_model_does_not_keep_a_pod() -> None:
    st = both(last_request_by_model={CHAT: NOW - 1}, last_request_at=NOW - 1)
    actions = plan_set(two_config(), st, ObservedSet(LISTED, PROXY_UP, None, HEALTHY), NOW)
    assert any(isinstance(a, EndPod) for a in for_pod(actions, "fim"))


def test_the_session_ends_when_every_pod_has_ended() -> None:
    st = both(last_request_by_model={FIM: NOW - 400})
    assert st.session is not None
    st.session.ended_pods = {"chat": "idle"}
    st.pods = {"fim": record("f1")}
    obs = ObservedSet((of("f1", "fim"),), PROXY_UP, None, HEALTHY)
    actions = plan_set(two_config(), st, obs, NOW)
    assert bare(actions)[-1] == EndSession("idle", "every pod has ended")


def test_the_budget_counts_every_pod_and_ends_both() -> None:
    # $1.20/h each; $0.95 spent; one 300 s interval at $2.40/h = $0.20 -> $1.15 > $1.10.
    st = both()
    assert st.session is not None
    st.session.cost_usd = 0.95
    actions = plan_set(
        two_config(max_cost_usd=1.10), st, ObservedSet(LISTED, PROXY_UP, None, HEALTHY), NOW
    )
    assert for_pod(actions, "chat") == [TerminatePod("c1", "budget")]
    assert for_pod(actions, "fim") == [TerminatePod("f1", "budget")]
    assert isinstance(actions[-1], EndSession) and actions[-1].reason == "budget"


def test_one_pod_alone_would_not_reach_that_budget() -> None:
    st = both()
    assert st.session is not None
    st.session.cost_usd = 0.95
    st.pods = {"chat": record("c1")}
    obs = ObservedSet((of("c1", "chat"),), PROXY_UP, None, HEALTHY)
    actions = plan_set(two_config(max_cost_usd=1.10), st, obs, NOW)
    assert not any(isinstance(a, EndSession) for a in actions)


def test_the_deadline_ends_both_even_while_listing_fails() -> None:
    st = both()
    assert st.session is not None
    st.session.deadline = NOW - 1
    obs = ObservedSet(LISTED, PROXY_UP, RuntimeError("down"), HEALTHY)  # type: ignore[arg-type]
    actions = plan_set(two_config(), st, obs, NOW)
    assert for_pod(actions, "chat") == [TerminatePod("c1", "deadline")]
    assert for_pod(actions, "fim") == [TerminatePod("f1", "deadline")]
    assert actions[-1] == EndSession("deadline", actions[-1].detail)


def test_a_pod_of_ours_for_no_configured_pod_is_a_stray() -> None:
    listed = (*LISTED, of("x1", "old-name"))
    actions = plan_set(two_config(), both(), ObservedSet(listed, PROXY_UP, None, HEALTHY), NOW)
    assert any(isinstance(a, TerminatePod) and a.pod_id == "x1" for a in bare(actions))


@pytest.mark.parametrize("owner", [None, "chat"], ids=["unmarked-is-pod", "second-chat"])
def test_extra_pods_are_terminated(owner: str | None) -> None:
    listed = (*LISTED, of("x1", owner, uptime=30))
    actions = plan_set(two_config(), both(), ObservedSet(listed, PROXY_UP, None, HEALTHY), NOW)
    terminated = [a for a in actions if isinstance(a, (ForPod, TerminatePod))]
    ids = [a.action.pod_id if isinstance(a, ForPod) else a.pod_id for a in terminated
           if isinstance(a.action if isinstance(a, ForPod) else a, TerminatePod)]  # fmt: skip
    assert ids == ["x1"]


def test_one_pods_crash_loop_ends_it_alone() -> None:
    st = both(pods={"chat": record("c1"), "fim": record("f1")})
    assert st.session is not None
    st.session.restarts = 2
    st.session.counters = {"fim": PodCounters(restarts=2)}  # max_restarts 2: fim's last
    listed = (of("c1", "chat"), of("f1", "fim", status="EXITED"))
    actions = plan_set(two_config(), st, ObservedSet(listed, PROXY_UP, None, HEALTHY), NOW)
    fim = for_pod(actions, "fim")
    assert any(isinstance(a, EndPod) and a.reason == "crash_loop" for a in fim)
    assert [type(a) for a in for_pod(actions, "chat")] == [Noop]
    assert not any(isinstance(a, EndSession) for a in actions)


def test_another_pods_restarts_do_not_count_toward_this_ones() -> None:
    st = both()
    assert st.session is not None
    st.session.restarts = 2
    st.session.counters = {"fim": PodCounters(restarts=2, last_restart_at=NOW - 1)}
    listed = (of("c1", "chat", status="EXITED"), of("f1", "fim"))
    actions = plan_set(two_config(), st, ObservedSet(listed, PROXY_UP, None, HEALTHY), NOW)
    assert [type(a) for a in for_pod(actions, "chat")] == [RestartPod]  # no backoff either


def test_shutdown_ends_all_once() -> None:
    st = both(pending_creates={})
    proxy = ProxyView(pid=7, healthy=True)
    actions = plan_set(two_config(), st, ObservedSet(LISTED, proxy, None, HEALTHY), NOW, "shutdown")
    assert for_pod(actions, "chat") == [TerminatePod("c1", "shutdown requested")]
    assert for_pod(actions, "fim") == [TerminatePod("f1", "shutdown requested")]
    assert bare(actions) == [EndSession("shutdown", "requested"), StopProxy(7)]


def test_shutdown_forgets_each_unanswered_create() -> None:
    from podmgr.state import PendingCreate

    pending = {"fim": PendingCreate(name="podmgr-f", gpu_type_id="L4", at=NOW - 5)}
    st = both(pods={"chat": record("c1")}, pending_creates=pending)
    obs = ObservedSet((of("c1", "chat"),), PROXY_UP, None, HEALTHY)
    actions = plan_set(two_config(), st, obs, NOW, "shutdown")
    assert ForgetCreate("podmgr-f", "shutdown requested") in for_pod(actions, "fim")


def test_no_session_keeps_every_pod_down() -> None:
    st = both()
    st.session = None
    actions = plan_set(two_config(), st, ObservedSet(LISTED, PROXY_UP, None, HEALTHY), NOW)
    assert for_pod(actions, "chat") == [TerminatePod("c1", "session ended")]
    assert not any(isinstance(a, (StartSession, EndSession, StartProxy)) for a in actions)


def test_notes_for_pods_not_asked_for() -> None:
    assert "podmgr up NAME" in NOT_ASKED


def test_a_session_wide_end_from_one_pods_view_ends_all_and_makes_nothing() -> None:
    # fim's guard was given a deadline that has passed and fim is gone: its guard ended it
    # for the deadline, which is every pod's; chat (gone as well) is not recreated.
    gone = record("f1").model_copy(update={"guard": {"deadline": f"{NOW - 1:.3f}"}})
    st = both(pods={"chat": record("c1"), "fim": gone})
    obs = ObservedSet((), PROXY_UP, None, HEALTHY)
    actions = plan_set(two_config(), st, obs, NOW)
    assert not any(isinstance(a, ForPod) and isinstance(a.action, CreatePod) for a in actions)
    assert isinstance(actions[-1], EndSession) and actions[-1].reason == "deadline"
    assert {a.action.pod_id for a in actions if isinstance(a, ForPod)} == {"c1", "f1"}


def _fim_near_its_share(spent: float) -> State:
    """Both pods ready, fim's guard holding a $0.40 share, fim's name having cost `spent`
    (the session's total far from its $2.00 budget)."""
    fim = record("f1").model_copy(update={"guard": {"max_cost_usd": "0.4"}})
    st = both(pods={"chat": record("c1"), "fim": fim})
    assert st.session is not None
    st.session.book_pod(fim, spent, "fim")
    return st


def test_a_pod_whose_share_is_spent_ends_alone_while_the_session_goes_on() -> None:
    # fim: $0.35 + one 300 s interval at $1.20/h ($0.10) = $0.45 > its $0.40 share.
    obs = ObservedSet(LISTED, PROXY_UP, None, HEALTHY)
    actions = plan_set(two_config(max_cost_usd=2.0), _fim_near_its_share(0.35), obs, NOW)
    fim = for_pod(actions, "fim")
    assert TerminatePod("f1", "its share of the budget is spent") in fim
    assert fim[-1] == EndPod("budget_share", "$0.35 spent of its $0.40 share of the budget")
    assert [type(a) for a in for_pod(actions, "chat")] == [Noop]
    assert not any(isinstance(a, EndSession) for a in actions)
    kept = plan_set(two_config(max_cost_usd=2.0), _fim_near_its_share(0.25), obs, NOW)
    assert [type(a) for a in for_pod(kept, "fim")] == [Noop]  # $0.25 + $0.10 <= $0.40


def test_a_pod_its_guard_ended_for_its_share_is_not_made_again() -> None:
    """The guard got there first: fim is gone from RunPod's listing. The watchdog reads the
    share as spent (not as a lost pod to replace, whose new guard would find no share)."""
    obs = ObservedSet((of("c1", "chat"),), PROXY_UP, None, HEALTHY)
    actions = plan_set(two_config(max_cost_usd=2.0), _fim_near_its_share(0.39), obs, NOW)
    fim = for_pod(actions, "fim")
    assert ForgetPod("f1", "no longer on RunPod") in fim
    assert isinstance(fim[-1], EndPod) and fim[-1].reason == "budget_share"
    assert not any(isinstance(a, CreatePod) for a in fim)


def test_up_name_does_not_revive_a_pod_whose_share_is_spent() -> None:
    st = both(pods={"chat": record("c1")})
    assert st.session is not None
    st.session.ended_pods = {"fim": "budget_share"}
    obs = ObservedSet((of("c1", "chat"),), PROXY_UP, None, HEALTHY)
    actions = plan_set(two_config(max_cost_usd=2.0), st, obs, NOW, "start", ("fim",))
    assert not any(isinstance(a, ChoosePods) for a in actions)
    assert not any(isinstance(a, CreatePod) for a in for_pod(actions, "fim"))
    assert any("share of the session's budget" in a.describe() for a in for_pod(actions, "fim"))


def test_up_name_stops_waiting_when_the_named_pod_stays_down() -> None:
    """`podmgr up fim` while fim's share is spent: the pass keeps it down, and `up` says
    so at once (it used to wait for a pod no pass would make)."""
    from pathlib import Path

    from podmgr.errors import StartupError
    from podmgr.watchdog.runner import PassResult, run_until_serving

    st = both(pods={"chat": record("c1")})
    assert st.session is not None
    st.session.ended_pods = {"fim": "budget_share"}
    passes: list[str] = []

    def one_pass(request: str) -> PassResult:
        passes.append(request)
        return PassResult(actions=[], state=st)

    result = run_until_serving(
        two_config(max_cost_usd=2.0), Path("pod_config.json"), pass_once=one_pass,  # type: ignore[arg-type]
        names=("fim",),
    )  # fmt: skip
    assert passes == ["start"]
    assert not result.serving and isinstance(result.error, StartupError)
    assert "pod fim stays down in this session (budget_share:" in result.error.message
    chat = run_until_serving(
        two_config(max_cost_usd=2.0), Path("pod_config.json"), pass_once=one_pass,  # type: ignore[arg-type]
        names=("chat",),
    )  # fmt: skip
    assert chat.serving and chat.error is None  # the other pod is not held by fim's end
