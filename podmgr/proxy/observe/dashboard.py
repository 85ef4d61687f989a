"""`GET /dashboard`: how the pod and the proxy are doing, for a person.

Plain text for curl (any Accept that is not text/html), an HTML page that refreshes itself
every 5 s for a browser. Both come from one `DashboardView`, so they always agree. Nothing
secret is shown: the pod's key and the upstream URL's path stay out.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field

from podmgr.config import Config
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.observe.metrics import session_cost
from podmgr.proxy.observe.stats import RecentStats
from podmgr.proxy.upstream.resolver import UpstreamResolver

__all__ = ["DashboardView", "build_view", "render_html", "render_text"]

REFRESH_SECONDS = 5


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


@dataclass(frozen=True)
class DashboardView:
    """The dashboard's rows, already formatted."""

    rows: list[tuple[str, str]]
    errors: list[tuple[str, str, str, str]] = field(default_factory=list)
    healthy: bool = True


def _upstream_text(resolver: UpstreamResolver) -> str:
    upstream = resolver.current
    return f"ready ({upstream.url_host})" if upstream.ready else f"not ready: {upstream.reason}"


def _cache_texts(cache: CacheStore, stats: RecentStats, mode: str) -> tuple[str, str]:
    size = f"{cache.entries} entries, {cache.bytes / 1e6:.2f} MB, mode {mode}"
    rate = stats.hit_rate()
    if rate is None:
        return size, "-"
    return size, f"{rate * 100:.1f}% ({stats.hits} hits, {stats.misses} misses)"


def build_view(
    config: Config, resolver: UpstreamResolver, cache: CacheStore, stats: RecentStats
) -> DashboardView:
    now = time.time()
    state = resolver.state
    pod = state.pod if state else None
    session = state.session if state else None
    latency = "  ".join(f"{name} {value:.1f} ms" for name, value in stats.percentiles().items())
    uptime = now - (pod.ready_at or pod.created_at) if pod else None
    left = session.deadline - now if session and session.active else None
    cache_size, hit_rate = _cache_texts(cache, stats, config.cache_mode)
    rows = [
        ("Pod", f"{pod.id} ({pod.phase}, {pod.gpu_type_id})" if pod else "none"),
        ("Upstream", _upstream_text(resolver)),
        ("Pod uptime", _duration(uptime)),
        ("Time left", _duration(left) if session else "-"),
        ("Cost so far", f"${session_cost(state, now):.4f}" if session else "-"),
        ("Cache", cache_size),
        ("Cache hit rate", hit_rate),
        ("Request rate", f"{stats.request_rate(now):.2f} req/s (last minute)"),
        ("Latency", latency or "-"),
        ("Proxy uptime", _duration(now - stats.started_at)),
    ]
    errors = [
        (time.strftime("%H:%M:%S", time.localtime(e.at)), e.route, str(e.status), e.message)
        for e in reversed(stats.errors)
    ]
    return DashboardView(rows, errors, healthy=resolver.current.ready)


def render_text(view: DashboardView) -> str:
    width = max(len(name) for name, _ in view.rows)
    lines = ["podmgr proxy", "=" * 12]
    lines += [f"{name.ljust(width)}  {value}" for name, value in view.rows]
    lines.append("")
    lines.append("Recent errors" if view.errors else "Recent errors: none")
    lines += [f"  {at}  {status}  /v1/{route}  {text}" for at, route, status, text in view.errors]
    return "\n".join(lines) + "\n"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;background:#f6f7f9;color:#1d232b}
h1{font-size:1.4rem;margin:0 0 1rem}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-size:.9rem;color:#fff}
.ok{background:#1f8a4c}.bad{background:#b3261e}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 3px #0002;margin-bottom:1.5rem}
th,td{padding:.45rem 1rem;text-align:left;border-bottom:1px solid #e3e6ea}
th{color:#56606b;font-weight:600}
td.num{font-variant-numeric:tabular-nums}
footer{color:#56606b;font-size:.8rem}
"""


def _error_table(view: DashboardView) -> str:
    if not view.errors:
        return "<p>No recent errors.</p>"
    esc = html.escape
    head = "<tr><th>Time</th><th>Status</th><th>Route</th><th>Message</th></tr>"
    rows = "".join(
        f"<tr><td>{esc(at)}</td><td>{esc(status)}</td><td>/v1/{esc(route)}</td>"
        f"<td>{esc(text)}</td></tr>"
        for at, route, status, text in view.errors
    )
    return f"<table>{head}{rows}</table>"


def render_html(view: DashboardView) -> str:
    esc = html.escape
    badge = (
        '<span class="badge ok">upstream ready</span>'
        if view.healthy
        else '<span class="badge bad">upstream not ready</span>'
    )
    rows = "".join(
        f"<tr><th>{esc(name)}</th><td class=num>{esc(value)}</td></tr>" for name, value in view.rows
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>podmgr proxy</title><style>{_STYLE}</style></head><body>"
        f"<h1>podmgr proxy {badge}</h1><table>{rows}</table>"
        f"<h2>Recent errors</h2>{_error_table(view)}"
        f"<footer>Refreshes every {REFRESH_SECONDS} s.</footer></body></html>"
    )
