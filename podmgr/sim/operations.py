"""World operations shared by both APIs: create, get, list, start, stop, terminate.

GraphQL resolvers (podmgr/sim/resolvers.py) and REST v2 routes (podmgr/sim/v2/) call
these, so one world of pods is seen through both APIs, as on RunPod, and every API-level
fault is played by both. A failure is one `SimApiError` with a `kind`; each API renders it
its own way (GraphQL: an error message with HTTP 200, or an HTML page for `page_status`;
REST v2: an HTTP status with an RFC 9457 problem body, podmgr/sim/v2/problems.py).

Operation names (`Op`) are what the `field` parameter of the API faults matches, next to
GraphQL root field names: create, get, list, start, stop, terminate, restart, logs,
billing, catalog, volume_list, volume_get.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from podmgr.logs import get_logger
from podmgr.sim.catalog import find_gpu_type, price_per_gpu, spot_price, stock_of
from podmgr.sim.hosts import image_starts_on, place_on_host
from podmgr.sim.pods import PodSpec, SimPod
from podmgr.sim.runpod_stops import (
    BALANCE_MESSAGE,
    PAYMENT_REQUIRED,
    balance_at_zero,
    strike_runpod_stops,
)
from podmgr.sim.volumes import NETWORK_VOLUME_NOT_FOUND, VolumeError, place_with_volume
from podmgr.sim.world import SimWorld

__all__ = [
    "CAPACITY_MESSAGE",
    "GRAPHQL_OPS",
    "KNOWN_TEMPLATES",
    "NOT_FOUND_TO_TERMINATE",
    "POD_NOT_FOUND",
    "RESUME_NO_GPUS_MESSAGE",
    "SOMETHING_WENT_WRONG",
    "TEMPLATE_MISLEADING",
    "TEMPLATE_NOT_FOUND",
    "CallFaults",
    "CreateOrder",
    "ErrorKind",
    "SimApiError",
    "after_apply",
    "check_access",
    "create",
    "draw_call_faults",
    "get",
    "list_pods",
    "reset",
    "restart",
    "start",
    "stop",
    "strike_pods",
    "terminate",
]

_log = get_logger("sim.operations")

ErrorKind = Literal[
    "unauthorized", "forbidden", "bad_request", "not_found", "capacity", "transient"
]

# RUNPOD_FACTS.md, "Errors as they arrive": RunPod's wordings.
CAPACITY_MESSAGE = (
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again."
)
RESUME_NO_GPUS_MESSAGE = "There are not enough free GPUs on the host machine to start this pod."
NOT_FOUND_TO_TERMINATE = "pod not found to terminate"
SOMETHING_WENT_WRONG = "Something went wrong. Please try again later or contact support."
# REST v1's example error body (RunPod docs, api-reference-v2/migrate-from-v1.mdx).
POD_NOT_FOUND = "Pod not found"
# RUNPOD_FACTS.md: "not found" errors that are not "pod gone".
TEMPLATE_NOT_FOUND = "Template not found"
# runpod-python#297: what a create naming a template id answered.
TEMPLATE_MISLEADING = "There are no longer any instances available with enough disk space."
# Template ids are opaque; the simulator knows only these (RUNPOD_FACTS.md, "Startup as it
# really is": `runpod-torch-v21`, `ppny3n7iri`). No template "vllm" is known to exist.
KNOWN_TEMPLATES = frozenset({"runpod-torch-v21", "ppny3n7iri"})

# GraphQL root field -> operation, so one `field` parameter matches both APIs.
GRAPHQL_OPS: Mapping[str, str] = {
    "podFindAndDeployOnDemand": "create",
    "podRentInterruptable": "create",
    "pod": "get",
    "myself": "list",
    "podResume": "start",
    "podStop": "stop",
    "podTerminate": "terminate",
    "gpuTypes": "catalog",
}


class SimApiError(Exception):
    """A failure of a world operation; each API renders it its own way.

    `page_status`: answer an HTML error page with this HTTP status instead (Cloudflare in
    front of RunPod, RUNPOD_FACTS.md "Errors as they arrive"), on either API.
    `rest_status`: the REST status when it is not the kind's usual one (402, 404, 409).
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        page_status: int | None = None,
        rest_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.page_status = page_status
        self.rest_status = rest_status


