"""`GET /v1/billing/pods`: the ledger's billed time, bucketed and grouped as RunPod shows it.

Shape and parameters from RunPod OpenAPI v1 (GET /billing/pods, BillingRecords):
`bucketSize` hour|day|week|month|year (default day), `grouping` podId|gpuTypeId (default
gpuTypeId), `podId`, `gpuTypeId`, `startTime`, `endTime` (date-time). Each record:
`{"time", "amount", "timeBilledMs", "diskSpaceBilledGb", "podId" | "gpuTypeId"}`, `time`
being the start of its bucket (UTC). Amounts come from the same billed intervals as
`GET /_sim/ledger` (per second, as RunPod charges: docs accounts-billing/billing), so the
two agree. Buckets with nothing billed are left out. Weeks start on Monday.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from podmgr.sim.operations import SimApiError
from podmgr.sim.pods import SimPod
from podmgr.sim.world import SimWorld

__all__ = ["BUCKET_SIZES", "GROUPINGS", "billing_records"]

BUCKET_SIZES = ("hour", "day", "week", "month", "year")
GROUPINGS = ("podId", "gpuTypeId")
_UTC = dt.UTC


def _bucket_start(at: dt.datetime, size: str) -> dt.datetime:
    if size == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if size == "day":
        return day
    if size == "week":
        return day - dt.timedelta(days=day.weekday())
    if size == "month":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def _next_bucket(start: dt.datetime, size: str) -> dt.datetime:
    if size == "hour":
        return start + dt.timedelta(hours=1)
    if size == "day":
        return start + dt.timedelta(days=1)
    if size == "week":
        return start + dt.timedelta(days=7)
    if size == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


def _split(begin: float, end: float, size: str) -> Iterator[tuple[dt.datetime, float]]:
    """(bucket start, seconds in it) for the interval [begin, end)."""
    at = dt.datetime.fromtimestamp(begin, _UTC)
    stop = dt.datetime.fromtimestamp(end, _UTC)
    while at < stop:
        bucket = _bucket_start(at, size)
        upto = min(_next_bucket(bucket, size), stop)
        yield bucket, (upto - at).total_seconds()
        at = upto


def _time_param(query: Mapping[str, str], name: str) -> float | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise SimApiError("bad_request", f"Invalid input: {name}: {raw}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_UTC)
    return parsed.timestamp()


def _choice(query: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = query.get(name, default)
    if value not in allowed:
        raise SimApiError("bad_request", f"Invalid input: {name} must be one of {allowed}")
    return value


def _pods(world: SimWorld, query: Mapping[str, str]) -> list[SimPod]:
    pods = list(world.fleet.all())
    if query.get("podId"):
        pods = [pod for pod in pods if pod.id == query["podId"]]
    if query.get("gpuTypeId"):
        pods = [pod for pod in pods if pod.spec.gpu_type_id == query["gpuTypeId"]]
    return pods


def billing_records(world: SimWorld, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """BillingRecords for the query (see the module docstring); bad parameters: bad_request."""
    size = _choice(query, "bucketSize", BUCKET_SIZES, "day")
    grouping = _choice(query, "grouping", GROUPINGS, "gpuTypeId")
    now = world.now()
    start = _time_param(query, "startTime") or 0.0
    end = min(_time_param(query, "endTime") or now, now)
    totals: dict[tuple[dt.datetime, str], dict[str, Any]] = {}
    for pod in _pods(world, query):
        key = pod.id if grouping == "podId" else pod.spec.gpu_type_id
        for begin, finish in pod.run_intervals(now):
            lo, hi = max(begin, start), min(finish, end)
            for bucket, seconds in _split(lo, hi, size) if lo < hi else ():
                record = totals.setdefault(
                    (bucket, key),
                    {"time": bucket, grouping: key, "seconds": 0.0, "amount": 0.0, "pods": {}},
                )
                record["seconds"] += seconds
                record["amount"] += seconds * pod.cost_per_hr / 3600.0
                record["pods"][pod.id] = pod.spec.volume_in_gb
    return [_render(totals[k], grouping) for k in sorted(totals)]


def _render(record: dict[str, Any], grouping: str) -> dict[str, Any]:
    return {
        "time": record["time"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        grouping: record[grouping],
        "amount": round(record["amount"], 6),
        "timeBilledMs": round(record["seconds"] * 1000),
        "diskSpaceBilledGb": sum(record["pods"].values()),
    }
