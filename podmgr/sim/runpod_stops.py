"""Stops RunPod makes on its own: the account's balance at $0, and spot preemption.

`balance_zero`: once the fault fires, the balance is at $0 until the faults are cleared.
"When your balance reaches $0, Runpod automatically stops all of your running Pods":
pods with a network volume are stopped, pods without one are terminated (RunPod docs,
accounts-billing/billing.mdx, "Low balance behavior"; pods/pricing.mdx says the same).
Meanwhile a create or a start is refused: "To deploy a new Pod, your account must have
at least one hour's worth of credits" (same page). RunPod's API v1 documents no wording or
status for that refusal; its API v2 answers 402 "Insufficient balance" (RunPod docs,
api-reference-v2/openapi.json, CreatePod), so the simulator answers REST 402 and GraphQL
an error with the message below (its wording is the simulator's, not RunPod's).

`preempt`: RunPod stops a RUNNING interruptible (spot) pod to give its GPU to another:
"can be stopped at any time to free up resources for another Pod" (RunPod OpenAPI v1,
PodCreateInput.interruptible). Both stops are `ended_by: runpod` in the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podmgr.logs import get_logger
from podmgr.sim.pods import SimPod
from podmgr.sim.world import SimWorld

__all__ = ["BALANCE_MESSAGE", "PAYMENT_REQUIRED", "balance_at_zero", "strike_runpod_stops"]

_log = get_logger("sim.runpod_stops")

BALANCE_MESSAGE = (
    "Insufficient balance: your account must have at least one hour's worth of credits "
    "to deploy or start this pod."
)
PAYMENT_REQUIRED = 402


def balance_at_zero(world: SimWorld) -> bool:
    """A `balance_zero` fault has fired and was not cleared since."""
    return world.faults.has_fired("balance_zero")


def _running(world: SimWorld) -> list[SimPod]:
    return sorted((p for p in world.fleet.live() if p.status == "RUNNING"), key=lambda p: p.id)


def _spot_running(world: SimWorld, params: Mapping[str, Any]) -> list[SimPod]:
    wanted = params.get("pod_id")
    return [p for p in _running(world) if p.spec.interruptible and wanted in (None, "", p.id)]


def strike_runpod_stops(world: SimWorld) -> None:
    """Draw `balance_zero` and `preempt` (on every API call, as the other pod strikes)."""
    if world.faults.draw("balance_zero") is not None:
        for pod in _running(world):
            if pod.spec.network_volume_id:
                world.fleet.stop(pod, by="runpod")
            else:
                world.fleet.terminate(pod, by="runpod")
            _log.info("fault_fired", fault="balance_zero", pod_id=pod.id, status=pod.status)
    fault = world.faults.draw("preempt", lambda params: bool(_spot_running(world, params)))
    if fault is not None:
        pod = world.rng.choice(_spot_running(world, fault.spec.params))
        world.fleet.stop(pod, by="runpod")
        _log.info("fault_fired", fault="preempt", pod_id=pod.id)