@dataclass(frozen=True)
class CreateOrder:
    """A create as either API asked for it: a spec without its GPU, and GPU types to try.

    `spec`'s GPU fields are filled in by `create` from the first GPU type that places.
    """

    spec: PodSpec
    gpu_type_ids: tuple[str, ...]
    min_memory_in_gb: int = 0
    min_vcpu_count: int = 0


# --- access -----------------------------------------------------------------------------
def check_access(world: SimWorld, key: str | None, mutation: bool) -> None:
    """Unknown key: unauthorized. A read-only key may read but not change anything.

    RunPod API keys have "Read Only" permission: "Read access without write access" (RunPod
    docs, get-started/api-keys.mdx).
    """
    settings = world.settings
    if key is not None and key in settings.read_only_keys:
        if mutation:
            raise SimApiError("forbidden", "Unauthorized")
        return
    if key is None or key not in settings.api_keys:
        raise SimApiError("unauthorized", "Unauthorized")


# --- call-level faults (both APIs) ------------------------------------------------------
@dataclass(frozen=True)
class CallFaults:
    """What the call-level faults decided for one request."""

    error: SimApiError | None = None
    slow_seconds: float = 0.0


def _on_targets(targets: Collection[str]) -> Any:
    def matches(params: Mapping[str, Any]) -> bool:
        return not params.get("field") or params["field"] in targets

    return matches


def draw_call_faults(world: SimWorld, targets: Collection[str]) -> CallFaults:
    """Draw `api_error`, `api_slow`, the pod strikes and `api_something_went_wrong`.

    `targets`: the request's operation names and (GraphQL) root fields, for `field`.
    """
    matches = _on_targets(targets)
    api_error = world.faults.draw("api_error", matches)
    if api_error is not None:
        status = int(api_error.spec.params["status"])
        _log.info("fault_fired", fault="api_error", status=status, targets=sorted(targets))
        return CallFaults(SimApiError("transient", SOMETHING_WENT_WRONG, page_status=status))
    slow = world.faults.draw("api_slow", matches)
    seconds = float(slow.spec.params["seconds"]) if slow is not None else 0.0
    strike_pods(world)
    if world.faults.draw("api_something_went_wrong", matches) is not None:
        _log.info("fault_fired", fault="api_something_went_wrong", targets=sorted(targets))
        return CallFaults(SimApiError("transient", SOMETHING_WENT_WRONG), seconds)
    return CallFaults(None, seconds)


def _has_running(world: SimWorld, params: Mapping[str, Any]) -> bool:
    return world.fleet.pick_running(params.get("pod_id")) is not None


def _pick_container(world: SimWorld, pod_id: str | None) -> SimPod | None:
    """The given (or a random) RUNNING pod whose container has not crashed yet."""
    if pod_id:
        pod = world.fleet.pick_running(pod_id)
        return pod if pod is not None and not pod.container_crashed else None
    live = sorted(
        (p for p in world.fleet.live() if p.status == "RUNNING" and not p.container_crashed),
        key=lambda p: p.id,
    )
    return world.rng.choice(live) if live else None


def _has_container(world: SimWorld, params: Mapping[str, Any]) -> bool:
    pod_id = params.get("pod_id")
    if pod_id:
        return _pick_container(world, pod_id) is not None
    return any(p.status == "RUNNING" and not p.container_crashed for p in world.fleet.live())


