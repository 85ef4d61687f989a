"""Pod-scoped API keys: the `RUNPOD_API_KEY` RunPod injects into each pod.

RunPod sets a pod-scoped `RUNPOD_API_KEY` inside every pod (RunPod docs,
pods/templates/environment-variables; RUNPOD_FACTS.md). What exactly it may do is not
documented; the simulator grants what a pod's guard needs to end itself and to read its
own log, over REST v2, and nothing more: `GET /v2/pods/{own id}`, `DELETE /v2/pods/{own
id}`, `POST /v2/pods/{own id}/action` (any action) and `GET /v2/pods/{own id}/logs`.
Anything else (another pod, a listing, a create, the catalog, billing, GraphQL) is refused
with 403, as RunPod answers a valid key that lacks access (api-reference-v2/migrate-from-
v1.mdx). It spends the account's rate budget (podmgr/sim/ratelimit.py). A stop or
terminate made with it shows `ended_by: pod` in the ledger.
"""

from __future__ import annotations

import secrets

from podmgr.sim.operations import SimApiError
from podmgr.sim.world import SimWorld

__all__ = ["POD_KEY_OPS", "check_pod_key", "ended_by", "pod_key_for"]

# Operation names as podmgr/sim/v2/intake.py gives them ("action": an unknown action).
POD_KEY_OPS = frozenset({"get", "terminate", "start", "stop", "restart", "action", "logs"})


def pod_key_for(world: SimWorld, pod_id: str) -> str:
    """The pod's own key (one per pod, kept across its restarts); obviously not real."""
    for key, owner in world.pod_keys.items():
        if owner == pod_id:
            return key
    key = f"sim-pod-key-{pod_id}-{secrets.token_hex(8)}"
    world.pod_keys[key] = pod_id
    return key


def check_pod_key(world: SimWorld, key: str, op: str, pod_id: str | None) -> None:
    """Refuse a pod-scoped key anything but POD_KEY_OPS on its own pod."""
    owner = world.pod_keys[key]
    if op not in POD_KEY_OPS or pod_id != owner:
        raise SimApiError("forbidden", f"a pod-scoped key may not {op} pod {pod_id or '(none)'}")


def ended_by(world: SimWorld, key: str | None) -> str:
    """Who a stop or terminate with this key is recorded as ended by."""
    return "pod" if key is not None and key in world.pod_keys else "user"
