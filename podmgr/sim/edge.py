"""Pod URLs: `/pods/{pod_id}-{port}/{path}` behaves like `https://{pod_id}-{port}.proxy.runpod.net/{path}`.

The edge is RunPod's HTTP proxy in front of the pod: an HTML 502 while nothing listens
(unknown, stopped or terminated pod, port not exposed, image pulling, model loading, vLLM
failing to start, vLLM dead except for its own `/health` 503), an HTML 524 when the pod's
answer does not start within `edge_timeout_seconds` (a stream that has started is never
cut).

A pod run as a real process (`--run-guards`, podmgr/sim/podproc.py) has its stand-in vLLM
(podmgr/sim/standin_vllm.py) on localhost, with the middlewares its command line gives
(the guard's: podmgr/guard/guard.py): every request goes there first, and only one that
its middlewares let through to vLLM's routes is answered by the simulated vLLM here
(`serve_vllm`); the others are the stand-in's answer (a 401 from the guard's middleware,
the lease, `/health`, `/metrics`). A request refused there never reached vLLM.

A V1 engine that died (fault `vllm_die`, vLLM v0.8.5): the API server still answers
`/health` (200) and the routes that do not need the engine; the first request that does
gets a 500 with no body (launcher.py's EngineDeadError handler), and the server shuts
down: the container exits and RunPod restarts it (`SimPod.restart_after_exit`). The upstream
faults act here: `upstream_error` (an OpenAI-shaped error from the pod), `upstream_stall`
(the answer starts late), `upstream_drop` (the connection is cut: after the first events
of a stream, half-way through a JSON body). They match requests whose path starts with
their `path_prefix` (default "/v1/"), on their `pod_id` if given. `upstream_slow` makes
the simulated vLLM generate at `seconds` per token instead of `--token-delay`.

A client that hangs up before its answer ended abandons it: the pod stops working on it
(vLLM aborts a request whose client disconnected: `with_cancellation` and the streaming
generators in vllm/entrypoints; we assume RunPod's edge passes the hang-up on, as an HTTP
proxy closing its upstream connection does). Every request and its outcome is counted in
the pod's traffic (podmgr/sim/traffic.py), which the proxy's tests read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from podmgr.logs import get_logger
from podmgr.sim.faults import Fault
from podmgr.sim.pods import SimPod
from podmgr.sim.reply import PASS_HEADER, Reply, cloudflare_page, vllm_error
from podmgr.sim.traffic import PodTraffic, RequestRecord, body_text
from podmgr.sim.vllm import ENGINE_PATHS, serve_vllm
from podmgr.sim.vllm_metrics import render_metrics
from podmgr.sim.world import WORLD, SimWorld

__all__ = ["handle_pod_url"]

_DROP_AFTER_EVENTS = 2
# Request headers passed on to a pod's own process (what its middlewares may read).
_LOCAL_HEADERS = frozenset({"authorization", "content-type", "accept"})
# How often a pending answer checks whether its client is still connected.
_HANG_UP_POLL_SECONDS = 0.02
_log = get_logger("sim.edge")


def _html(status: int) -> web.Response:
    reason = "A timeout occurred" if status == 524 else None
    return web.Response(
        text=cloudflare_page(status), status=status, reason=reason, content_type="text/html"
    )


def _find_pod(world: SimWorld, target: str) -> SimPod | None:
    """The pod addressed by "{pod_id}-{port}", if it exposes that port over HTTP."""
    pod_id, _, port = target.rpartition("-")
    pod = world.fleet.get(pod_id)
    if pod is None or not port.isdigit():
        return None
    exposed = any(p.number == int(port) and p.type == "http" for p in pod.spec.ports)
    return pod if exposed else None


def _upstream_fault(world: SimWorld, name: str, pod: SimPod, path: str) -> Fault | None:
    def matches(params: Mapping[str, Any]) -> bool:
        prefix = str(params.get("path_prefix") or "/v1/")
        return params.get("pod_id") in (None, pod.id) and path.startswith(prefix)

    fault = world.faults.draw(name, matches)
    if fault is not None:
        _log.info("fault_fired", fault=name, pod_id=pod.id, path=path)
    return fault


def _authorized(pod: SimPod, request: web.Request) -> bool | None:
    key = pod.vllm_api_key
    return None if not key else request.headers.get("Authorization") == f"Bearer {key}"


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _unless_client_leaves(request: web.Request, work: asyncio.Task[Reply]) -> Reply | None:
    """The reply once `work` is done; None (and `work` cancelled) if the client hung up first.

    aiohttp does not cancel a handler whose client left (handler_cancellation is off, and
    must stay off for the GraphQL API: a create whose client timed out still happens, as on
    RunPod), so the pod's answer watches the connection itself.
    """
    while not work.done():
        if _client_gone(request):
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            return None
        await asyncio.wait({work}, timeout=_HANG_UP_POLL_SECONDS)
    return work.result()


async def handle_pod_url(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    path = "/" + request.match_info.get("tail", "")
    pod = _find_pod(world, request.match_info["target"])
    if pod is None:
        return _html(502)
    traffic = world.traffic_of(pod.id)
    record = traffic.receive(request.method, path, request.query_string, _authorized(pod, request))
    phase = pod.phase(world.now(), world.settings.timings)
    if world.container_down(pod.id):  # a guard-run pod whose process is not up (podproc.py)
        phase = "pulling"
    if phase == "dead" and path == "/health":
        traffic.answered(record, 503, "not_serving")
        return web.Response(status=503)
    if phase not in ("serving", "engine_dead"):
        traffic.answered(record, 502, "not_serving")
        return _html(502)
    body = await request.read()
    record.body = body_text(body)
    local = world.local_vllm_url(pod.id)
    if local is not None:  # the pod's own process and its middlewares come first
        record.admitted = False
        answer = await _from_local(local, request, path, body)
        if answer is not None:
            traffic.answered(record, answer.status)
            return answer
        record.admitted = True
    if phase == "engine_dead" and path in ENGINE_PATHS:
        traffic.answered(record, 500)
        pod.restart_after_exit(world.now(), world.settings.timings, 0, "engine_dead")
        _log.info("vllm_exited", pod_id=pod.id, why="engine dead")
        return web.Response(status=500)
    error = _upstream_fault(world, "upstream_error", pod, path)
    stall = _upstream_fault(world, "upstream_stall", pod, path)
    drop = _upstream_fault(world, "upstream_drop", pod, path)
    slow = _upstream_fault(world, "upstream_slow", pod, path)
    token_delay = float(slow.spec.params["seconds"]) if slow else world.settings.token_delay

    async def pod_answer() -> Reply:
        if stall is not None:
            await asyncio.sleep(float(stall.spec.params["seconds"]))
        if error is not None:
            status = int(error.spec.params["status"])
            return vllm_error("Simulated upstream error", status, kind="InternalServerError")
        return await serve_vllm(
            pod, request.method, path, request.headers, body, token_delay,
            lambda: render_metrics(pod, traffic),
        )  # fmt: skip

    timed = asyncio.wait_for(pod_answer(), world.settings.edge_timeout_seconds)
    try:
        reply = await _unless_client_leaves(request, asyncio.ensure_future(timed))
    except TimeoutError:
        traffic.answered(record, 524, "edge_timeout")
        return _html(524)
    if reply is None:
        traffic.abandoned(record)
        _log.debug("client_disconnected", path=request.path)
        return web.Response(status=499)  # never sent: the connection is gone
    if drop is not None:
        traffic.answered(record, reply.status, "cut")
        return await _send_cut(request, reply)
    traffic.answered(record, reply.status)
    if reply.stream is None:
        return web.Response(
            body=reply.body, status=reply.status, content_type=reply.content_type,
            headers=reply.headers,
        )  # fmt: skip
    return await _send_stream(request, reply, traffic, record)


async def _from_local(
    local: str, request: web.Request, path: str, body: bytes
) -> web.Response | None:
    """The pod's own process's answer (podmgr/sim/podproc.py), or None when its
    middlewares let the request through to vLLM's routes (the simulated vLLM answers)."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in _LOCAL_HEADERS}
    url = local + path + (f"?{request.query_string}" if request.query_string else "")
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, url, data=body, headers=headers) as answer,
        ):
            if answer.headers.get(PASS_HEADER):
                return None
            return web.Response(
                body=await answer.read(), status=answer.status,
                content_type=answer.content_type,
            )  # fmt: skip
    except aiohttp.ClientError:
        return _html(502)


async def _send_stream(
    request: web.Request, reply: Reply, traffic: PodTraffic, record: RequestRecord
) -> web.StreamResponse:
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    response.content_type = reply.content_type
    await response.prepare(request)
    assert reply.stream is not None
    try:
        async for chunk in reply.stream:
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        traffic.abandoned(record)  # the stream stops here: no more tokens are generated
        _log.debug("client_disconnected", path=request.path)
    return response


async def _send_cut(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Start the answer, then cut the connection before it completes."""
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    response.content_type = reply.content_type
    try:
        if reply.stream is None:
            response.content_length = len(reply.body)
            await response.prepare(request)
            await response.write(reply.body[: len(reply.body) // 2])
        else:
            await response.prepare(request)
            sent = 0
            async for chunk in reply.stream:
                await response.write(chunk)
                sent += 1
                if sent >= _DROP_AFTER_EVENTS:
                    break
    except ConnectionError:
        _log.debug("client_disconnected", path=request.path)
    if request.transport is not None:
        request.transport.abort()
    return response