def strike_pods(world: SimWorld) -> None:
    """Draw `pod_crash`, `container_crash` and `vllm_die`: each firing hits one pod
    (`vllm_die` one whose vLLM serves: podmgr/sim/pods.py `engine_dead`).

    `pod_crash` models RunPod stopping the pod on its own (EXITED without the user asking:
    balance at $0 stops every pod, docs accounts-billing/billing; spot preemption;
    maintenance), not a container crash (that is `container_crash`).
    """
    crash = world.faults.draw("pod_crash", lambda p: _has_running(world, p))
    if crash is not None:
        pod = world.fleet.pick_running(crash.spec.params.get("pod_id"))
        if pod is not None:
            world.fleet.stop(pod, by="runpod")
            _log.info("fault_fired", fault="pod_crash", pod_id=pod.id)
    broken = world.faults.draw("container_crash", lambda p: _has_container(world, p))
    if broken is not None:
        pod = _pick_container(world, broken.spec.params.get("pod_id"))
        if pod is not None:
            pod.container_crashed = True
            _log.info("fault_fired", fault="container_crash", pod_id=pod.id)
    strike_runpod_stops(world)
    die = world.faults.draw("vllm_die", lambda p: _pick_serving(world, p) is not None)
    if die is not None:
        pod = _pick_serving(world, die.spec.params)
        if pod is not None:  # vLLM v0.8.5's V1 engine dies; its API server lives on
            pod.engine_dead = True
            _log.info("fault_fired", fault="vllm_die", pod_id=pod.id)


def _pick_serving(world: SimWorld, params: Mapping[str, Any]) -> SimPod | None:
    """The given (or the first, by id) pod whose vLLM serves with a live engine."""
    now, timings = world.now(), world.settings.timings
    serving = sorted(
        (p for p in world.fleet.live() if p.phase(now, timings) == "serving"), key=lambda p: p.id
    )
    wanted = params.get("pod_id")
    return next((p for p in serving if not wanted or p.id == wanted), None)


# --- reads ------------------------------------------------------------------------------
def get(world: SimWorld, pod_id: str) -> SimPod:
    """A pod that is not terminated; not_found otherwise."""
    pod = world.fleet.get(pod_id)
    if pod is None:
        raise SimApiError("not_found", POD_NOT_FOUND)
    return pod


def list_pods(world: SimWorld) -> list[SimPod]:
    """Pods not terminated and not hidden; the fault `list_error` fails the listing.

    `list_error`: listing pods fails while a single pod's GET still answers: RunPod's
    intermittent "Something went wrong" (runpodctl#45) and 5xx pages (RUNPOD_FACTS.md,
    "Errors as they arrive") strike calls one by one, and the listing is the heaviest.
    """
    fault = world.faults.draw("list_error")
    if fault is not None:
        status = fault.spec.params.get("status")
        _log.info("fault_fired", fault="list_error", status=status)
        raise SimApiError(
            "transient", SOMETHING_WENT_WRONG, page_status=int(status) if status else None
        )
    now = world.now()
    return [pod for pod in world.fleet.live() if pod.hidden_until <= now]


# --- mutations --------------------------------------------------------------------------
def after_apply(world: SimWorld, op: str, pod: SimPod) -> None:
    """Fault `api_error_after_apply`: the change is made, then the answer is an error.

    runpodctl#45 ("Something went wrong" while the pod starts anyway) and
    transformerlab-app#2305 (REST create answering 500 while the pod is created, billing,
    and slow to appear in listings: `hide_seconds`).
    """
    fault = world.faults.draw(
        "api_error_after_apply",
        lambda p: p.get("field") in (None, "", op) and p.get("pod_id") in (None, "", pod.id),
    )
    if fault is None:
        return
    hide = float(fault.spec.params.get("hide_seconds") or 0.0)
    if op == "create" and hide > 0:
        pod.hidden_until = world.now() + hide
    _log.info("fault_fired", fault="api_error_after_apply", op=op, pod_id=pod.id)
    page = 500 if fault.spec.params.get("body") == "html" else None
    raise SimApiError("transient", SOMETHING_WENT_WRONG, page_status=page, rest_status=500)


def _maybe_transient(world: SimWorld, pod: SimPod, status: str) -> None:
    """Fault `transient_status`: the pod shows `status` for a while (see faults.py)."""
    fault = world.faults.draw(
        "transient_status", lambda params: params.get("pod_id") in (None, pod.id)
    )
    if fault is not None:
        pod.show_transient(status, world.now(), float(fault.spec.params["seconds"]))
        _log.info("fault_fired", fault="transient_status", pod_id=pod.id, status=status)


