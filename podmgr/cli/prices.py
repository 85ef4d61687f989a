"""Prices before paying: the GPU catalog's one source, and what a session may cost.

One place answers "what does this GPU type cost per hour" for `podmgr gpus`, `podmgr init`,
`podmgr up` (its lines before the first create, and `--dry-run`) and `cost simulate`:
the catalog saved as `catalog.json` beside the state file (by `podmgr gpus --refresh`, or
by any command below that had to read RunPod), else RunPod's catalog read with
`RUNPOD_API_KEY` (and then saved). A session's worst case is its runtime times the
dearest GPU type it may get (a create falls back through the list) times `gpu_count`,
capped by the budget: the guard and every pass end the session at whichever comes first.

`should_ask` is the pure decision whether `up` asks "Create the pod? [y/N]": only a person
at a terminal is asked; cron, the proxy's wake and pipes never are.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podmgr.config import Config, PodSection
from podmgr.errors import AuthError, ConfigError, PodmgrError
from podmgr.runpod.placement import clouds_of
from podmgr.runpod.values import GpuType

__all__ = [
    "Catalog",
    "catalog_path",
    "confirm_spend",
    "dry_run_lines",
    "format_duration",
    "load_catalog",
    "price_lines",
    "quick_client",
    "read_cached",
    "save_catalog",
    "should_ask",
    "worst_case",
    "worst_text",
]

NO_CATALOG_HINT = (
    "not set, and no GPU catalog is cached to take prices from: export it (RunPod console "
    "> Settings > API Keys), then run `podmgr gpus --refresh` (or this command again)"
)


@dataclass(frozen=True)
class Catalog:
    """GPU types and where they came from (for the output: prices change)."""

    gpus: list[GpuType]
    source: str

    def find(self, gpu_id: str) -> GpuType | None:
        return next((gpu for gpu in self.gpus if gpu.id == gpu_id), None)


def catalog_path(config: Config) -> Path:
    """`catalog.json` beside the state file (what `--refresh-catalog` always wrote)."""
    return config.state_path.parent / "catalog.json"


def save_catalog(path: Path, gpus: list[GpuType]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([dataclasses.asdict(g) for g in gpus], indent=2))
    os.replace(tmp, path)


def _gpu_from_row(row: dict[str, Any]) -> GpuType:
    fields = {f.name for f in dataclasses.fields(GpuType)}
    values = {k: v for k, v in row.items() if k in fields}
    for key in ("secure_cuda", "community_cuda"):
        values[key] = tuple(values.get(key) or ())
    return GpuType(**values)


def read_cached(path: Path) -> list[GpuType] | None:
    """The saved catalog, or None when there is none (or it cannot be read)."""
    try:
        rows = json.loads(path.read_text())
        if isinstance(rows, list) and rows:
            return [_gpu_from_row(row) for row in rows if isinstance(row, dict) and "id" in row]
    except (OSError, ValueError, TypeError):
        return None
    return None


def _cached_at(path: Path) -> str:
    import time

    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime))
    return f"cached {stamp} ({path})"


def load_catalog(
    config: Config, *, refresh: bool = False, client: Any = None, save: bool = True
) -> Catalog:
    """The cached catalog, or RunPod's (saved unless `save` is False: a dry run writes
    nothing) when `refresh` or nothing is cached.

    Without a cache and without a key: ConfigError (exit 2) saying how to get one.
    """
    path = catalog_path(config)
    if not refresh and (cached := read_cached(path)) is not None:
        return Catalog(cached, _cached_at(path))
    if client is None and not os.environ.get("RUNPOD_API_KEY"):
        raise ConfigError(NO_CATALOG_HINT, field="RUNPOD_API_KEY")
    from podmgr.runpod.client import RunPodClient

    client = client or RunPodClient(
        retry_initial_seconds=config.watchdog.api_retry_initial_seconds,
        retry_max_seconds=config.watchdog.api_retry_max_seconds,
    )
    exact = config.pod.allowed_cuda_versions
    gpus = client.gpu_catalog(
        config.pod.gpu_count, min_cuda=None if exact else config.pod.cuda_floor
    )
    if not save:
        return Catalog(gpus, "read from RunPod now")
    save_catalog(path, gpus)
    return Catalog(gpus, f"read from RunPod now, saved to {path}")


def format_duration(seconds: float) -> str:
    """3600 -> "1h", 900 -> "15m", 5400 -> "1h30m", 45 -> "45s"."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    parts.append(f"{secs}s" if secs or not (hours or minutes) else "")
    return "".join(parts)


