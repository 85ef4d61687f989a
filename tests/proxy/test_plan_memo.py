"""The plan memo (podmgr/proxy/forward/memo.py): a repeated cacheable request gets the
plan it got before, only while the snapshot is the same object, and only plans that look
in the cache are kept, a bounded number of them."""

from __future__ import annotations

from dataclasses import replace

import orjson

from podmgr.proxy.forward.effects import Answer
from podmgr.proxy.forward.intake import ProxyRequest
from podmgr.proxy.forward.memo import PlanMemo
from podmgr.proxy.forward.plan import plan
from tests.proxy.test_plan import CHAT, LOCAL, POD, _request, _snapshot


def _raw(request: ProxyRequest) -> ProxyRequest:
    assert request.body is not None
    return request._replace(raw=orjson.dumps(request.body))


def test_the_same_request_under_the_same_snapshot_gets_the_same_plan() -> None:
    memo, snapshot = PlanMemo(), _snapshot(POD, LOCAL)
    first = memo.plan(_raw(_request()), snapshot)
    again = memo.plan(_raw(_request()), snapshot)
    assert again is first
    assert again == plan(_raw(_request()), snapshot)
    assert memo.bodies[_raw(_request()).raw] == CHAT


def test_a_new_snapshot_is_planned_again() -> None:
    memo = PlanMemo()
    first = memo.plan(_raw(_request()), _snapshot(POD, LOCAL))
    cold_pod = _snapshot(replace(POD, available=False), LOCAL)
    moved = memo.plan(_raw(_request()), cold_pod)
    assert moved is not first
    assert isinstance(moved.action, Answer)
    assert [a.upstream.route.name for a in moved.action.attempts] == ["local"]


def test_what_the_plan_reads_is_part_of_the_key() -> None:
    memo, snapshot = PlanMemo(), _snapshot(POD)
    stored = memo.plan(_raw(_request()), snapshot)
    no_store = memo.plan(_raw(_request())._replace(cache_control="no-store"), snapshot)
    assert isinstance(no_store.action, Answer) and isinstance(stored.action, Answer)
    assert not no_store.action.attempts[0].decision.lookup
    assert stored.action.attempts[0].decision.lookup
    other = _raw(_request({**CHAT, "temperature": 0.5, "seed": 1}))
    assert memo.plan(other, snapshot) is not stored


def test_plans_that_do_not_look_in_the_cache_are_not_kept() -> None:
    memo, snapshot = PlanMemo(), _snapshot(POD, cache_mode="off")
    first = memo.plan(_raw(_request()), snapshot)
    assert memo.plan(_raw(_request()), snapshot) is not first
    assert memo.bodies == {}


def test_the_memo_is_bounded_and_drops_the_oldest() -> None:
    memo, snapshot = PlanMemo(size=3), _snapshot(POD)
    requests = [_raw(_request({**CHAT, "seed": n})) for n in range(5)]
    plans = [memo.plan(request, snapshot) for request in requests]
    assert len(memo.bodies) == 3
    assert requests[0].raw not in memo.bodies and requests[4].raw in memo.bodies
    assert memo.plan(requests[4], snapshot) is plans[4]
    assert memo.plan(requests[0], snapshot) is not plans[0]


def test_large_bodies_are_not_kept() -> None:
    memo, snapshot = PlanMemo(max_body_bytes=10), _snapshot(POD)
    first = memo.plan(_raw(_request()), snapshot)
    assert memo.plan(_raw(_request()), snapshot) is not first
    assert memo.bodies == {}


def test_with_the_cache_off_no_key_is_computed() -> None:
    decided = plan(_raw(_request()), _snapshot(POD, cache_mode="off"))
    assert isinstance(decided.action, Answer)
    decision = decided.action.attempts[0].decision
    assert decision.key == "" and not decision.lookup and not decision.store
