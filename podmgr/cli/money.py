"""`podmgr history` and `podmgr cost`: what the sessions cost, from the history file.

The records are written by the watchdog (podmgr/history.py); this module reads them, reads
RunPod's `GET /billing/pods` for `cost` where it can, and prints; the report itself is
decided in podmgr/costs.py. Lines of the file that do not parse are reported on stderr,
never fatal. `podmgr cost simulate` lives in podmgr/cli/cost_simulate.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import TYPE_CHECKING, Any

__all__ = ["parse_since", "register"]

if TYPE_CHECKING:
    from podmgr.config import Config
    from podmgr.costs import CostReport
    from podmgr.history import SessionRecord

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(subparsers: Any) -> None:
    history = subparsers.add_parser("history", help="the sessions that ended, with their cost")
    history.add_argument("--config", help="path to pod_config.json")
    history.add_argument("--since", default="7d", help="how far back: 90s, 30m, 12h, 7d")
    history.add_argument("--json", action="store_true", help="one JSON object")
    history.set_defaults(handler=run_history)

    cost = subparsers.add_parser(
        "cost",
        help="what the sessions cost, beside RunPod's own billing",
        description=(
            "Sum the sessions of the history (and the running one) by UTC day, GPU type, "
            "session, configured pod (`pods`) or model. With RUNPOD_API_KEY set, RunPod's "
            "GET /billing/pods for the same pods is shown beside podmgr's figure, with the "
            "difference."
        ),
    )
    cost.add_argument("--config", help="path to pod_config.json")
    cost.add_argument("--since", default="30d", help="how far back: 90s, 30m, 12h, 30d")
    cost.add_argument(
        "--by", choices=("day", "gpu", "session", "pod", "model"), default="day"
    )  # podmgr/costs.py GROUPINGS (not imported: this module stays standard library)
    cost.add_argument("--json", action="store_true", help="one JSON object")
    cost.add_argument(
        "--no-runpod", action="store_true", help="do not read RunPod's billing (offline)"
    )
    cost.set_defaults(handler=run_cost)
    from podmgr.cli import cost_simulate

    cost_simulate.register(cost.add_subparsers(dest="cost_command", metavar="{simulate}"))


def parse_since(text: str) -> float:
    """Seconds in '7d', '12h', '30m', '90s' (ConfigError naming --since otherwise)."""
    from podmgr.errors import ConfigError

    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match is None:
        raise ConfigError(f"--since {text!r}: expected a number and s, m, h or d (e.g. 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_history(args: argparse.Namespace) -> int:
    from podmgr.config import load_config
    from podmgr.history import history_path, read_history

    since = time.time() - parse_since(args.since)
    config = load_config(args.config)
    records, problems = read_history(history_path(config.state_path), since=since)
    for problem in problems:
        print(f"podmgr: history: {problem}", file=sys.stderr)
    if args.json:
        total = sum(record.cost_usd for record in records)
        sessions = [record.model_dump() for record in records]
        print(json.dumps({"sessions": sessions, "total_usd": round(total, 6)}, indent=2))
        return 0
    for record in records:
        start = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.started_at))
        gpus = ", ".join(pod.label for pod in record.pods) or "-"
        hours = (record.ended_at - record.started_at) / 3600
        print(
            f"{start}  {record.session_id or '-':12}  {hours:6.2f} h  ${record.cost_usd:8.4f}  "
            f"{record.ended_why}  {gpus}"
        )
    print(f"{len(records)} sessions, ${sum(r.cost_usd for r in records):.4f}")
    return 0


def run_cost(args: argparse.Namespace) -> int:
    from podmgr.config import load_config
    from podmgr.costs import build_report
    from podmgr.history import history_path, read_history

    now = time.time()
    since = now - parse_since(args.since)
    config = load_config(args.config)
    path = history_path(config.state_path)
    everything, problems = read_history(path)
    for problem in problems:
        print(f"podmgr: history: {problem}", file=sys.stderr)
    records = [record for record in everything if record.ended_at >= since]
    running = _running_session(config, now)
    if running is not None:
        records.append(running)
    known = {pod.id for record in everything for pod in record.pods}
    runpod, error = (
        (None, "not read (--no-runpod)") if args.no_runpod else _runpod_billing(records, since)
    )
    report = build_report(
        records,
        args.by,
        runpod=runpod,
        known_pods=known,
        runpod_error=error,
        running=running is not None,
        models={entry.name: entry.model for entry in config.pods},
    )
    if args.json:
        print(json.dumps(report.as_json(since), indent=2))
    else:
        _print_report(report, since)
    return 0


def _running_session(config: Config, now: float) -> SessionRecord | None:
    """The state's session, if it is still running, as a record up to now."""
    from podmgr.history import session_record
    from podmgr.state import StateStore

    state = StateStore(config.state_path).peek()
    if state is None or state.session is None or not state.session.active:
        return None
    return session_record(state, now)


def _runpod_billing(
    records: list[SessionRecord], since: float
) -> tuple[dict[str, float] | None, str | None]:
    """RunPod's amount per pod since the earliest session start, or why it is missing."""
    from podmgr.runpod.billing import billed_by_pod

    return billed_by_pod(min([since, *(record.started_at for record in records)]))


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _print_report(report: CostReport, since: float) -> None:
    from podmgr.state import ONE_POD

    day = time.strftime("%Y-%m-%d %H:%M", time.gmtime(since))
    print(
        f"since {day} UTC, by {report.by}"
        + (" (includes the running session)" if report.running else "")
    )
    # pods by name (config `pods`) as a last column; a one-pod history prints as before
    named = any(name != ONE_POD for group in report.groups for name in group.pod_names)
    width = 20
    if report.by in ("pod", "model"):  # a model's name is often longer than 20
        width = max([width, *(len(group.key) for group in report.groups)])
    print(
        f"{'':{width}}  {'podmgr':>10}  {'RunPod':>10}  {'difference':>10}  sessions"
        + ("  pods" if named else "")
    )
    for group in report.groups:
        diff = None if group.runpod_usd is None else group.podmgr_usd - group.runpod_usd
        print(
            f"{group.key:{width}}  {_money(group.podmgr_usd):>10}  "
            f"{_money(group.runpod_usd):>10}  {_money(diff):>10}  {len(group.sessions)}"
            + (f"  {', '.join(group.pod_names)}" if named else "")
        )
    total_diff = (
        None if report.runpod_total_usd is None else report.total_usd - report.runpod_total_usd
    )
    print(
        f"{'total':{width}}  {_money(report.total_usd):>10}  "
        f"{_money(report.runpod_total_usd):>10}  {_money(total_diff):>10}"
    )
    if report.runpod_error is not None:
        print(f"RunPod's billing: {report.runpod_error}")
    for pod_id, amount in report.runpod_other_pods.items():
        print(f"RunPod also bills pod {pod_id} ({_money(amount)}), not one of podmgr's sessions")