def hourly(gpu: GpuType | None, cloud_type: str, gpu_count: int) -> dict[str, float]:
    """The pod's $/h in each cloud the config allows that has a price (empty: none known)."""
    if gpu is None:
        return {}
    prices = {cloud: gpu.price(cloud) for cloud in clouds_of(cloud_type)}
    return {cloud: price * gpu_count for cloud, price in prices.items() if price}


def worst_case(runtime_seconds: float, price_per_hour: float, budget: float | None) -> float:
    """What one session can cost at most: runtime x price, capped by the budget."""
    cost = runtime_seconds / 3600 * price_per_hour
    return min(cost, budget) if budget is not None else cost


def _money(value: float) -> str:
    return f"${value:.2f}"


def worst_text(runtime_seconds: float, dearest: float, budget: float | None) -> str:
    """ "$2.50 (the budget; runtime 1h x $2.99/h at most would be $2.99)", or the uncapped
    "$0.76 (runtime 1h x $0.76/h at most)"."""
    worst = worst_case(runtime_seconds, dearest, budget)
    uncapped = worst_case(runtime_seconds, dearest, None)
    why = f"runtime {format_duration(runtime_seconds)} x {_money(dearest)}/h at most"
    if worst < uncapped:
        why = f"the budget; {why} would be {_money(uncapped)}"
    return f"{_money(worst)} ({why})"


def _gpu_lines(pod: PodSection, catalog: Catalog | None) -> tuple[list[str], float | None]:
    """One line per GPU type of `pod` with its $/h in each allowed cloud, and the dearest
    $/h among them (None: no price known)."""
    lines: list[str] = []
    dearest: float | None = None
    for gpu_id in pod.gpu_type_ids:
        prices = hourly(catalog.find(gpu_id) if catalog else None, pod.cloud_type, pod.gpu_count)
        shown = ", ".join(
            f"{_money(p)}/h" if len(prices) == 1 else f"{cloud.lower()} {_money(p)}/h"
            for cloud, p in prices.items()
        )
        count = f" x{pod.gpu_count}" if pod.gpu_count > 1 else ""
        lines.append(f"  {gpu_id}{count}: {shown or 'price unknown'}")
        if prices:
            dearest = max([*prices.values(), *([dearest] if dearest is not None else [])])
    return lines, dearest


def price_lines(config: Config, catalog: Catalog | None) -> list[str]:
    """What `up` shows before the first create: the GPU types in the order a create tries
    them, each with its $/h in the configured cloud, the worst case and the budget.

    With `pods`, each pod's types under its name; the worst case is the runtime times the
    sum of every pod's dearest $/h (each may run the whole session), capped by the one
    budget, which the pods' guards share."""
    if not config.lists_pods:
        return _one_pod_lines(config, catalog)
    limits = config.limits
    lines: list[str] = []
    dearest: list[float | None] = []
    for entry in config.pods:
        gpus, dear = _gpu_lines(entry, catalog)
        order = f"GPU types, in the order a create tries them ({entry.cloud_type} cloud)"
        lines.append(f"pod {entry.name} ({entry.model}): {order}:")
        lines += gpus
        dearest.append(dear)
    known = [price for price in dearest if price is not None]
    if len(known) == len(dearest):
        worst = worst_text(limits.runtime_seconds, sum(known), limits.max_cost_usd)
        lines.append(f"worst case for this session: {worst}, every pod together")
    else:
        runtime = format_duration(limits.runtime_seconds)
        lines.append(f"worst case for this session: unknown (no price; runtime {runtime})")
    idle = ", ".join(f"{name} {_idle_text(config, name)}" for name in config.pod_names)
    budget = limits.max_cost_usd
    shared = (
        f"{_money(budget)} per session, shared by the pods' guards"
        if budget is not None
        else "none"
    )
    lines.append(f"budget: {shared}; idle limit: {idle}")
    if catalog is not None:
        lines.append(f"prices: {catalog.source}")
    return lines


