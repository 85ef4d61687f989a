"""Per-upstream numbers for /metrics, /dashboard and `podmgr status` (from `Router.view()`).

Requests, errors and mean latency count the answers each upstream gave clients (a cache
hit is nobody's; a stream that broke off is an error); tokens come from the usage each
answer carried (the proxy asks for it on every stream: `stream_options.include_usage`,
stripped again for a client that did not ask);
money is those tokens at the upstream's optional price per million. No key or URL path
appears: an upstream is its name and host.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from podmgr.config.upstreams import upstream_line
from podmgr.proxy.upstream.router import Router

__all__ = ["UpstreamCollector", "upstream_rows"]


class UpstreamCollector(Collector):
    """Exports each upstream's counters at scrape time, labelled by its name."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        views = self._router.view()
        requests = CounterMetricFamily(
            "podmgr_upstream_requests", "Calls sent to each upstream.", labels=["upstream"]
        )
        errors = CounterMetricFamily(
            "podmgr_upstream_errors", "Failed calls per upstream.", labels=["upstream"]
        )
        tokens = CounterMetricFamily(
            "podmgr_upstream_tokens", "Tokens in usage per upstream.", labels=["upstream", "kind"]
        )
        cost = GaugeMetricFamily(
            "podmgr_upstream_cost_usd", "Token cost per upstream at its price.", labels=["upstream"]
        )
        available = GaugeMetricFamily(
            "podmgr_upstream_available", "1 if the upstream may be chosen now.", labels=["upstream"]
        )
        fallback = CounterMetricFamily(
            "podmgr_fallback_requests",
            "Requests answered by an upstream other than the pod (kind openai), since the proxy "
            "started.",
        )
        fallback.add_metric(
            [], sum(v["requests"] - v["errors"] for v in views if v["kind"] != "pod")
        )
        for view in views:
            name = view["name"]
            requests.add_metric([name], view["requests"])
            errors.add_metric([name], view["errors"])
            tokens.add_metric([name, "prompt"], view["prompt_tokens"])
            tokens.add_metric([name, "completion"], view["completion_tokens"])
            cost.add_metric([name], view["cost_usd"])
            available.add_metric([name], 1.0 if view["available"] else 0.0)
        yield from (requests, errors, tokens, cost, available, fallback)


def upstream_rows(router: Router) -> list[tuple[str, str]]:
    """Dashboard rows, one per upstream (none when there is only one: the page's own
    upstream lines say all there is)."""
    if not router.several:
        return []
    return [(f"Upstream {view['name']}", upstream_line(view)) for view in router.view()]
