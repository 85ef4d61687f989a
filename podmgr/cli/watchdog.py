"""`podmgr watchdog|up|shutdown|status|demo`: the watchdog's commands (what cron runs).

`watchdog` is one reconciler pass (manage_pod.py's flags: --shutdown, --dry-run,
--verbose, --refresh-catalog, plus --start and --config); `shutdown` is the same pass
with a request; `up` runs passes (the first asks for a session) every
`poll_interval_seconds` until the pod serves, printing each pass's phase line; `status`
reads the state file without importing the SDK; `demo` runs everything against the
simulator. The passes' JSON logs go to `watchdog.log` beside the state (the header line
says where), to the terminal only with --verbose. Exit codes are those of podmgr.errors.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podmgr.config import Config
    from podmgr.watchdog.observed import Request

__all__ = ["register", "stdout_to_devnull"]


def register(subparsers: Any) -> None:
    watchdog = subparsers.add_parser(
        "watchdog", help="one watchdog pass (what cron runs; manage_pod.py)"
    )
    _pass_options(watchdog)
    watchdog.add_argument("--start", action="store_true", help="start a session if none is active")
    watchdog.add_argument(
        "--shutdown", action="store_true", help="terminate the pod, end the session, stop the proxy"
    )
    watchdog.add_argument(
        "--refresh-catalog",
        action="store_true",
        help="the same as `podmgr gpus --refresh` (kept for cron lines and habits)",
    )
    watchdog.set_defaults(handler=run_watchdog, request=None)

    up = subparsers.add_parser(
        "up", help="start a session and run passes until the pod serves (Ctrl-C: cron goes on)"
    )
    _pass_options(up)
    up.add_argument(
        "--yes", "-y", action="store_true", help="create without asking (prices are still shown)"
    )
    up.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="with several pods (config `pods`): start only these (default: all)",
    )
    up.set_defaults(handler=run_up, request="start", start=True, shutdown=False)
    up.set_defaults(refresh_catalog=False)

    down = subparsers.add_parser("shutdown", help="terminate the pod and stop the proxy")
    _pass_options(down)
    down.set_defaults(handler=run_watchdog, request="shutdown", start=False, shutdown=True)
    down.set_defaults(refresh_catalog=False)

    status = subparsers.add_parser("status", help="pod, session, cost and proxy, from the state")
    status.add_argument("--config", help="path to pod_config.json")
    status.add_argument("--live", action="store_true", help="also ask RunPod about the pod")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=run_status)

    demo = subparsers.add_parser("demo", help="run the watchdog and proxy on the simulator")
    demo.add_argument("--proxy-port", type=int, default=8000, help="proxy port (default 8000)")
    demo.add_argument("--interval", type=float, default=10.0, help="seconds between passes")
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    demo.add_argument("--runtime", type=int, default=900, help="session length in seconds")
    demo.add_argument("--dir", default=".podmgr/demo", help="where the demo config and state go")
    demo.add_argument("--pull-seconds", type=float, default=2.0, help="simulated image pull")
    demo.add_argument("--load-seconds", type=float, default=3.0, help="simulated model load")
    demo.set_defaults(handler=run_demo)


def _pass_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="path to pod_config.json")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="log each step here (else to watchdog.log)"
    )


def _say(line: str) -> None:
    """Print a line; once stdout is a closed pipe, drop the output and carry on.

    `make run | tee log` then Ctrl-C: tee dies first, and a print raising BrokenPipeError
    aborted the demo's cleanup and left the proxy running (issue 9). A pass whose reader
    went away must finish its work too.
    """
    try:
        print(line, flush=True)
    except BrokenPipeError:
        stdout_to_devnull()


def stdout_to_devnull() -> None:
    """Point fd 1 at /dev/null so later prints and the exit-time flush cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def _logging(args: argparse.Namespace, config: Any) -> str:
    """Logs to the terminal with --verbose, else as JSON lines to the log file (issue 22:
    JSON lines mixed into `up`'s output); what to add to the header line to say where."""
    from podmgr.logs import configure_logging, log_file

    if args.verbose:
        configure_logging("debug")
        return ""
    if args.dry_run:  # changes nothing, not even a log file: only errors, on stderr
        configure_logging("error")
        return ""
    path = log_file(config.state_path)
    try:
        configure_logging(config.watchdog.log_level, file=path)
    except OSError as error:  # a log that cannot be written is no reason to skip a pass
        configure_logging("warning")
        return f"; log: stderr ({path}: {error.strerror})"
    return f"; log {path}"


