"""`podmgr config validate|show|migrate|schema`: check, print, rewrite a config file.

`validate` also resolves the env's `${NAME}` references as `podmgr up` would, so an unset
variable or a value that cannot go through RunPod's API is an error here too (exit 2),
checks the GPU ids against RunPod's catalog when one is at hand (saved, or read with the
key: an id it lacks is exit 2 with the closest ids), and says when the file is in the old
flat form. `show` prints the effective config (every
section with every default, env overrides applied, keys redacted) as JSON. `migrate`
rewrites an old flat file in sections and keeps the old one as `<file>.bak`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]

FLAT_NOTE = "note: old flat form: run `podmgr config migrate`"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config", help="validate, show or migrate a config file, or print its schema"
    )
    actions = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    validate = actions.add_parser("validate", help="check a config file; exit 2 if invalid")
    validate.add_argument("--config", help="path to pod_config.json")
    validate.add_argument("path", nargs="?", help="path (same as --config)")
    validate.set_defaults(handler=run_validate)
    show = actions.add_parser("show", help="print the effective config with every default")
    show.add_argument("--config", help="path to pod_config.json")
    show.set_defaults(handler=run_show)
    migrate = actions.add_parser("migrate", help="rewrite an old flat config file in sections")
    migrate.add_argument("--config", help="path to pod_config.json")
    migrate.set_defaults(handler=run_migrate)
    schema = actions.add_parser("schema", help="print the JSON Schema of pod_config.json")
    schema.set_defaults(handler=run_schema)


def run_validate(args: argparse.Namespace) -> int:
    from podmgr.config import find_config_path, load_config, read_config_file
    from podmgr.config.flat import is_flat_form

    path = args.path or args.config
    config = load_config(path)
    _resolve_envs(config)  # `${NAME}` values as `podmgr up` would send them
    where = find_config_path(path)
    source = str(where) if where.exists() else "defaults (no config file found)"
    checked = _check_gpu_ids(config)  # exit 2 for a GPU id RunPod does not list
    print(f"ok: {source}")
    if where.exists() and is_flat_form(read_config_file(where)):
        print(FLAT_NOTE)
    if config.lists_pods:
        for line in _pod_lines(config):
            print(line)
    else:
        pod = config.pod
        print(f"  gpu types: {', '.join(pod.gpu_type_ids)}  cloud: {pod.cloud_type}")
    print(f"  gpu ids: {checked}")
    if not config.lists_pods:
        print(_cuda_line(config.pod))
    print(_limits_line(config.limits) + ("  (one session for every pod)" * config.lists_pods))
    print(f"  state: {config.state_path}  cache: {config.cache_path}")
    for line in _guard_lines(config):
        print(line)
    if any(entry.interruptible for entry in config.pods):
        from podmgr.runpod.spot import GRAPHQL_RETIREMENT

        print(f"warning: {GRAPHQL_RETIREMENT}")
    return 0


def _resolve_envs(config: Any) -> None:
    """Every pod's `${NAME}` env values resolved (an unset one: exit 2 naming the entry)."""
    from podmgr.errors import ConfigError

    for index, entry in enumerate(config.pods):
        try:
            entry.resolved_env()
        except ConfigError as error:
            if not config.lists_pods:
                raise
            field = config.pod_field(index, (error.field or "env").removeprefix("pod."))
            said = error.message.removeprefix(f"{error.field}: ")
            raise ConfigError(f"pod {entry.name!r}: {said}", field=field) from None


def _pod_lines(config: Any) -> list[str]:
    """Each pod of `pods`: its name and model, GPU types, cloud, idle time and host CUDA."""
    from podmgr.cli.prices import format_duration

    lines = [f"  pods: {', '.join(config.pod_names)}"]
    for entry in config.pods:
        idle = config.idle_timeout_for(entry.name)
        lines += [
            f"  pod {entry.name}: {entry.model}",
            f"    gpu types: {', '.join(entry.gpu_type_ids)}  cloud: {entry.cloud_type}  "
            f"idle: {format_duration(idle) if idle else 'none'}",
            "  " + _cuda_line(entry),
        ]
    return lines


