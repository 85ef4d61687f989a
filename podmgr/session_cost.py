"""What the session has cost at one moment: one figure for `podmgr status` (and `--json`),
`up`'s summary, the proxy's `/health`, `/dashboard` and `/metrics`.

The state holds what the last watchdog pass booked (`session.cost_usd`, up to the pod's
`billed_until`); a live pod has accrued more since, at its `cost_per_hr`. Each place used
to show its own figure at the same moment ($0.0042 on the dashboard, $0.00 in `status`,
0.0031 in `status --json`, issue 22). All now call `session_cost`, and print it with
`usd`, whose four decimals show what a short session costs (cents hide it).
With several pods (config `pods`, issue 23) the session's figure accrues every pod's
record, and `pod_cost` is one configured pod's share of it (booked for the pods of its
name, plus what its live record accrued since): `status` shows it per pod.
Standard library and the state model only: `podmgr status` imports it and stays fast.
"""

from __future__ import annotations

from podmgr.state import PodRecord, State

__all__ = ["pod_cost", "session_cost", "usd"]


def session_cost(state: State | None, now: float) -> float:
    """Booked session cost plus what each live pod has accrued since it was last billed."""
    if state is None or state.session is None:
        return 0.0
    cost = state.session.cost_usd
    if state.session.active:
        cost += sum(_accrued(pod, now) for pod in state.pods.values())
    return round(cost, 6)


def pod_cost(state: State | None, name: str, now: float) -> float:
    """What the pods of configured pod `name` have cost in this session so far: booked
    (`SessionPod.cost_usd` of its name) plus what its live record accrued since."""
    if state is None or state.session is None:
        return 0.0
    session = state.session
    cost = sum(pod.cost_usd for pod in session.pods if pod.pod_name == name)
    record = state.pods.get(name)
    if record is not None and session.active:
        cost += _accrued(record, now)
    return round(cost, 6)


def _accrued(pod: PodRecord, now: float) -> float:
    """What a live pod has cost since the last pass booked it (at its $/h)."""
    since = pod.billed_until or pod.created_at
    return max(0.0, now - since) / 3600 * pod.cost_per_hr


def usd(amount: float) -> str:
    """A dollar figure as podmgr prints it: `$0.0042`."""
    return f"${amount:.4f}"