def run_watchdog(args: argparse.Namespace) -> int:
    from podmgr.config import find_config_path, load_config
    from podmgr.errors import ConfigError

    request: Request = args.request or _request_from_flags(args)
    config = load_config(args.config)
    if args.refresh_catalog:  # an alias of `podmgr gpus --refresh`: not a pass, no header
        if request != "pass":
            raise ConfigError("--refresh-catalog cannot be combined with --start or --shutdown")
        from podmgr.cli.gpus import show_catalog

        return show_catalog(config, refresh=True, as_json=False)
    if request == "start":
        # Refuse before any API call or state write (the log file too). A plain pass does
        # not: it must go on enforcing deadlines where cron lacks a variable the env names.
        config.pod.resolved_env()
    logged = _logging(args, config)
    config_path = find_config_path(args.config).resolve()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    mode = " (dry run)" if args.dry_run else ""
    _say(f"podmgr {request} {stamp} UTC{mode}: config {config_path}{logged}")
    if args.dry_run and request == "start":
        from podmgr.cli.prices import dry_run_lines

        for line in dry_run_lines(config):
            _say(line)
    from podmgr.watchdog.runner import run_pass

    names = _pod_names(config, args)
    result = run_pass(
        config, config_path, request=request, dry_run=args.dry_run, emit=_say, names=names
    )
    if not args.dry_run:
        _summary(result.state)
    return 0


def _pod_names(config: Config, args: argparse.Namespace) -> tuple[str, ...]:
    """`podmgr up NAME...`: the configured pods named (ConfigError, exit 2, for another)."""
    names = tuple(dict.fromkeys(getattr(args, "names", None) or ()))
    for name in names:
        config.pod_entry(name)
    return names


def run_up(args: argparse.Namespace) -> int:
    """Passes until the pod serves; Ctrl-C stops watching and leaves everything running."""
    if args.dry_run:
        return run_watchdog(args)
    from podmgr.config import find_config_path, load_config

    config = load_config(args.config)
    names = _pod_names(config, args)
    for entry in config.pods:  # a missing env reference: refused before any API call or write
        entry.resolved_env()
    _check_saved_catalog(config)  # a GPU id RunPod does not list: exit 2 before anything
    logged = _logging(args, config)
    config_path = find_config_path(args.config).resolve()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    _say(f"podmgr up {stamp} UTC: config {config_path}{logged}")
    from podmgr.cli.prices import confirm_spend

    if not confirm_spend(config, yes=args.yes, emit=_say):
        return 0
    startup = config.startup
    _say(
        f"a new pod has {startup.budget_seconds:.0f}s to serve; checks every "
        f"{startup.poll_interval_seconds:g}s after the first {startup.initial_wait_seconds:g}s"
    )
    from podmgr.watchdog.readiness import probe_health
    from podmgr.watchdog.runner import run_until_serving

    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, _stop_after_this_pass(stop))
    try:
        result = run_until_serving(
            config, config_path, emit=_say, stop=stop, probe=probe_health, names=names
        )
    except KeyboardInterrupt:
        _say("stopped watching; the pod and the session are left as they are, and cron keeps")
        _say(f"watching them (`{_cmd('status')}`; `{_cmd('shutdown')}` ends them)")
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    _summary(result.state)
    if result.error is not None:
        raise result.error
    if not result.serving:  # it served, and its session has since ended normally
        _say(_served_then_ended(config, result.state))
        return 0
    _say(_guard_said(config, result.state))
    _say(_proxy_log_said(config))
    behind = _proxy_behind(config, result.state)
    if behind is not None:
        _say(behind)
    from podmgr.cli.serving import serving_lines

    for line in serving_lines(result.url, config):
        _say(line)
    return 0


def _proxy_behind(config: Any, state: Any) -> str | None:
    """What to say when the proxy does not route to the serving pod (each ready pod of a
    set) within PROXY_CATCH_UP_SECONDS (it reads the state on its own schedule), or None."""
    from podmgr.watchdog.proxy_probe import proxy_serves, proxy_serves_pods

    if len(config.pods) > 1:
        ready = {name: r.id for name, r in state.pods.items() if r.phase == "ready"}
        if proxy_serves_pods(config, ready, PROXY_CATCH_UP_SECONDS):
            return None
        return (
            f"the proxy has not picked up every pod ({', '.join(sorted(ready))}) yet; "
            f"`{_cmd('status')}` shows when"
        )
    pod = state.pod
    if pod is None or proxy_serves(config, pod.id, PROXY_CATCH_UP_SECONDS):
        return None
    return f"the proxy has not picked up pod {pod.id} yet; `{_cmd('status')}` shows when"


