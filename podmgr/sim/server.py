"""The simulator process: one aiohttp app on one asyncio loop, serving every route.

`build_app(world)` composes the GraphQL API, the REST API v2 (under `/v2`; `/v1` answers
410), the pod URLs and the control routes; `serve(settings, announce)` binds the socket
(port 0 picks a free one), calls `announce` with the three lines scripts read
(`RUNPOD_API_BASE_URL=...`, `POD_URL_TEMPLATE=...`, `RUNPOD_REST_URL=.../v2`), and runs
until SIGINT or SIGTERM. A narrator task writes each pod's log lines as its phases change
(podmgr/sim/narrator.py), every `NARRATE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable

from aiohttp import web

from podmgr.logs import get_logger
from podmgr.sim.api import handle_graphql
from podmgr.sim.control import control_routes
from podmgr.sim.edge import handle_pod_url
from podmgr.sim.narrator import Narrator
from podmgr.sim.podproc import PROCESSES, PodProcesses
from podmgr.sim.v2.logs import NARRATOR
from podmgr.sim.v2.routes import rest_routes
from podmgr.sim.world import WORLD, SimSettings, SimWorld

__all__ = ["announce_lines", "build_app", "serve"]

_log = get_logger("sim.server")
NARRATE_SECONDS = 0.05


def build_app(world: SimWorld) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[WORLD] = world
    app[NARRATOR] = Narrator(world)
    app.add_routes(
        [
            web.post("/graphql", handle_graphql),
            web.route("*", "/pods/{target}", handle_pod_url),
            web.route("*", "/pods/{target}/{tail:.*}", handle_pod_url),
            *rest_routes(),
            *control_routes(),
        ]
    )
    return app


def announce_lines(host: str, port: int) -> list[str]:
    """The lines printed on start-up, for scripts and the test kit."""
    base = f"http://{host}:{port}"
    return [
        f"RUNPOD_API_BASE_URL={base}",
        f"POD_URL_TEMPLATE={base}/pods/{{pod_id}}-{{port}}",
        f"RUNPOD_REST_URL={base}/v2",
    ]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(settings: SimSettings, announce: Callable[[list[str]], None]) -> None:
    """Run the simulator until SIGINT/SIGTERM; `announce` gets the start-up lines."""
    world = SimWorld.create(settings)
    sock = _bind(settings.host, settings.port)
    port = int(sock.getsockname()[1])
    app = build_app(world)
    processes = _pod_processes(app, world, settings, port)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    _log.info("sim_started", host=settings.host, port=port, faults=len(settings.faults))
    announce(announce_lines(host, port))
    loop_task = asyncio.create_task(processes.run_forever()) if processes else None
    narrate_task = asyncio.create_task(_narrate(app[NARRATOR]))
    try:
        await stop.wait()
    finally:
        _log.info("sim_stopping", total_cost_usd=world.fleet.ledger()["total_cost_usd"])
        narrate_task.cancel()
        if loop_task is not None and processes is not None:
            loop_task.cancel()
            processes.close()
        await runner.cleanup()


async def _narrate(narrator: Narrator) -> None:
    while True:
        try:
            narrator.observe()
        except Exception as error:  # one bad tick must not end the loop (STYLE 9)
            _log.error("narrator_tick_failed", error=repr(error))
        await asyncio.sleep(NARRATE_SECONDS)


def _pod_processes(
    app: web.Application, world: SimWorld, settings: SimSettings, port: int
) -> PodProcesses | None:
    """With --run-guards: real processes for guard-run pods (podmgr/sim/podproc.py)."""
    if not settings.run_guards:
        return None
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    processes = PodProcesses(world, f"http://{host}:{port}")
    app[PROCESSES] = processes
    return processes
