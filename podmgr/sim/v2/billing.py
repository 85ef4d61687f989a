"""`GET /v2/billing/pods`: the ledger's billed time as one record per pod per bucket.

RunPod REST API v2 (openapi.json, listPodBilling; ListPodBillingResponse, PodBillingRecord,
PodBillingMetadata, PodBillingQuery, BillingBucketSize; parameters BillingStartTime,
BillingEndTime, BillingBucketSize, BillingLastN, `podId`): records `{startTime, endTime,
podId, totalAmount, gpuAmount, cpuAmount, diskAmount}` ("one record is emitted per pod
per bucket"), metadata `{query: {startTime, endTime, bucketSize, podId}, recordCount,
uniquePodCount, totals}`. `startTime` defaults to 30 days ago and is "snapped down to the
start of its bucketSize bucket"; `endTime` (exclusive) defaults to now and is "snapped up
to the end of the bucketSize bucket it lands in"; `lastN` gives the last N buckets ending
with the current one and is "mutually exclusive with startTime/endTime" (400).
`bucketSize` defaults to day; weeks start on Monday (undocumented).

Amounts come from the same billed intervals as `GET /_sim/ledger` (per second, as RunPod
charges: docs accounts-billing/billing), so the two agree: the simulator prices a pod's
running time at its hourly rate, storage included, so `gpuAmount` = `totalAmount`,
`cpuAmount` 0 (GPU pods only) and `diskAmount` 0. Buckets with nothing billed are left
out (undocumented).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp import web

from podmgr.sim.operations import SimApiError
from podmgr.sim.v2.intake import route
from podmgr.sim.v2.problems import json_answer
from podmgr.sim.world import WORLD, SimWorld

__all__ = ["BUCKET_SIZES", "billing_routes", "pod_billing"]

BUCKET_SIZES = ("hour", "day", "week", "month", "year")
_UTC = dt.UTC
_DEFAULT_DAYS = 30


def bucket_start(at: dt.datetime, size: str) -> dt.datetime:
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


def next_bucket(start: dt.datetime, size: str) -> dt.datetime:
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
        bucket = bucket_start(at, size)
        upto = min(next_bucket(bucket, size), stop)
        yield bucket, (upto - at).total_seconds()
        at = upto


def _time(query: Mapping[str, str], name: str) -> dt.datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise SimApiError("bad_request", f"{name}: not an RFC 3339 time: {raw!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_UTC)


def _window(
    query: Mapping[str, str], size: str, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    start, end = _time(query, "startTime"), _time(query, "endTime")
    last_n = query.get("lastN")
    if last_n is not None:
        if start is not None or end is not None:
            raise SimApiError("bad_request", "lastN is mutually exclusive with startTime/endTime")
        if not last_n.isdigit() or int(last_n) < 1:
            raise SimApiError("bad_request", "lastN must be a whole number >= 1")
        first = bucket_start(now, size)
        for _ in range(int(last_n) - 1):
            first = bucket_start(first - dt.timedelta(microseconds=1), size)
        return first, next_bucket(bucket_start(now, size), size)
    begin = bucket_start(start or now - dt.timedelta(days=_DEFAULT_DAYS), size)
    finish = end or now
    snapped = bucket_start(finish, size)
    return begin, finish if snapped == finish else next_bucket(snapped, size)


def _stamp(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _amounts(total: float) -> dict[str, float]:
    total = round(total, 6)
    return {"totalAmount": total, "gpuAmount": total, "cpuAmount": 0.0, "diskAmount": 0.0}


def pod_billing(world: SimWorld, query: Mapping[str, str]) -> dict[str, Any]:
    """ListPodBillingResponse for the query; bad parameters: SimApiError (400)."""
    size = query.get("bucketSize", "day")
    if size not in BUCKET_SIZES:
        raise SimApiError("bad_request", f"bucketSize must be one of {', '.join(BUCKET_SIZES)}")
    now = world.now()
    begin, finish = _window(query, size, dt.datetime.fromtimestamp(now, _UTC))
    pod_id = query.get("podId")
    sums: dict[tuple[dt.datetime, str], float] = {}
    for pod in world.fleet.all():
        if pod_id and pod.id != pod_id:
            continue
        for lo, hi in pod.run_intervals(now):
            lo, hi = max(lo, begin.timestamp()), min(hi, finish.timestamp(), now)
            for bucket, seconds in _split(lo, hi, size) if lo < hi else ():
                key = (bucket, pod.id)
                sums[key] = sums.get(key, 0.0) + seconds * pod.cost_per_hr / 3600.0
    records = [
        {"startTime": _stamp(bucket), "endTime": _stamp(next_bucket(bucket, size)), "podId": pid,
         **_amounts(amount)}
        for (bucket, pid), amount in sorted(sums.items())
    ]  # fmt: skip
    query_echo = {"startTime": _stamp(begin), "endTime": _stamp(finish), "bucketSize": size,
                  "podId": pod_id}  # fmt: skip
    metadata = {
        "query": query_echo,
        "recordCount": len(records),
        "uniquePodCount": len({pid for _bucket, pid in sums}),
        "totals": _amounts(sum(sums.values())),
    }
    return {"records": records, "metadata": metadata}


async def billing_pods(request: web.Request) -> web.StreamResponse:
    return json_answer(pod_billing(request.app[WORLD], request.query))


def billing_routes() -> list[web.RouteDef]:
    return [web.get("/v2/billing/pods", route("billing", False, billing_pods))]
