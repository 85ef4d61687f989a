"""What the session has cost at one moment: one figure for `podmgr status` (and `--json`),
`up`'s summary, the proxy's `/health`, `/dashboard` and `/metrics`.

The state holds what the last watchdog pass booked (`session.cost_usd`, up to the pod's
`billed_until`); a live pod has accrued more since, at its `cost_per_hr`. Each place used
to show its own figure at the same moment ($0.0042 on the dashboard, $0.00 in `status`,
0.0031 in `status --json`, issue 22). All now call `session_cost`, and print it with
`usd`, whose four decimals show what a short session costs (cents hide it).
Standard library and the state model only: `podmgr status` imports it and stays fast.
"""

from __future__ import annotations

from podmgr.state import State

__all__ = ["session_cost", "usd"]


def session_cost(state: State | None, now: float) -> float:
    """Booked session cost plus what the live pod has accrued since it was last billed."""
    if state is None or state.session is None:
        return 0.0
    cost = state.session.cost_usd
    pod = state.pod
    if pod is not None and state.session.active:
        since = pod.billed_until or pod.created_at
        cost += max(0.0, now - since) / 3600 * pod.cost_per_hr
    return round(cost, 6)


def usd(amount: float) -> str:
    """A dollar figure as podmgr prints it: `$0.0042`."""
    return f"${amount:.4f}"
