"""`podmgr logs [--follow] [--system] [--tail N]`: the current pod's own log, as RunPod keeps it.

Reads RunPod's `GET /v2/pods/{id}/logs` (Server-Sent Events; RunPod OpenAPI v2,
getPodLogs) for the state's pod: vLLM's output (`container` lines), and with `--system`
the host's lines too (image pull, container start and exit). Without `--follow` it prints
the last `--tail` lines and exits; with it, it follows the pod until RunPod ends the stream
(the pod terminated) or Ctrl-C, and a dropped stream is picked up where it left off
(`Last-Event-ID`), after a pause that grows to 10 s, as an EventSource reconnects.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

__all__ = ["register"]

RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 10.0
# Reconnections in a row without a line in between before it gives up.
RECONNECT_ATTEMPTS = 30


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="the pod's own log (vLLM's output; --system: the host's lines too)",
        description="Print the current pod's log from RunPod (GET /v2/pods/{id}/logs); "
        "--follow keeps printing until the pod ends, reconnecting where it left off.",
    )
    parser.add_argument("--config", help="path to pod_config.json")
    parser.add_argument("--follow", "-f", action="store_true", help="keep following the log")
    parser.add_argument(
        "--system", action="store_true", help="also RunPod's own lines (image pull, restarts)"
    )
    parser.add_argument(
        "--tail", type=int, default=100, metavar="N", help="lines of history first (0..5000)"
    )
    parser.set_defaults(handler=run_logs)


def run_logs(args: argparse.Namespace) -> int:
    from podmgr.cli.options import podmgr_command
    from podmgr.config import load_config
    from podmgr.errors import ConfigError, PodmgrError
    from podmgr.state import StateStore

    if not 0 <= args.tail <= 5000:  # the document's bounds (components.parameters.LogTail)
        raise ConfigError(f"--tail {args.tail}: expected 0 to 5000")
    config = load_config(args.config)
    state = StateStore(config.state_path).peek()
    if state is None or state.pod is None:
        raise PodmgrError(f"no pod in the state file: `{podmgr_command()} up` starts one")
    return _print_log(state.pod.id, follow=args.follow, system=args.system, tail=args.tail)


def _print_log(pod_id: str, *, follow: bool, system: bool, tail: int) -> int:
    import os

    from podmgr.errors import PodGoneError, TransientApiError
    from podmgr.runpod.rest import LOG_IDLE_SECONDS, RestApi

    api = RestApi(os.environ.get("RUNPOD_API_KEY", ""))
    after: str | None = None
    pause, failures = RECONNECT_FIRST_SECONDS, 0
    try:
        while True:
            try:
                for line in api.follow_logs(
                    pod_id,
                    after=after,
                    source=None if system else "container",
                    tail=tail,
                    idle_seconds=None if follow else LOG_IDLE_SECONDS,
                    max_seconds=None,
                ):
                    print(_shown(line.ts, line.source, line.line, system), flush=True)
                    after, pause, failures = line.id, RECONNECT_FIRST_SECONDS, 0
            except TransientApiError as error:
                if not follow or failures >= RECONNECT_ATTEMPTS:
                    raise
                failures += 1
                print(
                    f"podmgr: log stream dropped ({error.message}); reconnecting", file=sys.stderr
                )
                time.sleep(pause)
                pause = min(pause * 2, RECONNECT_MAX_SECONDS)
                continue
            if not follow:
                return 0
            if api.get_pod(pod_id) is None:  # the stream ended with the pod
                print(f"podmgr: pod {pod_id} is gone", file=sys.stderr)
                return 0
            time.sleep(pause)  # the stream ended, the pod lives on: pick it up again
    except PodGoneError:
        print(f"podmgr: pod {pod_id} is gone", file=sys.stderr)
        return 0
    finally:
        api.close()


def _shown(ts: str, source: str, line: str, system: bool) -> str:
    clock = ts[11:19] if len(ts) >= 19 else ts
    return f"{clock} {source:<9} {line}" if system else f"{clock} {line}"
