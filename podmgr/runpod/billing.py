"""RunPod's billed amount per pod: `GET /billing/pods` on REST v2, summed per pod.

RunPod OpenAPI v2, listPodBilling: "records are emitted per pod per bucket", each with
`totalAmount` (GPU, CPU and disk) in USD; `startTime` defaults to 30 days ago and is
snapped down to its bucket. `podmgr cost` puts these beside its own figures.
"""

from __future__ import annotations

import datetime as dt
import os

from podmgr.costs import runpod_by_pod
from podmgr.errors import PodmgrError
from podmgr.runpod.rest import RestApi

__all__ = ["billed_by_pod"]


def billed_by_pod(since: float) -> tuple[dict[str, float] | None, str | None]:
    """RunPod's amount per pod id since `since` (epoch seconds), or why it is missing."""
    key = os.environ.get("RUNPOD_API_KEY", "")
    if not key:
        return None, "RUNPOD_API_KEY is not set"
    start = dt.datetime.fromtimestamp(since, dt.UTC).strftime("%Y-%m-%dT00:00:00Z")
    try:
        api = RestApi(key)
    except PodmgrError as error:
        return None, error.message
    try:
        records = api.pod_billing(start_time=start, bucket_size="day")
    except PodmgrError as error:
        return None, error.message
    finally:
        api.close()
    return runpod_by_pod((record.pod_id, record.total_amount) for record in records), None
