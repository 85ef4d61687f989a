"""`podmgr doctor`: one short paid run that shows what only a real RunPod account can.

Prints one line per step (ok/FAILED, what it found, seconds since start, dollars billed so
far) as it goes, or one JSON object with `--json`. Before spending it prints the most the
run can cost and asks `proceed? [y/N]` on a terminal; `--yes` skips the question, and
without a terminal `--yes` is required (exit 2). Exit 0 when every step passed, 1 when one
failed (RunPod passing the start-command JSON literally is a failure: the guard cannot run
in pods), otherwise the error's own code (3 key rejected, 4 no GPU, 11 balance at $0, 2 bad
input). The work is podmgr/doctor/.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podmgr.doctor import Step

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check a real RunPod account end to end, for a few cents",
        description="Key and rate limit, GPU catalog, a guarded pod serving a 0.5B model, "
        "one answer through the local proxy, the guard ending the idle pod, and the cost. "
        "States the most it can spend first; terminates every pod it made, whatever happens.",
    )
    parser.add_argument("--config", help="path to pod_config.json")
    parser.add_argument("--yes", action="store_true", help="spend without asking")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument(
        "--deadline-minutes", type=float, default=20.0,
        help="hard limit of the pods' life; the bound is price x this (default %(default)g)",
    )  # fmt: skip
    parser.add_argument(
        "--idle-seconds", type=int, default=120,
        help="the guard's idle limit in the test pod (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--max-usd", type=float, default=None,
        help="refuse to start when the bound is above this many dollars",
    )  # fmt: skip
    parser.add_argument(
        "--startup-minutes", type=float, default=20.0,
        help="how long a pod has to serve after its create (default %(default)g)",
    )  # fmt: skip
    parser.add_argument(
        "--poll-seconds", type=float, default=10.0,
        help="seconds between looks at RunPod and the pod (default %(default)g)",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def _check_numbers(args: argparse.Namespace) -> None:
    from podmgr.errors import ConfigError

    for flag in ("deadline_minutes", "startup_minutes", "poll_seconds", "max_usd"):
        value = getattr(args, flag)
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise ConfigError("must be a number > 0", field="--" + flag.replace("_", "-"))
    if args.idle_seconds < 1:
        raise ConfigError("must be 1 or more", field="--idle-seconds")


def _line(step: Step) -> str:
    mark = "ok" if step.ok else "FAILED"
    return f"{mark:<6} {step.name:<8} {step.found}  [{step.seconds:.0f}s, ${step.billed_usd:.4f}]"


def _ask(question: str, to_stderr: bool) -> bool:
    out = sys.stderr if to_stderr else sys.stdout
    print(f"doctor will create {question}: proceed? [y/N] ", end="", file=out, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM as KeyboardInterrupt: the `finally` that terminates doctor's pods
    runs either way. SIGINT is set again, and both are unblocked, because a process started
    with SIGINT ignored or blocked inherits that (a shell's background job; a parent that
    shields itself): doctor spends money, so an interrupt must always reach its clean-up."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def run(args: argparse.Namespace) -> int:
    from podmgr.config import find_config_path, load_config
    from podmgr.doctor import Doctor, DoctorOptions
    from podmgr.errors import ConfigError
    from podmgr.logs import configure_logging, log_file

    _check_numbers(args)
    if not args.yes and not sys.stdin.isatty():
        raise ConfigError(
            "doctor spends money and no terminal is there to ask: pass --yes to agree to "
            "the bound it prints",
            field="--yes",
        )
    config = load_config(args.config)
    try:  # JSON log lines to the log file, not among the steps (issue 22)
        configure_logging(config.watchdog.log_level, file=log_file(config.state_path))
    except OSError:
        configure_logging("warning")
    config.pod.resolved_env()  # refuse a missing env reference before any API call
    options = DoctorOptions(
        config=config,
        config_path=find_config_path(args.config).resolve(),
        deadline_seconds=args.deadline_minutes * 60,
        idle_seconds=args.idle_seconds,
        startup_seconds=args.startup_minutes * 60,
        max_usd=args.max_usd,
        poll_seconds=args.poll_seconds,
    )

    def emit(step: Step) -> None:
        if not args.json:
            print(_line(step), flush=True)

    def confirm(question: str) -> bool:
        return True if args.yes else _ask(question, args.json)

    _interrupt_on_signals()
    report = Doctor(options, confirm=confirm, emit=emit).run()
    if args.json:
        print(json.dumps(report.to_json()))
    if report.error is not None:
        raise report.error
    return report.exit_code
