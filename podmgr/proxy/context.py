"""The parts of one proxy app, typed and in one place (instead of an untyped `app.state`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from podmgr.config import Config
from podmgr.proxy.cache_store import CacheStore
from podmgr.proxy.metrics import ProxyMetrics, Snapshot
from podmgr.proxy.stats import RecentStats
from podmgr.proxy.upstream import UpstreamResolver

if TYPE_CHECKING:
    from podmgr.proxy.flight import Flight
    from podmgr.proxy.transport import Transport

__all__ = ["ProxyContext"]


@dataclass
class ProxyContext:
    """Config, upstream, cache, metrics and the upstream client; built by `create_app`."""

    config: Config
    resolver: UpstreamResolver
    cache: CacheStore
    stats: RecentStats = field(default_factory=RecentStats)
    metrics: ProxyMetrics = field(init=False)
    client: Transport | None = None
    flights: dict[str, Flight] = field(default_factory=dict)
    api_keys: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        self.metrics = ProxyMetrics(self.snapshot)
        self.api_keys = tuple(key.encode() for key in self.config.proxy_api_keys)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            cache_entries=self.cache.entries,
            cache_bytes=self.cache.bytes,
            state=self.resolver.state,
            upstream_ready=self.resolver.current.ready,
        )
