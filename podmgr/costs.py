"""What the sessions cost, grouped, and RunPod's own figure for the same pods beside it.

`podmgr cost` reads the history (podmgr/history.py) and, where it can, RunPod's
`GET /billing/pods` (RunPod OpenAPI v2, listPodBilling: per pod and UTC day bucket,
`totalAmount` in dollars; podmgr/runpod/billing.py). This module only decides: it turns
records and billing records into a report; reading files and calling RunPod is the CLI's
part (podmgr/cli/money.py).

podmgr's figure is its own account (podmgr/watchdog/accounting.py): each pod from its
creation to its termination at its billed rate (the pod's `cost`), booked at each
watchdog pass. RunPod bills the pod from its creation to its termination, per second
(docs accounts-billing/billing), so the two agree to well under a cent per pod-hour;
what can remain: the seconds between podmgr's last booking and RunPod's record of the
termination, a pod stopped for a restart (podmgr books that time, RunPod does not bill a
stopped pod's GPU), and storage of a stopped pod, which RunPod bills and podmgr does not
count.

Groups: `day` is the UTC day the session started on (RunPod's buckets are UTC), `gpu` the
pod's GPU type, `session` the session (its start time and its id: two sessions may start
in the same second), `pod` the configured pod it was made for (config `pods`, issue 23:
`PodSummary.pod_name`; records and pods from before several pods read as "pod"), `model`
that pod's model. The history does not record models: a pod name is mapped to the model
its entry in the config has now (`models`), "-" for a name the config no longer has.
A pod belongs to exactly one group, so RunPod's amount for a pod is set beside the group
podmgr put it in. Pods RunPod bills that no history record knows (made by hand, or by
another tool) are listed apart, never mixed into the comparison.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from podmgr.history import PodSummary, SessionRecord

__all__ = ["CostGroup", "CostReport", "GroupBy", "build_report", "runpod_by_pod"]

GroupBy = Literal["day", "gpu", "session", "pod", "model"]
GROUPINGS: tuple[GroupBy, ...] = ("day", "gpu", "session", "pod", "model")


@dataclass
class CostGroup:
    """One line of the report."""

    key: str
    podmgr_usd: float = 0.0
    runpod_usd: float | None = None
    sessions: set[str] = field(default_factory=set)  # SessionRecord.key
    pods: list[str] = field(default_factory=list)
    pod_names: list[str] = field(default_factory=list)  # the configured pods they were

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "podmgr_usd": round(self.podmgr_usd, 6),
            "runpod_usd": None if self.runpod_usd is None else round(self.runpod_usd, 6),
            "difference_usd": _difference(self.podmgr_usd, self.runpod_usd),
            "sessions": len(self.sessions),
            "pods": self.pods,
            "pod_names": self.pod_names,
        }


@dataclass
class CostReport:
    """Groups in order, totals, and the pods RunPod bills that podmgr does not know."""

    by: GroupBy
    groups: list[CostGroup]
    total_usd: float
    runpod_total_usd: float | None
    runpod_other_pods: dict[str, float]
    runpod_error: str | None = None
    running: bool = False

    def as_json(self, since: float) -> dict[str, object]:
        other = sum(self.runpod_other_pods.values())
        return {
            "since": _iso(since),
            "by": self.by,
            "total_usd": round(self.total_usd, 6),
            "runpod_total_usd": (
                None if self.runpod_total_usd is None else round(self.runpod_total_usd, 6)
            ),
            "difference_usd": _difference(self.total_usd, self.runpod_total_usd),
            "runpod_error": self.runpod_error,
            "includes_running_session": self.running,
            "groups": [group.as_json() for group in self.groups],
            "runpod_other_pods": {k: round(v, 6) for k, v in self.runpod_other_pods.items()},
            "runpod_other_usd": round(other, 6),
        }


def _difference(ours: float, theirs: float | None) -> float | None:
    return None if theirs is None else round(ours - theirs, 6)


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_costs(record: SessionRecord) -> list[tuple[PodSummary, float]]:
    """Each pod of the record with podmgr's cost for it. Records from before pods were
    costed one by one put the session's whole cost on its last pod."""
    if record.pods and all(pod.cost_usd is not None for pod in record.pods):
        return [(pod, pod.cost_usd or 0.0) for pod in record.pods]
    if not record.pods:
        unknown = PodSummary(id="-", gpu_type_id="-", created_at=record.started_at)
        return [(unknown, record.cost_usd)]
    return [(pod, record.cost_usd if pod is record.pods[-1] else 0.0) for pod in record.pods]


def group_key(
    by: GroupBy, record: SessionRecord, pod: PodSummary, models: Mapping[str, str] | None = None
) -> str:
    """The group a pod of a record falls in; `models`: each configured pod's model by name."""
    if by == "gpu":
        return pod.gpu_type_id
    if by == "pod":
        return pod.pod_name
    if by == "model":
        return (models or {}).get(pod.pod_name, "-")
    start = dt.datetime.fromtimestamp(record.started_at, dt.UTC)
    if by == "day":
        return start.strftime("%Y-%m-%d")
    stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} {record.session_id}" if record.session_id else stamp


def runpod_by_pod(amounts: Iterable[tuple[str | None, float]]) -> dict[str, float]:
    """RunPod's billing records (pod id, amount) summed per pod."""
    totals: dict[str, float] = {}
    for pod_id, amount in amounts:
        if pod_id:
            totals[pod_id] = totals.get(pod_id, 0.0) + amount
    return totals


def build_report(
    records: Sequence[SessionRecord],
    by: GroupBy,
    *,
    runpod: dict[str, float] | None = None,
    known_pods: set[str] | None = None,
    runpod_error: str | None = None,
    running: bool = False,
    models: Mapping[str, str] | None = None,
) -> CostReport:
    """The report over `records` (oldest first). `runpod`: RunPod's amount per pod, or
    None if it could not be read; `known_pods`: every pod id in the whole history (a pod
    of an older session is not "unknown" to podmgr); `models`: the configured pods'
    models by name (for `model`)."""
    groups: dict[str, CostGroup] = {}
    ours: set[str] = set()
    for record in records:
        for pod, cost in pod_costs(record):
            key = group_key(by, record, pod, models)
            group = groups.setdefault(key, CostGroup(key))
            group.podmgr_usd += cost
            group.sessions.add(record.key)
            if pod.pod_name not in group.pod_names:
                group.pod_names.append(pod.pod_name)
            if pod.id != "-" and pod.id not in group.pods:
                group.pods.append(pod.id)
                ours.add(pod.id)
                if runpod is not None:
                    group.runpod_usd = (group.runpod_usd or 0.0) + runpod.get(pod.id, 0.0)
    if runpod is not None:
        for group in groups.values():
            group.runpod_usd = group.runpod_usd or 0.0
    known = (known_pods or set()) | ours
    other = {pod: usd for pod, usd in (runpod or {}).items() if pod not in known}
    total = sum(group.podmgr_usd for group in groups.values())
    runpod_total = None if runpod is None else sum(runpod.get(pod, 0.0) for pod in ours)
    return CostReport(
        by=by,
        groups=sorted(groups.values(), key=lambda group: group.key),
        total_usd=total,
        runpod_total_usd=runpod_total,
        runpod_other_pods=other,
        runpod_error=runpod_error,
        running=running,
    )