def _guard_lines(config: Any) -> list[str]:
    """Whether each pod gets the guard (one line for one pod, as before)."""
    from podmgr.guard.launch import guard_problem

    every = f"  guard: armed in each pod, checks every {config.guard.interval_seconds:g}s"
    if not config.guard.enabled:
        return ["  guard: off (guard.enabled: false); the limits hold only while passes run"]
    lines: list[str] = []
    for entry in config.pods:
        why = guard_problem(config.model_copy(update={"pod": entry.section()}))
        if why is not None:
            pod = f" of pod {entry.name}" if config.lists_pods else ""
            lines.append(
                f"warning: no guard in the pod{pod} ({why}); the limits hold only while passes run"
            )
    return lines or [every]


def _limits_line(limits: Any) -> str:
    """`runtime: 1h  budget: $2.50  idle: 15m`: the limits with their units."""
    from podmgr.cli.prices import format_duration

    budget = f"${limits.max_cost_usd:.2f}" if limits.max_cost_usd is not None else "none"
    idle = limits.idle_timeout_seconds
    return (
        f"  runtime: {format_duration(limits.runtime_seconds)}  budget: {budget}  "
        f"idle: {format_duration(idle) if idle else 'none'}"
    )


def _check_gpu_ids(config: Any) -> str:
    """Every pod's GPU ids against RunPod's catalog when one is at hand: the one
    `podmgr gpus` saved, else read with RUNPOD_API_KEY (a short try: validate must not
    hang on a network). ConfigError (exit 2) with the closest ids for an id it lacks,
    naming the pod (`pods.N.gpu_type_id`); else how far the ids were checked."""
    import os

    from podmgr.cli.catalog import catalog_path, check_every_pod, saved_catalog
    from podmgr.errors import ApiError

    catalog = saved_catalog(config)
    if catalog is not None:
        check_every_pod(config, catalog, f"saved at {catalog_path(config)}")
        return "checked against the saved catalog"
    if not os.environ.get("RUNPOD_API_KEY"):
        return "not checked: no saved catalog and no RUNPOD_API_KEY"
    from podmgr.logs import configure_logging
    from podmgr.runpod.client import RunPodClient

    configure_logging("error")  # its retries are said in the line this returns
    client = RunPodClient(retry_initial_seconds=0.5, retry_max_seconds=VALIDATE_RETRY_SECONDS)
    try:
        catalog = client.gpu_catalog(min(entry.gpu_count for entry in config.pods))
    except ApiError as error:
        return f"not checked: RunPod's catalog unread ({error.message})"
    check_every_pod(config, catalog, "read now with RUNPOD_API_KEY")
    return "checked against RunPod's catalog"


# How long `config validate` retries reading RunPod's catalog before it leaves ids unchecked.
VALIDATE_RETRY_SECONDS = 5.0


def _cuda_line(pod: Any) -> str:
    """The host CUDA a pod section may land on, and why."""
    from podmgr.cuda import image_cuda_floor

    if pod.allowed_cuda_versions:
        return f"  host CUDA: exactly {', '.join(pod.allowed_cuda_versions)}"
    needed = image_cuda_floor(pod.image_name)
    why = f"{pod.image_name} needs {needed}" if needed else f"{pod.image_name}: not known"
    return f"  host CUDA: {pod.cuda_floor} and newer ({why})"


def run_show(args: argparse.Namespace) -> int:
    from podmgr.config import load_config
    from podmgr.config.migrate import effective_view

    print(json.dumps(effective_view(load_config(args.config)), indent=2))
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    from podmgr.config import find_config_path
    from podmgr.config.migrate import migrate_file
    from podmgr.errors import ConfigError

    file = find_config_path(args.config)
    if not file.exists():
        raise ConfigError(f"config file {file} does not exist", field="--config")
    backup = migrate_file(file)
    if backup is None:
        print(f"{file} is in sections already; nothing to do")
    else:
        print(f"{file} rewritten in sections; the old file is {backup}")
    return 0


def run_schema(_args: argparse.Namespace) -> int:
    from podmgr.config import config_schema

    schema: dict[str, Any] = config_schema()
    print(json.dumps(schema, indent=2))
    return 0
