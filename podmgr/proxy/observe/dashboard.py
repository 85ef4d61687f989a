"""`GET /dashboard`: how the pod and the proxy are doing, for a person.

With several pods (config `pods`, issue 23) the pod, uptime and guard rows come once per
pod, by name ("Pod <name>", "Pod uptime (<name>)", "Guard in the pod (<name>)", the last
with the share of the budget that pod's guard holds); with one pod they are as before.

Plain text for curl (any Accept that is not text/html), an HTML page that refreshes itself
every 5 s for a browser. Both come from one `DashboardView`, so they always agree. Nothing
secret is shown: the pod's key and the upstream URL's path stay out. The HTML page adds
charts (observe/charts.py, inline SVG) of the last hour, or since the session started
(`?range=session`): requests per minute, latency and time to first token, cache hit rate,
which upstream answered, spend against the budget and time left against the deadline.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field

from podmgr.config import Config
from podmgr.guard.check import guard_status
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.observe import charts
from podmgr.proxy.observe.series import MinuteSeries, Point
from podmgr.proxy.observe.stats import RecentStats
from podmgr.proxy.upstream.resolver import Upstream, UpstreamResolver
from podmgr.rules import label as end_label
from podmgr.session_cost import session_cost, usd
from podmgr.state import PodRecord, Session, State, pod_record

__all__ = [
    "DASHBOARD_STYLE",
    "DashboardView",
    "build_view",
    "chart_panels",
    "render_html",
    "render_text",
]

REFRESH_SECONDS = 5


def _session_text(session: Session | None) -> str:
    """The session's id, and why it ended once it has (podmgr/rules.py)."""
    if session is None:
        return "none"
    if session.active:
        return session.id
    return f"{session.id} (ended: {end_label(session.end_reason)})"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


@dataclass(frozen=True)
class DashboardView:
    """The dashboard's rows, already formatted (and the charts, for the HTML page)."""

    rows: list[tuple[str, str]]
    errors: list[tuple[str, str, str, str]] = field(default_factory=list)
    healthy: bool = True
    charts: list[str] = field(default_factory=list)
    range_name: str = "hour"


def _upstream_text(upstream: Upstream) -> str:
    return f"ready ({upstream.url_host})" if upstream.ready else f"not ready: {upstream.reason}"


def _cache_texts(cache: CacheStore, stats: RecentStats, mode: str) -> tuple[str, str]:
    size = f"{cache.entries} entries, {cache.bytes / 1e6:.2f} MB, mode {mode}"
    rate = stats.hit_rate()
    if rate is None:
        return size, "-"
    return size, f"{rate * 100:.1f}% ({stats.hits} hits, {stats.misses} misses)"


def _pod_phase(pod: PodRecord) -> str:
    """A starting pod's phase as its own log said it (podmgr/watchdog/podlog.py)."""
    if pod.phase != "ready" and pod.progress_text:
        return f"{pod.phase}: {pod.progress_text}"
    return pod.phase


def _guard_text(config: Config, state: State | None) -> str:
    """Whether the pod's own guard holds the limits (podmgr/guard/check.py), plainly."""
    if state is None:
        return "-"
    seen = guard_status(config, state)
    said = {True: "running", False: "OFF", None: "not confirmed yet"}[seen["confirmed"]]
    return f"{said}: {seen['why']}"


