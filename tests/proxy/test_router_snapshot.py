"""The router's snapshot is reused between requests, so it must change exactly when what it
shows changes: a cool-down starting, a cool-down ending, a new pod in the state file."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from podmgr.config.upstreams import UpstreamSpec
from podmgr.proxy.openai_errors import TIMED_OUT
from podmgr.proxy.upstream.resolver import Upstream, UpstreamResolver
from podmgr.proxy.upstream.router import Route, Router
from podmgr.proxy.upstream.transport import Transport


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _router(tmp_path: Path, clock: Clock) -> Router:
    specs = [
        UpstreamSpec.model_validate({"name": "pod", "kind": "pod"}),
        UpstreamSpec.model_validate(
            {"name": "local", "kind": "openai", "base_url": "http://127.0.0.1:9"}
        ),
    ]
    routes = [Route(spec, cast(Transport, None), None) for spec in specs]
    resolver = UpstreamResolver(tmp_path / "state.json")
    return Router(routes, resolver, allowed_fails=2, cooldown_seconds=60, clock=clock)


def _available(router: Router) -> dict[str, bool]:
    return {state.route.name: state.available for state in router.snapshot()}


def test_the_snapshot_is_reused_until_a_cooldown_starts_and_ends(tmp_path: Path) -> None:
    clock = Clock()
    router = _router(tmp_path, clock)
    first = router.snapshot()
    assert router.snapshot() is first
    assert _available(router) == {"pod": False, "local": True}
    local = router.by_name["local"]
    router.failed(local, TIMED_OUT, 1.0)
    assert router.snapshot() is first  # one failure is not a cool-down
    router.failed(local, TIMED_OUT, 1.0)
    assert _available(router) == {"pod": False, "local": False}
    clock.now += 59
    assert _available(router) == {"pod": False, "local": False}
    clock.now += 2
    assert _available(router) == {"pod": False, "local": True}


def test_a_new_pod_shows_in_the_next_snapshot(tmp_path: Path) -> None:
    router = _router(tmp_path, Clock())
    assert _available(router)["pod"] is False
    # the resolver hands out a new `targets` dict whenever the state file changed
    router.resolver.targets = {"pod": Upstream("http://pod", None, None, None)}
    assert _available(router)["pod"] is True


def test_each_kind_says_where_it_sends_and_when_it_may_be_tried(tmp_path: Path) -> None:
    router = _router(tmp_path, Clock())
    pod, local = router.routes
    assert pod.is_pod and not local.is_pod
    assert pod.target(router.resolver) is router.resolver.current
    assert pod.target(router.resolver) is router.resolver.targets["pod"]
    assert local.target(router.resolver).base_url == "http://127.0.0.1:9"
    assert local.kind.available(local.target(router.resolver), 10.0, 5.0) is False
    assert local.kind.available(local.target(router.resolver), 10.0, 10.0) is True
