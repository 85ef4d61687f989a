"""The kinds of upstream, as one small interface: where a request goes now and when the
upstream may be tried. The `kind` of an `upstreams` entry picks the class (`kind_of`), so
nothing else in the proxy compares kind names.

- `ManagedPod` (`kind: "pod"`): a pod the watchdog runs, by its configured name (`pods`;
  "pod" with one pod); its address and key come from that pod's record in the state file
  (`UpstreamResolver`), it is available exactly when a ready pod is named there,
  it is never cooled down (the watchdog restarts it), a request may wake it, and its
  answers are always cached.
- `OpenAIServer` (`kind: "openai"`): any OpenAI-compatible server at a fixed `base_url` with
  its own key; available unless it is cooling down after failing too often (router.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from podmgr.config.upstreams import UpstreamSpec
from podmgr.proxy.upstream.resolver import Upstream, UpstreamResolver, edge_limited, root_url

__all__ = ["ManagedPod", "OpenAIServer", "UpstreamKind", "kind_of"]


class UpstreamKind(ABC):
    """What differs between kinds of upstream (module docstring)."""

    # The watchdog's pod: woken on request, never cooled down, its answers always cached.
    managed: ClassVar[bool]

    @abstractmethod
    def target(self, resolver: UpstreamResolver) -> Upstream:
        """Where requests go now (an `Upstream` with a failure when there is nowhere)."""

    @abstractmethod
    def available(self, target: Upstream, cooldown_until: float, now: float) -> bool:
        """Whether a request may be sent to `target` now."""


class ManagedPod(UpstreamKind):
    managed = True

    def __init__(self, pod_name: str = "pod") -> None:
        self.pod_name = pod_name

    def target(self, resolver: UpstreamResolver) -> Upstream:
        return resolver.target(self.pod_name)

    def available(self, target: Upstream, cooldown_until: float, now: float) -> bool:
        return target.ready


class OpenAIServer(UpstreamKind):
    managed = False

    def __init__(self, base_url: str, key: str | None) -> None:
        auth = f"Bearer {key}".encode() if key else None
        self._upstream = Upstream(root_url(base_url), auth, None, None, edge_limited(base_url))

    def target(self, resolver: UpstreamResolver) -> Upstream:
        return self._upstream

    def available(self, target: Upstream, cooldown_until: float, now: float) -> bool:
        return cooldown_until <= now


def _openai(spec: UpstreamSpec, key: str | None) -> UpstreamKind:
    if spec.base_url is None:  # UpstreamSpec refuses this at load; kept for mypy
        raise ValueError(f"upstream {spec.name!r} of kind 'openai' has no base_url")
    return OpenAIServer(spec.base_url, key)


_KINDS: dict[str, Callable[[UpstreamSpec, str | None], UpstreamKind]] = {
    "pod": lambda spec, _key: ManagedPod(spec.pod_name),
    "openai": _openai,
}


def kind_of(spec: UpstreamSpec, key: str | None) -> UpstreamKind:
    """The kind of upstream `spec` describes, with its key (a literal, already resolved)."""
    return _KINDS[spec.kind](spec, key)
