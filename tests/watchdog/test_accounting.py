"""Bookkeeping before plan: cost so far (with unknown prices), last request, backoff."""

from __future__ import annotations

import pytest

from podmgr.watchdog.accounting import book
from podmgr.watchdog.observed import ProxyView
from podmgr.watchdog.session import restart_wait

from .helpers import NOW, config, live, record, seen, session, state


def test_cost_accrues_from_creation_at_the_pods_price() -> None:
    st = state(session(cost=0.0), record())
    booked = book(st, seen(live(cost=3.6)), NOW)
    assert booked.session is not None and booked.pod is not None
    assert booked.session.cost_usd == pytest.approx(3.6 * 600 / 3600)
    assert booked.pod.billed_until == NOW and booked.pod.cost_per_hr == 3.6
    again = book(booked, seen(live(cost=3.6)), NOW + 60)
    assert again.session.cost_usd == pytest.approx(3.6 * 660 / 3600)  # type: ignore[union-attr]
    assert st.session.cost_usd == 0.0  # type: ignore[union-attr]  # input untouched


def test_unknown_price_is_counted_once_it_is_known() -> None:
    pod = record()
    pod.cost_per_hr = 0.0
    booked = book(state(session(cost=0.0), pod), seen(live(cost=0.0)), NOW)
    assert booked.session.cost_usd == 0.0 and booked.pod.billed_until is None  # type: ignore[union-attr]
    priced = book(booked, seen(live(cost=1.8)), NOW + 100)
    assert priced.session.cost_usd == pytest.approx(1.8 * 700 / 3600)  # type: ignore[union-attr]


def test_a_pod_runpod_no_longer_lists_adds_no_cost() -> None:
    booked = book(state(session(cost=0.5), record()), seen(), NOW)
    assert booked.session.cost_usd == 0.5  # type: ignore[union-attr]


def test_last_request_is_kept_when_the_proxy_forgets_it() -> None:
    st = state(session(), record())
    first = book(st, seen(proxy=ProxyView(1, True, NOW - 30)), NOW)
    assert first.last_request_at == NOW - 30
    restarted = book(first, seen(proxy=ProxyView(2, True, None)), NOW + 5)
    assert restarted.last_request_at == NOW - 30


@pytest.mark.parametrize(
    ("restarts", "ago", "expected"),
    [(0, 0, 0.0), (1, 10, 20.0), (2, 10, 50.0), (3, 10, 110.0), (20, 0, 3600.0)],
)
def test_restart_backoff_doubles_and_is_capped(restarts: int, ago: float, expected: float) -> None:
    st = state(session(restarts=restarts, last_restart_at=NOW - ago), record())
    assert restart_wait(config(restart_backoff_seconds=30), st, NOW) == expected