def _idle_text(config: Config, name: str) -> str:
    idle = config.idle_timeout_for(name)
    return format_duration(idle) if idle else "none"


def _one_pod_lines(config: Config, catalog: Catalog | None) -> list[str]:
    """`price_lines` for one pod (a `pod` section or a flat file), as before sets."""
    pod, limits = config.pod, config.limits
    lines = [f"GPU types, in the order a create tries them ({pod.cloud_type} cloud):"]
    gpus, dearest = _gpu_lines(pod, catalog)
    lines += gpus
    budget = limits.max_cost_usd
    runtime = format_duration(limits.runtime_seconds)
    if dearest is not None:
        worst = worst_text(limits.runtime_seconds, dearest, budget)
        lines.append(f"worst case for this session: {worst}")
    else:
        lines.append(f"worst case for this session: unknown (no price; runtime {runtime})")
    idle = limits.idle_timeout_seconds
    idle_text = format_duration(idle) if idle else "none"
    budget_text = _money(budget) if budget is not None else "none"
    lines.append(f"budget: {budget_text} per session; idle limit: {idle_text}")
    if catalog is not None:
        lines.append(f"prices: {catalog.source}")
    return lines


def should_ask(yes: bool, stdin_tty: bool, stdout_tty: bool) -> bool:
    """Ask before the first create only when a person sees the question and can answer:
    not with --yes, not from cron or the proxy's wake (no terminal), not into a pipe."""
    return not yes and stdin_tty and stdout_tty


def _session_has_pod(config: Config) -> bool:
    from podmgr.state import StateStore

    state = StateStore(config.state_path).peek()
    return (
        state is not None
        and state.session is not None
        and state.session.active
        and bool(state.pods)  # any pod of the session (every record is in `pods`)
    )


# `up` reads the catalog only when none is cached; it must not hold up the passes (and
# their own bounded retries) when RunPod cannot be reached.
PRICE_RETRY_SECONDS = 10.0


def quick_client(config: Config) -> Any:
    """A RunPod client whose retries give up after PRICE_RETRY_SECONDS (None: no key)."""
    if not os.environ.get("RUNPOD_API_KEY"):
        return None
    from podmgr.runpod.client import RunPodClient

    return RunPodClient(
        retry_initial_seconds=config.watchdog.api_retry_initial_seconds,
        retry_max_seconds=min(config.watchdog.api_retry_max_seconds, PRICE_RETRY_SECONDS),
    )


def _catalog_or_none(
    config: Config, emit: Callable[[str], None], save: bool = True
) -> Catalog | None:
    try:
        return load_catalog(config, client=quick_client(config), save=save)
    except AuthError:
        raise  # the passes would be refused too: exit 3 now, with one call spent
    except PodmgrError as error:
        emit(f"prices: not known ({error.message})")
        return None


def confirm_spend(
    config: Config,
    *,
    yes: bool,
    emit: Callable[[str], None],
    ask: Callable[[str], str] = input,
    stdin_tty: bool | None = None,
    stdout_tty: bool | None = None,
) -> bool:
    """Show the prices, and ask at a terminal. False: the person said no (create nothing).

    Nothing is shown or asked when the session already has a pod: `up` then only watches.
    """
    import sys

    if _session_has_pod(config):
        return True
    for line in price_lines(config, _catalog_or_none(config, emit)):
        emit(line)
    stdin_tty = sys.stdin.isatty() if stdin_tty is None else stdin_tty
    stdout_tty = sys.stdout.isatty() if stdout_tty is None else stdout_tty
    if not should_ask(yes, stdin_tty, stdout_tty):
        return True
    try:
        answer = ask("Create the pod? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    from podmgr.cli.options import hint

    emit(f"nothing created: no pod, no session (`{hint('up --yes')}` skips this question)")
    return False


def dry_run_lines(config: Config) -> list[str]:
    """`up --dry-run`'s figures: the same lines `up` shows before it asks."""
    lines: list[str] = []
    catalog = _catalog_or_none(config, lines.append, save=False)
    return lines + price_lines(config, catalog)
