"""The dashboard's time series, SVG charts and history page."""

from __future__ import annotations

import re
from typing import Any

import httpx

from podmgr.history import PodSummary, SessionRecord, append_record, history_path
from podmgr.proxy.observe import charts
from podmgr.proxy.observe.series import Histogram, MinuteSeries


def test_histogram_percentiles_interpolate_inside_a_bucket() -> None:
    histogram = Histogram()
    assert histogram.percentile(0.5) is None
    for _ in range(90):
        histogram.add(0.003)  # first bucket, [0, 5 ms)
    for _ in range(10):
        histogram.add(0.7)  # (0.5 s, 1 s]
    p50 = histogram.percentile(0.5)
    p95 = histogram.percentile(0.95)
    assert p50 is not None and 0 < p50 < 0.005
    assert p95 is not None and 0.5 < p95 <= 1.0


def test_minutes_merge_into_slots_and_empty_minutes_stay_empty() -> None:
    series = MinuteSeries()
    base = 1_800_000_000.0  # a whole minute
    for minute, count in ((0, 3), (1, 1), (5, 2)):
        for n in range(count):
            series.record(base + minute * 60 + n, 0.01, cache_hit=n == 0, upstream="pod")
    series.record(base + 5 * 60 + 30, 0.2, upstream="fallback", error=True)
    slots = series.window(base, base + 10 * 60, points=5)  # two minutes a slot
    assert [p.requests for p in slots] == [4, 0, 3, 0, 0]
    assert slots[0].per_minute == 2.0 and slots[0].hit_rate == 0.5
    assert slots[2].upstreams == {"pod": 2, "fallback": 1} and slots[2].errors == 1
    assert slots[1].hit_rate is None


def test_a_chart_without_data_says_so_and_escapes_text() -> None:
    empty = charts.line_chart("<b>Latency</b>", "ms", 0, 60, [("p50", "#000", [(30, None)])])
    assert 'data-points="0"' in empty and "no data yet" in empty and "<b>" not in empty
    drawn = charts.bar_chart("Requests", "req/min", 0, 600, 60, [(0, 3.0), (60, 0.0), (120, 7)])
    assert 'data-points="2"' in drawn and drawn.count("<rect") == 1 + 2 and "no data" not in drawn
    line = charts.line_chart("L", "ms", 0, 100, [("a", "#123456", [(10, 1.0), (20, 2.0)])])
    assert re.search(r'<polyline points="[\d., ]+"', line)


def test_gauge_colours_by_share() -> None:
    assert "#1f8a4c" in charts.gauge("Spend", 1, 10, "$1", "$10")
    assert "#b3261e" in charts.gauge("Spend", 9.5, 10, "$9.5", "$10")
    assert 'data-points="0"' in charts.gauge("Spend", 1, None, "$1", "no budget")


def test_history_page_lists_sessions_and_names_bad_lines(make_proxy: Any) -> None:
    proxy = make_proxy(start=False)
    path = history_path(proxy.state_path)
    pod = PodSummary(id="p1", gpu_type_id="NVIDIA L40S", created_at=1_800_000_000)
    record = SessionRecord(
        started_at=1_800_000_000, ended_at=1_800_003_600, end_reason="idle", pods=[pod],
        cost_usd=0.86,
    )  # fmt: skip
    append_record(path, record)
    with path.open("a") as file:
        file.write("{not json\n")
    proxy.start()
    text = httpx.get(proxy.url + "/dashboard/history", timeout=10).text
    assert "idle" in text and "NVIDIA L40S" in text and "$0.8600" in text
    assert "history.jsonl:2: skipped" in text
    page = httpx.get(proxy.url + "/dashboard/history", headers={"accept": "text/html"}).text
    assert "<table>" in page and "1.00 h" in page and "history.jsonl:2" in page


def test_an_unknown_range_is_an_openai_shaped_400(make_proxy: Any) -> None:
    proxy = make_proxy()
    answer = httpx.get(proxy.url + "/dashboard?range=week", timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_range"
    assert "range 'week'" in answer.json()["error"]["message"]
    page = httpx.get(proxy.url + "/dashboard?range=session", headers={"accept": "text/html"})
    assert page.status_code == 200 and page.text.count('<svg class="chart') == 7
    assert len(page.content) < 60_000


def test_the_gauges_read_the_session_at_now_not_at_the_charts_edge() -> None:
    from podmgr.config import Config
    from podmgr.proxy.observe.dashboard import chart_panels
    from podmgr.proxy.observe.metrics import session_cost
    from podmgr.state import PodRecord, Session, State

    now = 1_800_000_030.0  # half a minute into a minute: the last slot ends 30 s later
    pod = PodRecord(id="p", name="n", gpu_type_id="g", cost_per_hr=36.0, created_at=now - 600,
                    vllm_api_key="sk-fake")  # fmt: skip
    state = State(session=Session(started_at=now - 600, deadline=now + 600), pod=pod)
    spend, time_used, *_ = chart_panels(
        MinuteSeries(), state, Config(max_cost_usd=50), now, "hour", now - 600
    )
    assert f"${session_cost(state, now):.4f} spent" in spend  # $6.0000, not $6.3000
    assert "10m 00s left" in time_used