def build_view(
    config: Config,
    resolver: UpstreamResolver,
    upstream: Upstream,
    cache: CacheStore,
    stats: RecentStats,
) -> DashboardView:
    """The rows; `upstream` is where the pod's route sends now (the first upstream's
    without a pod), `resolver` says what the watchdog's state file holds."""
    now = time.time()
    state = resolver.state
    pod = pod_record(state, resolver.pod_names[0])
    session = state.session if state else None
    latency = "  ".join(f"{name} {value:.1f} ms" for name, value in stats.percentiles().items())
    left = session.deadline - now if session and session.active else None
    cache_size, hit_rate = _cache_texts(cache, stats, config.cache.mode)
    several = len(resolver.pod_names) > 1
    rows = [
        ("Session", _session_text(session)),
        *_pod_rows(resolver),
        ("Upstream", _upstream_text(upstream)),
        *(_uptime_rows(resolver, now) if several else [("Pod uptime", _uptime(pod, now))]),
        ("Time left", _duration(left) if session else "-"),
        ("Cost so far", usd(session_cost(state, now)) if session else "-"),
        *(
            _guard_rows(config, resolver)
            if several
            else [("Guard in the pod", _guard_text(config, state))]
        ),
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
    return DashboardView(rows, errors, healthy=upstream.ready)


def _uptime(pod: PodRecord | None, now: float) -> str:
    return _duration(now - (pod.ready_at or pod.created_at) if pod else None)


def _uptime_rows(resolver: UpstreamResolver, now: float) -> list[tuple[str, str]]:
    """A "Pod uptime (<name>)" row for each of several pods (issue 23)."""
    state = resolver.state
    return [(f"Pod uptime ({name})", _uptime(pod_record(state, name), now))
            for name in resolver.pod_names]  # fmt: skip


def _guard_rows(config: Config, resolver: UpstreamResolver) -> list[tuple[str, str]]:
    """A "Guard in the pod (<name>)" row for each of several pods, with the share of the
    budget its guard holds (`max_cost_usd` at its create: watchdog/focus.py `guard_budget`)."""
    state = resolver.state
    if state is None:
        return [(f"Guard in the pod ({name})", "-") for name in resolver.pod_names]
    view = state.model_copy()  # focused on each pod in turn; the resolver's copy stays as is
    rows = []
    for name in resolver.pod_names:
        with view.focused(name):
            text = _guard_text(config, view)
        record = view.pods.get(name)
        share = (record.guard or {}).get("max_cost_usd") if record is not None else None
        if share is not None:
            text += f"; its share of the budget {usd(float(share))}"
        rows.append((f"Guard in the pod ({name})", text))
    return rows


def _pod_text(pod: PodRecord | None) -> str:
    return f"{pod.id} ({_pod_phase(pod)}, {pod.gpu_type_id})" if pod else "none"


def _pod_rows(resolver: UpstreamResolver) -> list[tuple[str, str]]:
    """One row "Pod" with one pod; "Pod <name>" for each of several (issue 23)."""
    state, names = resolver.state, resolver.pod_names
    if len(names) == 1:
        return [("Pod", _pod_text(pod_record(state, names[0])))]
    return [(f"Pod {name}", _pod_text(pod_record(state, name))) for name in names]


def render_text(view: DashboardView) -> str:
    width = max(len(name) for name, _ in view.rows)
    lines = ["podmgr proxy", "=" * 12]
    lines += [f"{name.ljust(width)}  {value}" for name, value in view.rows]
    lines.append("")
    lines.append("Recent errors" if view.errors else "Recent errors: none")
    lines += [f"  {at}  {status}  /v1/{route}  {text}" for at, route, status, text in view.errors]
    return "\n".join(lines) + "\n"


DASHBOARD_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;background:#f6f7f9;color:#1d232b}
h1{font-size:1.4rem;margin:0 0 1rem}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-size:.9rem;color:#fff}
.ok{background:#1f8a4c}.bad{background:#b3261e}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(530px,1fr));gap:.6rem;
margin-bottom:1.5rem}.charts svg{box-shadow:0 1px 3px #0002}
nav a{margin-right:1rem}
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
        f"<title>podmgr proxy</title><style>{DASHBOARD_STYLE}</style></head><body>"
        f"<h1>podmgr proxy {badge}</h1>{_nav(view.range_name)}<table>{rows}</table>"
        f'<div class="charts">{"".join(view.charts)}</div>'
        f"<h2>Recent errors</h2>{_error_table(view)}"
        f"<footer>Refreshes every {REFRESH_SECONDS} s.</footer></body></html>"
    )


def _nav(range_name: str) -> str:
    links = [("hour", "last hour"), ("session", "since the session started")]
    parts = [
        f"<b>{label}</b>" if name == range_name else f'<a href="?range={name}">{label}</a>'
        for name, label in links
    ]
    return f'<nav>{" ".join(parts)} <a href="/dashboard/history">history</a></nav>'


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _window(
    state: State | None, series_start: float, now: float, range_name: str
) -> tuple[float, int]:
    """Start of the charts' span and how many slots: the last hour by minute, or since the
    session (or the proxy, without one) started in at most 120 slots."""
    if range_name == "session":
        session = state.session if state else None
        start = session.started_at if session is not None else series_start
        return min(start, now - 60), 120
    return now - 3600, 60


def chart_panels(
    series: MinuteSeries,
    state: State | None,
    config: Config,
    now: float,
    range_name: str,
    series_start: float,
) -> list[str]:
    """The dashboard's charts, as inline SVG."""
    start, slots = _window(state, series_start, now, range_name)
    points = series.window(start, now, slots)
    slot = points[0].minutes * 60.0
    mid = [p.start + slot / 2 for p in points]
    x0, x1 = points[0].start, points[-1].start + slot  # the axis spans whole slots
    return [
        _spend_gauge(state, config, now),
        _time_gauge(state, now),
        charts.bar_chart(
            "Requests per minute",
            "req/min",
            x0,
            x1,
            slot,
            [(p.start, p.per_minute) for p in points],
        ),
        _latency_chart("Latency", x0, x1, points, mid, "latency"),
        _latency_chart("Time to first token, streams", x0, x1, points, mid, "ttft"),
        charts.line_chart(
            "Cache hit rate",
            "%",
            x0,
            x1,
            [
                (
                    "hit rate",
                    charts.PALETTE[2],
                    [
                        (x, None if p.hit_rate is None else p.hit_rate * 100)
                        for x, p in zip(mid, points, strict=True)
                    ],
                )
            ],
            top=100,
        ),
        charts.stacked_bars(
            "Who answered", "requests", x0, x1, slot, [(p.start, p.upstreams) for p in points]
        ),
    ]


def _latency_chart(
    title: str, start: float, now: float, points: list[Point], mid: list[float], which: str
) -> str:
    lines: list[charts.Line] = []
    for label, point, colour in (("p50", 0.5, charts.PALETTE[0]), ("p90", 0.9, charts.PALETTE[1])):
        values = [
            (x, _ms(getattr(p, which).percentile(point))) for x, p in zip(mid, points, strict=True)
        ]
        lines.append((label, colour, values))
    return charts.line_chart(title, "ms", start, now, lines)


def _spend_gauge(state: State | None, config: Config, now: float) -> str:
    session = state.session if state else None
    spent = session_cost(state, now) if session is not None else 0.0
    budget = config.limits.max_cost_usd
    limit = f"budget ${budget:.2f}" if budget is not None else "no budget set (max_cost_usd)"
    return charts.gauge("Spend in this session", spent, budget, f"${spent:.4f} spent", limit)


def _time_gauge(state: State | None, now: float) -> str:
    session = state.session if state else None
    if session is None or not session.active:
        return charts.gauge("Time left", 0.0, None, "no active session", "")
    length = session.deadline - session.started_at
    used = min(length, max(0.0, now - session.started_at))
    left = _duration(session.deadline - now)
    return charts.gauge("Time used of the session", used, length, f"{left} left",
                        f"deadline after {_duration(length)}")  # fmt: skip
