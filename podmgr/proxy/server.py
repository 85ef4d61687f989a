"""Run the proxy in the foreground with uvicorn (uvloop, httptools) until SIGTERM/SIGINT.

The protocol is uvicorn's httptools one with a response's writes sent together and one
keep-alive timer per connection (`protocol.py`).

Before serving, the garbage collector is told what the proxy is like
(`quiet_garbage_collector`): what was built at start-up lives as long as the process, and a
request's objects die with it (no cycles on the hot path; tests/proxy/test_proxy_gc.py). With
Python's defaults a collection of the youngest objects ran every 700 allocations, found the
objects of the 32 requests under way alive each time, and moved them on until a full
collection of the whole heap ran every few thousand requests: 15 us of a pass-through's
110 us under load (`docs/bench.md`).

uvicorn re-raises the signal that stopped it once it has shut down; the watchdog and the
contract expect a clean exit 0 instead, so the runner installs its own handlers that ask
the server to stop (and which uvicorn then restores and "re-raises" harmlessly).
"""

from __future__ import annotations

import gc
import signal
from pathlib import Path
from types import FrameType

import uvicorn

from podmgr.config import Config
from podmgr.logs import configure_logging, get_logger
from podmgr.proxy.app import create_app
from podmgr.proxy.protocol import ProxyProtocol

__all__ = ["quiet_garbage_collector", "run_proxy"]

# Allocations between collections of the youngest generation (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000

log = get_logger("proxy.server")


def _uvicorn_config(config: Config, config_path: Path | None = None) -> uvicorn.Config:
    ssl: dict[str, str] = {}
    if config.proxy.use_https and config.proxy.ssl_cert and config.proxy.ssl_key:
        ssl = {
            "ssl_certfile": str(config.resolve_path(config.proxy.ssl_cert)),
            "ssl_keyfile": str(config.resolve_path(config.proxy.ssl_key)),
        }
    return uvicorn.Config(
        create_app(config, config_path=config_path),
        host=config.proxy.host,
        port=config.proxy.port,
        loop="uvloop",
        http=ProxyProtocol,  # httptools, a response in one write (protocol.py)
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # nothing sits in front of us; X-Forwarded-* is not trusted
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=5,
        **ssl,  # type: ignore[arg-type]
    )


def quiet_garbage_collector() -> None:
    """Collect once, set what exists now (modules, the app, the config) aside for good
    (`gc.freeze`), and collect the youngest objects every `GC_YOUNG_THRESHOLD` allocations
    rather than every 700 (module docstring). Cyclic garbage still is collected, later."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)


def run_proxy(config: Config, config_path: Path | None = None) -> int:
    """Serve until SIGTERM or SIGINT; 0 on a clean stop. `config_path`: the config file,
    for a wake on request's `podmgr up`."""
    configure_logging(config.watchdog.log_level)
    server = uvicorn.Server(_uvicorn_config(config, config_path))

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    log.info("proxy_listening", url=config.proxy.url)
    quiet_garbage_collector()
    server.run()
    if not server.started:
        log.error("proxy_failed_to_start", url=config.proxy.url)
        return 10
    log.info("proxy_stopped")
    return 0
