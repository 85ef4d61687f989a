"""The watchdog's side of the guard's lease: renew it on each pass that saw the pod serve.

Only when `guard_lease_seconds` is set and the pod was created with a lease (its guard
limits say so): `POST {pod URL}/podmgr/lease` with the pod's vLLM key, served by the
guard's middleware inside vLLM (podmgr/guard/guard.py). A failed renewal is logged and
never fails the pass: the lease is the second line, the pass is the first.
"""

from __future__ import annotations

import httpx

from podmgr.config import Config
from podmgr.logs import get_logger
from podmgr.state import State

__all__ = ["LEASE_PATH", "renew_lease"]

LEASE_PATH = "/podmgr/lease"
log = get_logger("watchdog")


def renew_lease(config: Config, state: State) -> bool | None:
    """True renewed, False failed, None nothing to renew."""
    pod, session = state.pod, state.session
    if (
        config.guard.lease_seconds is None
        or pod is None
        or not (pod.guard or {}).get("lease_seconds")
    ):
        return None
    if session is None or not session.active or pod.phase != "ready":
        return None
    url = config.pod.pod_url(pod.id).rstrip("/") + LEASE_PATH
    headers = {"Authorization": f"Bearer {pod.vllm_api_key}"}
    try:
        answer = httpx.post(url, headers=headers, timeout=config.startup.http_timeout_seconds)
    except httpx.HTTPError as error:
        log.warning("lease_renew_failed", pod_id=pod.id, error=str(error)[:200])
        return False
    if answer.status_code != 200:
        log.warning("lease_renew_failed", pod_id=pod.id, status=answer.status_code)
        return False
    log.info("lease_renewed", pod_id=pod.id)
    return True