def _placed_spec(order: CreateOrder, gpu_type_id: str) -> PodSpec:
    gpu = find_gpu_type(gpu_type_id)
    if gpu is None:
        # A 400, as REST v2's createPod answers what it cannot place (RUNPOD_FACTS.md). The
        # wording is the simulator's own: real RunPod answered a create naming "NVIDIA RTX
        # 4090" (no such id) with its capacity wording, "There are no longer any instances
        # available" (runpodctl#260, 2026-03-23). So podmgr tells a bad id from no capacity
        # by the catalog (podmgr/runpod/gpu_ids.py), never by this text.
        raise SimApiError("bad_request", f"Invalid GPU type id: {gpu_type_id}")
    spec = order.spec
    if not 1 <= spec.gpu_count <= gpu.max_gpu_count:
        raise SimApiError("bad_request", f"gpuCount must be between 1 and {gpu.max_gpu_count}")
    if (spec.cloud_type == "SECURE" and gpu.secure_price is None) or (
        spec.cloud_type == "COMMUNITY" and gpu.community_price is None
    ):
        raise SimApiError("capacity", CAPACITY_MESSAGE)
    price = price_per_gpu(gpu, spec.cloud_type)
    if spec.interruptible:  # spot: its own price, and not offered on every GPU type
        spot = spot_price(gpu, spec.cloud_type)
        if spot is None:
            raise SimApiError("capacity", CAPACITY_MESSAGE)
        price = spot
    return dataclasses.replace(
        spec,
        gpu_type_id=gpu.id,
        gpu_display_name=gpu.display_name,
        cost_per_hr=round(price * spec.gpu_count, 6),
        memory_in_gb=max(order.min_memory_in_gb, 31 * spec.gpu_count),
        vcpu_count=max(order.min_vcpu_count, 8 * spec.gpu_count),
    )


def _capacity_fault(world: SimWorld, gpu_type_id: str) -> bool:
    fault = world.faults.draw(
        "capacity",
        lambda params: not params.get("gpu_type_ids") or gpu_type_id in params["gpu_type_ids"],
    )
    if fault is not None:
        _log.info("fault_fired", fault="capacity", gpu_type_id=gpu_type_id)
    return fault is not None


def _check_template(world: SimWorld, template_id: str | None) -> None:
    """An unknown template id fails the create; the fault `unknown_template` fails any.

    Without the fault: "Template not found" (RUNPOD_FACTS.md). REST v2 answers it 404
    ("unknown or inaccessible ID -> 404", RunPod REST API v2, CreatePodRequest.templateId).
    """
    if not template_id:
        return
    fault = world.faults.draw("unknown_template")
    if fault is not None:
        _log.info("fault_fired", fault="unknown_template", template_id=template_id)
        if fault.spec.params.get("message") == "not_found":
            raise SimApiError("bad_request", TEMPLATE_NOT_FOUND, rest_status=404)
        raise SimApiError("capacity", TEMPLATE_MISLEADING)
    if template_id not in KNOWN_TEMPLATES:
        raise SimApiError("bad_request", TEMPLATE_NOT_FOUND, rest_status=404)


def _check_balance(world: SimWorld) -> None:
    """At $0 RunPod deploys and starts nothing (podmgr/sim/runpod_stops.py)."""
    if balance_at_zero(world):
        raise SimApiError("bad_request", BALANCE_MESSAGE, rest_status=PAYMENT_REQUIRED)


