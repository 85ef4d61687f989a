"""Guard shares of a set (watchdog/focus.py): price-weighted over every configured pod,
each pod's share kept for it while it is down, and the limits the guards hold never
summing past the budget, whatever the order of creates and ends."""

from __future__ import annotations

import random

import pytest

from podmgr.config import Config, build_config
from podmgr.state import PodRecord, Session, State
from podmgr.watchdog.focus import guard_budget, share_spent

NAMES = ("chat", "fim", "embed")


def three(budget: float = 3.0) -> Config:
    pods = [{"name": n, "model": f"m/{n}"} for n in NAMES]
    return build_config({"pods": pods, "max_cost_usd": budget}, environ={})


def guarded(name: str, limit: float, price: float) -> PodRecord:
    return PodRecord(
        id=f"{name}-1", name=f"podmgr-{name}", gpu_type_id="g", cost_per_hr=price,
        created_at=0.0, vllm_api_key="k" * 20, guard={"max_cost_usd": f"{limit:g}"},
    )  # fmt: skip


def test_the_first_create_leaves_room_for_the_pods_still_to_come() -> None:
    state = State(session=Session(started_at=0.0, deadline=10.0))
    prices = {"chat": 2.0, "fim": 0.5, "embed": 0.5}
    share = guard_budget(three(), state, "chat", prices)
    assert share == pytest.approx(3.0 * 2.0 / 3.0, rel=1e-4)


def test_unknown_prices_give_equal_shares() -> None:
    state = State(session=Session(started_at=0.0, deadline=10.0))
    share = guard_budget(three(), state, "fim", {"chat": None, "fim": 0.5})
    assert share == pytest.approx(1.0, rel=1e-4)


def test_a_pod_never_gets_more_than_the_others_leave() -> None:
    # chat was created alone with the whole budget (an older share): fim gets nothing
    state = State(session=Session(started_at=0.0, deadline=10.0))
    state.pods = {"chat": guarded("chat", 3.0, 2.0)}
    assert guard_budget(three(), state, "fim", {"chat": 2.0, "fim": 0.5, "embed": 0.5}) == 0.0


def test_a_pod_that_is_down_keeps_its_share_for_when_it_comes_back() -> None:
    """embed idled out (it may be woken again): its share stays reserved, at least what it
    cost, so fim gets its own weighted share and no more."""
    state = State(session=Session(started_at=0.0, deadline=10.0))
    assert state.session is not None
    state.session.ended_pods = {"embed": "idle"}
    state.session.book_pod(guarded("embed", 1.0, 0.5), 0.25, "embed")
    prices = {"chat": 1.5, "fim": 0.5, "embed": 0.5}
    share = guard_budget(three(), state, "fim", prices)
    assert share == pytest.approx(3.0 * 0.5 / 2.5, rel=1e-4)  # fim's weight: 0.5 of 2.5 $/h
    state.pods = {"chat": guarded("chat", 1.8, 1.5)}
    assert guard_budget(three(), state, "fim", prices) == pytest.approx(0.6, rel=1e-4)
    state.session.book_pod(guarded("embed", 1.0, 0.5), 0.65, "embed")  # past its reserve
    assert guard_budget(three(), state, "fim", prices) == pytest.approx(3.0 - 1.8 - 0.9, rel=1e-4)


def test_a_pod_woken_later_in_the_session_still_finds_its_share() -> None:
    """The first pod made while the others are down (a wake, `podmgr up chat`) gets its
    own weighted share, not the whole budget; fim made later gets its share too."""
    state = State(session=Session(started_at=0.0, deadline=10.0, ended_pods={"fim": "idle"}))
    prices = {"chat": 2.0, "fim": 0.5, "embed": 0.5}
    chat = guard_budget(three(), state, "chat", prices)
    assert chat == pytest.approx(2.0, rel=1e-4)
    state.pods = {"chat": guarded("chat", chat or 0.0, 2.0)}
    assert guard_budget(three(), state, "fim", prices) == pytest.approx(0.5, rel=1e-4)


def test_a_share_is_spent_once_its_cost_and_one_interval_reach_the_limit() -> None:
    state = State(session=Session(started_at=0.0, deadline=10.0))
    assert state.session is not None
    record = guarded("fim", 1.0, 0.6)
    state.pods = {"fim": record}
    state.session.book_pod(record, 0.98, "fim")
    assert share_spent(state, "fim", margin_seconds=60.0) is None  # 0.98 + 0.01 <= 1.0
    state.session.book_pod(record, 0.015, "fim")
    assert share_spent(state, "fim", margin_seconds=60.0) == (
        "$0.99 spent of its $1.00 share of the budget"
    )
    state.pods = {"fim": record.model_copy(update={"guard": {}})}  # no budget: no share
    assert share_spent(state, "fim", margin_seconds=60.0) is None


def test_the_limits_in_force_never_sum_past_the_budget() -> None:
    """Random creates, ends and spending: the guards' limits plus what ended pods cost
    stay within the budget at every step."""
    rng = random.Random(23)
    config = three(budget=5.0)
    for _ in range(200):
        state = State(session=Session(started_at=0.0, deadline=10.0))
        session = state.session
        assert session is not None
        for _step in range(12):
            name = rng.choice(NAMES)
            record = state.pods.get(name)
            if record is None:  # create it at a random price
                price = rng.choice([0.2, 0.5, 1.0, 2.5])
                prices = {n: rng.choice([None, 0.3, 1.0, 3.0]) for n in NAMES}
                limit = guard_budget(config, state, name, {**prices, name: price})
                assert limit is not None
                state.pods = {**state.pods, name: guarded(name, limit, price)}
            elif rng.random() < 0.5:  # it spends part of what is left to its name
                spent = sum(p.cost_usd for p in session.pods if p.pod_name == name)
                cap = float((record.guard or {})["max_cost_usd"])
                session.book_pod(record, max(0.0, cap - spent) * rng.random(), name)
            else:  # it ends (idle, crash): its bound becomes its cost so far
                state.pods = {n: r for n, r in state.pods.items() if n != name}
            held = 0.0
            for n in NAMES:
                spent = sum(p.cost_usd for p in session.pods if p.pod_name == n)
                live = state.pods.get(n)
                limit = float((live.guard or {})["max_cost_usd"]) if live else None
                held += max(spent, limit) if limit is not None else spent
            assert held <= 5.0