def _check_saved_catalog(config: Any) -> None:
    """The config's GPU ids against the catalog `--refresh-catalog` saved, when there is
    one (a file read: cheap). Without it, a pass's create reads the catalog anyway and a
    refused create ends the session (podmgr/watchdog/apply.py)."""
    from podmgr.cli.catalog import catalog_path, check_every_pod, saved_catalog

    catalog = saved_catalog(config)
    if catalog is not None:
        check_every_pod(config, catalog, f"saved at {catalog_path(config)}")


def _served_then_ended(config: Any, state: Any) -> str:
    """`up`'s last line when cron passes saw the pod serve and its session end meanwhile."""
    reason = state.session.end_reason if state.session is not None else "?"
    again = (
        "the next request to the proxy wakes a new one (wake_on_request)"
        if config.limits.wake_on_request
        else f"`{_cmd('up')}` starts a new one"
    )
    return f"the pod served; its session has since ended ({reason}): {again}"


def _stop_after_this_pass(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    """A SIGINT handler: the first Ctrl-C lets the running pass finish (it may be between
    a create and the state's save), a second one interrupts at once."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        _say("Ctrl-C: stopping once this pass is done (Ctrl-C again to stop at once)")

    return handler


def _request_from_flags(args: argparse.Namespace) -> Request:
    from podmgr.errors import ConfigError

    if args.start and args.shutdown:
        raise ConfigError("--start and --shutdown exclude each other")
    return "shutdown" if args.shutdown else "start" if args.start else "pass"


PROXY_CATCH_UP_SECONDS = 15.0


def _guard_said(config: Any, state: Any) -> str:
    """Whether the pod's own guard holds the limits (podmgr/guard/check.py), plainly."""
    from podmgr.guard.check import guard_status

    seen = guard_status(config, state)
    if seen["confirmed"] is False:
        return f"guard: OFF in this pod: {seen['why']}"
    if seen["confirmed"]:
        return "guard: running in the pod (its armed line is in the pod's log)"
    return f"guard: not confirmed yet ({seen['why']}); the next passes read the pod's log"


def _cmd(words: str) -> str:
    """A command as the user can paste it (`podmgr ...`, or this venv's script's path)."""
    from podmgr.cli.options import hint

    return hint(words)


def _proxy_log_said(config: Any) -> str:
    from podmgr.watchdog.proxy_probe import proxy_log_path

    return f"proxy log: {proxy_log_path(config)} (the pod's own: `{_cmd('logs')}`)"


def _summary(state: Any) -> None:
    from podmgr.session_cost import session_cost, usd

    session, pod = state.session, state.pod
    now = time.time()
    cost = usd(session_cost(state, now))  # the figure `status` and the dashboard show
    if session is not None and session.active:
        left = max(0.0, session.deadline - now)
        where = f"pod {pod.id} {pod.phase} at {pod.endpoint_url}" if pod else "no pod"
        _say(f"session active: {where}; {left:.0f}s left; cost so far {cost}")
    elif session is not None:
        _say(f"session ended ({session.end_reason}); cost {cost}")


def run_status(args: argparse.Namespace) -> int:
    from podmgr.cli.status import add_live, format_status, status_report
    from podmgr.config import load_config

    config = load_config(args.config)
    report = status_report(config)
    if args.live:
        add_live(config, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in format_status(report, config, args.config):
            print(line)
    return 0


def _check_demo_args(args: argparse.Namespace) -> None:
    """Exit 2 naming the flag, before anything starts (argparse only checks the types)."""
    import math

    from podmgr.errors import ConfigError

    def positive(value: float) -> bool:
        return math.isfinite(value) and value > 0

    problems = [
        ("--proxy-port", 1 <= args.proxy_port <= 65535, "must be 1..65535"),
        ("--interval", positive(args.interval), "must be a number > 0"),
        ("--duration", args.duration is None or positive(args.duration), "must be > 0"),
        ("--runtime", args.runtime >= 1, "must be >= 1"),
        ("--pull-seconds", args.pull_seconds == 0 or positive(args.pull_seconds), "must be >= 0"),
        ("--load-seconds", args.load_seconds == 0 or positive(args.load_seconds), "must be >= 0"),
    ]
    for flag, ok, rule in problems:
        if not ok:
            raise ConfigError(rule, field=flag)


def run_demo(args: argparse.Namespace) -> int:
    from podmgr.cli.demo import DemoOptions
    from podmgr.cli.demo import run_demo as demo

    _check_demo_args(args)
    options = DemoOptions(
        proxy_port=args.proxy_port,
        interval=args.interval,
        duration=args.duration,
        runtime=args.runtime,
        directory=args.dir,
        pull_seconds=args.pull_seconds,
        load_seconds=args.load_seconds,
    )
    code: int = demo(options, emit=_say, python=sys.executable)
    return code