def create(world: SimWorld, order: CreateOrder) -> SimPod:
    """Place the pod on the first GPU type of `order.gpu_type_ids` that has capacity.

    REST's `gpuTypeIds` is a list RunPod picks among (RunPod OpenAPI v1, PodCreateInput,
    `gpuTypePriority` availability|custom); the simulator tries them in the given order
    for both priorities, so tests are repeatable. No GPU type placed: capacity.
    """
    if not order.gpu_type_ids:
        raise SimApiError("bad_request", "gpuTypeIds must name at least one GPU type")
    if not order.spec.image_name and not order.spec.template_id:
        raise SimApiError("bad_request", "Either imageName or templateId is required")
    _check_balance(world)
    _check_template(world, order.spec.template_id)
    failure: SimApiError | None = None
    for gpu_type_id in order.gpu_type_ids:
        try:
            spec = _placed_spec(order, gpu_type_id)
        except SimApiError as error:
            if error.kind != "capacity":
                raise
            failure = error
            continue
        host_cuda = place_on_host(
            world.settings.host_cuda, spec.allowed_cuda_versions, spec.min_cuda_version
        )
        # A type the catalog shows out of stock places nowhere (`--gpu-stock T=NONE`,
        # podmgr/sim/v2/catalog.py); the `capacity` fault fails a create the catalog
        # calls available ("not a reservation", RunPod REST API v2, createPod).
        out_of_stock = stock_of(world.settings.gpu_stock, spec.gpu_type_id) == "NONE"
        if host_cuda is None or out_of_stock or _capacity_fault(world, spec.gpu_type_id):
            failure = SimApiError("capacity", CAPACITY_MESSAGE)
            continue
        try:
            spec, volume = place_with_volume(world.volumes, spec)
        except VolumeError as error:
            # REST v2: "unknown template or network volume" is 404 (createPod responses).
            missing = str(error) == NETWORK_VOLUME_NOT_FOUND
            raise SimApiError(
                "bad_request", str(error), rest_status=404 if missing else None
            ) from None
        pod = world.fleet.create(spec, volume)
        pod.host_cuda = host_cuda
        pod.image_starts = image_starts_on(host_cuda, world.settings.image_min_cuda)
        _log.info("pod_created", pod_id=pod.id, name=spec.name, gpu=spec.gpu_type_id)
        _maybe_transient(world, pod, "CREATED")
        after_apply(world, "create", pod)
        return pod
    raise failure or SimApiError("capacity", CAPACITY_MESSAGE)


def start(world: SimWorld, pod_id: str, gpu_count: int | None = None) -> SimPod:
    """Resume an EXITED pod (no-op when RUNNING); `resume_no_gpus` may refuse it."""
    pod = get(world, pod_id)
    if pod.status == "EXITED":
        _check_balance(world)
        fault = world.faults.draw(
            "resume_no_gpus", lambda params: params.get("pod_id") in (None, pod.id)
        )
        if fault is not None:
            _log.info("fault_fired", fault="resume_no_gpus", pod_id=pod.id)
            raise SimApiError("capacity", RESUME_NO_GPUS_MESSAGE)
        world.fleet.resume(pod, gpu_count or pod.gpu_count)
        _log.info("pod_resumed", pod_id=pod.id)
        _maybe_transient(world, pod, "RESTARTING")
        after_apply(world, "start", pod)
    return pod


def reset(world: SimWorld, pod_id: str) -> SimPod:
    """REST's reset: a RUNNING pod's container starts again; an EXITED pod is started.

    The document only says "Pod successfully reset" (RunPod OpenAPI v1, ResetPod); the
    simulator reads it as a fresh container on the same host, billing on.
    """
    pod = get(world, pod_id)
    if pod.status == "EXITED":
        return start(world, pod_id)
    world.fleet.reset(pod)
    _log.info("pod_reset", pod_id=pod.id)
    after_apply(world, "reset", pod)
    return pod


def restart(world: SimWorld, pod_id: str) -> SimPod:
    """REST v2's `restart`: "restart a RUNNING pod's container in place" (RunPod REST API
    v2, podAction): a fresh container on the same host, no image pull, billing on."""
    pod = get(world, pod_id)
    world.fleet.reset(pod)
    _log.info("pod_restarted", pod_id=pod.id)
    after_apply(world, "restart", pod)
    return pod


def stop(world: SimWorld, pod_id: str, by: str = "user") -> SimPod:
    """The account (or the pod's own key: `by` "pod") stops its pod: EXITED, billing paused."""
    pod = get(world, pod_id)
    was_running = pod.status == "RUNNING"
    world.fleet.stop(pod, by=by)
    _log.info("pod_stopped", pod_id=pod.id)
    if was_running:
        after_apply(world, "stop", pod)
    return pod


def terminate(
    world: SimWorld, pod_id: str, missing_message: str = POD_NOT_FOUND, by: str = "user"
) -> SimPod:
    """The account (or the pod's own key: `by` "pod") terminates its pod; an unknown or
    terminated one is not_found."""
    pod = world.fleet.get(pod_id)
    if pod is None:
        raise SimApiError("not_found", missing_message)
    world.fleet.terminate(pod, by=by)
    _log.info("pod_terminated", pod_id=pod.id)
    after_apply(world, "terminate", pod)
    return pod
