"""The request's plan as a decision table: `plan(request, snapshot)` is pure, so each row
is a request and a snapshot of the upstreams, and the plan it must give."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest

from podmgr.config.upstreams import UpstreamSpec
from podmgr.proxy.cache.key import CacheMode
from podmgr.proxy.forward.effects import Answer, ListModels, PassThrough, Refuse
from podmgr.proxy.forward.intake import ProxyRequest
from podmgr.proxy.forward.plan import Plan, Snapshot, plan
from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.upstream.resolver import Upstream
from podmgr.proxy.upstream.router import Route, UpstreamState
from podmgr.proxy.upstream.transport import Transport

POD_DOWN = ProxyFailure(503, "no pod", "service_unavailable", "no_pod", "no_upstream")
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def _request(
    body: dict[str, Any] | None = CHAT, method: str = "POST", path: str = ""
) -> ProxyRequest:
    route = "chat/completions" if body is not None else path[4:].strip("/")
    model = body.get("model") if body is not None else None
    return ProxyRequest(
        method=method,
        path=path or "/v1/chat/completions",
        route=route,
        query=b"",
        headers=[],
        authorization=None,
        cache_control=None,
        raw=b"",
        body=body,
        model=model if isinstance(model, str) else None,
        stream=False,
        include_usage=False,
    )


def _state(available: bool = True, **spec: Any) -> UpstreamState:
    route = Route(UpstreamSpec.model_validate(spec), cast(Transport, None), None)
    if spec["kind"] == "pod":
        target = (
            Upstream("http://pod", None, None, None)
            if available
            else Upstream(None, None, "no_pod", POD_DOWN)
        )
    else:
        target = Upstream(spec["base_url"], None, None, None, False)
    return UpstreamState(route, target, available)


POD = _state(name="pod", kind="pod")
POD_COLD = _state(False, name="pod", kind="pod")
LOCAL = _state(name="local", kind="openai", base_url="http://local", model_map={"m": "local-m"})
ROUTER = _state(name="router", kind="openai", base_url="http://router", models=["other"])


def _snapshot(
    *upstreams: UpstreamState,
    can_wake: bool = False,
    cache_mode: CacheMode = "all",
    cache_fallbacks: bool = True,
) -> Snapshot:
    pod_down = any(s.route.is_pod and not s.available for s in upstreams)
    return Snapshot(
        upstreams=upstreams,
        pod_failure=POD_DOWN if pod_down else None,
        can_wake=can_wake,
        cache_mode=cache_mode,
        cache_fallbacks=cache_fallbacks,
        several=len(upstreams) > 1,
    )


def _names(decided: Plan) -> list[str]:
    action = decided.action
    if isinstance(action, Answer):
        return [attempt.upstream.route.name for attempt in action.attempts]
    if isinstance(action, PassThrough):
        return [action.upstream.route.name]
    if isinstance(action, ListModels):
        return [state.route.name for state in action.upstreams]
    return []


@pytest.mark.parametrize(
    ("snapshot", "names", "wake"),
    [
        pytest.param(_snapshot(POD, LOCAL), ["pod", "local"], False, id="config-order"),
        pytest.param(_snapshot(POD_COLD, LOCAL), ["local"], False, id="cold-pod-skipped"),
        pytest.param(
            _snapshot(POD_COLD, LOCAL, can_wake=True), ["local"], True, id="cold-pod-woken"
        ),
        pytest.param(_snapshot(POD, ROUTER), ["pod"], False, id="model-not-served-skipped"),
        pytest.param(
            _snapshot(POD_COLD, replace(LOCAL, available=False)),
            ["local"],
            False,
            id="all-cooling-first-tried-anyway",
        ),
    ],
)
def test_a_cacheable_request_tries_the_serving_upstreams_in_order(
    snapshot: Snapshot, names: list[str], wake: bool
) -> None:
    decided = plan(_request(), snapshot)
    assert isinstance(decided.action, Answer)
    assert _names(decided) == names
    assert decided.wake is wake


def test_each_attempt_gets_its_own_body_and_cache_key() -> None:
    decided = plan(_request(), _snapshot(POD, LOCAL))
    assert isinstance(decided.action, Answer)
    pod, local = decided.action.attempts
    assert pod.body["model"] == "m"
    assert local.body["model"] == "local-m"
    assert pod.decision.key != local.decision.key
    assert pod.decision.lookup and local.decision.lookup


def test_fallback_answers_are_not_stored_without_cache_fallback_answers() -> None:
    decided = plan(_request(), _snapshot(POD, LOCAL, cache_fallbacks=False))
    assert isinstance(decided.action, Answer)
    pod, local = decided.action.attempts
    assert pod.decision.store
    assert not local.decision.store
    assert local.decision.lookup


def test_cache_off_looks_nothing_up() -> None:
    decided = plan(_request(), _snapshot(POD, cache_mode="off"))
    assert isinstance(decided.action, Answer)
    assert not decided.action.attempts[0].decision.lookup


@pytest.mark.parametrize(
    ("snapshot", "status", "wake"),
    [
        pytest.param(_snapshot(POD_COLD), 503, False, id="pod-down"),
        pytest.param(_snapshot(POD_COLD, can_wake=True), 503, True, id="pod-down-woken"),
        pytest.param(_snapshot(ROUTER), 404, False, id="no-upstream-serves-the-model"),
    ],
)
def test_nowhere_to_go_is_refused(snapshot: Snapshot, status: int, wake: bool) -> None:
    decided = plan(_request(), snapshot)
    assert isinstance(decided.action, Refuse)
    assert decided.action.failure.status == status
    assert decided.wake is wake


def test_other_requests_pass_through_to_the_first_upstream_only() -> None:
    decided = plan(_request(None, "POST", "/v1/audio/speech"), _snapshot(POD, LOCAL))
    assert isinstance(decided.action, PassThrough)
    assert _names(decided) == ["pod"]


def test_models_are_listed_from_every_available_upstream_without_a_wake() -> None:
    request = _request(None, "GET", "/v1/models")
    decided = plan(request, _snapshot(POD_COLD, LOCAL, ROUTER, can_wake=True))
    assert isinstance(decided.action, ListModels)
    assert _names(decided) == ["local", "router"]
    assert not decided.wake
    lone = _state(name="upstream", kind="openai", base_url="http://upstream")
    assert isinstance(plan(request, _snapshot(lone)).action, PassThrough)


# Two pods (config `pods`): each a managed pod upstream named by its pod, serving its model.
CHAT_POD = _state(name="chat", kind="pod", pod="chat", models=["big"])
FAST_POD = _state(name="fast", kind="pod", pod="fast", models=["small"])
FAST_COLD = _state(False, name="fast", kind="pod", pod="fast", models=["small"])


def _asking(model: str) -> ProxyRequest:
    return _request({**CHAT, "model": model})


@pytest.mark.parametrize(
    ("model", "names"),
    [
        pytest.param("big", ["chat"], id="big-model-to-its-pod"),
        pytest.param("small", ["fast"], id="small-model-to-its-pod"),
    ],
)
def test_with_two_pods_a_request_goes_to_the_pod_of_its_model(model: str, names: list[str]) -> None:
    decided = plan(_asking(model), _snapshot(CHAT_POD, FAST_POD))
    assert isinstance(decided.action, Answer)
    assert _names(decided) == names


def test_with_two_pods_a_third_model_is_not_found() -> None:
    decided = plan(_asking("third"), _snapshot(CHAT_POD, FAST_POD, can_wake=True))
    assert isinstance(decided.action, Refuse)
    assert decided.action.failure.status == 404
    assert decided.action.failure.code == "model_not_found"
    assert not decided.wake


def test_with_two_pods_only_the_pod_of_the_model_is_woken() -> None:
    snapshot = _snapshot(CHAT_POD, FAST_COLD, can_wake=True)
    cold = plan(_asking("small"), snapshot)
    assert isinstance(cold.action, Refuse) and cold.action.failure.status == 503
    assert cold.wake and cold.wake_pod == "fast"
    warm = plan(_asking("big"), snapshot)
    assert _names(warm) == ["chat"] and not warm.wake and warm.wake_pod is None


def test_with_two_pods_the_models_list_names_a_cold_pod_too() -> None:
    request = _request(None, "GET", "/v1/models")
    decided = plan(request, _snapshot(CHAT_POD, FAST_COLD, can_wake=True))
    assert isinstance(decided.action, ListModels)
    assert _names(decided) == ["chat", "fast"]
    assert not decided.wake


def test_with_two_pods_a_fallback_answers_the_cold_pods_model_while_it_wakes() -> None:
    anyone = _state(name="router", kind="openai", base_url="http://router")
    snapshot = _snapshot(CHAT_POD, FAST_COLD, anyone, can_wake=True)
    cold = plan(_asking("small"), snapshot)
    assert _names(cold) == ["router"] and cold.wake_pod == "fast"
    warm = plan(_asking("big"), snapshot)
    assert _names(warm) == ["chat", "router"] and warm.wake_pod is None


def test_with_two_pods_each_pod_and_model_has_its_own_cache_key() -> None:
    same = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    keys = set()
    fast_big = _state(name="fast", kind="pod", pod="fast", models=["big"])
    for pod, model in ((CHAT_POD, "big"), (FAST_POD, "small"), (fast_big, "big")):
        decided = plan(_request({**same, "model": model}), _snapshot(pod))
        assert isinstance(decided.action, Answer)
        keys.add(decided.action.attempts[0].decision.key)
    assert len(keys) == 3


def test_models_with_every_fallback_resting_still_asks_the_first_of_them() -> None:
    request = _request(None, "GET", "/v1/models")
    resting = replace(LOCAL, available=False)
    decided = plan(request, _snapshot(POD_COLD, resting))
    assert isinstance(decided.action, ListModels)
    assert _names(decided) == ["local"]
