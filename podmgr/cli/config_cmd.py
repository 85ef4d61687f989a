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
    from podmgr.guard.launch import guard_problem

    path = args.path or args.config
    config = load_config(path)
    config.pod.resolved_env()  # `${NAME}` values as `podmgr up` would send them
    where = find_config_path(path)
    source = str(where) if where.exists() else "defaults (no config file found)"
    checked = _check_gpu_ids(config)  # exit 2 for a GPU id RunPod does not list
    print(f"ok: {source}")
    if where.exists() and is_flat_form(read_config_file(where)):
        print(FLAT_NOTE)
    pod, limits = config.pod, config.limits
    print(f"  gpu types: {', '.join(pod.gpu_type_ids)}  cloud: {pod.cloud_type}")
    print(f"  gpu ids: {checked}")
    print(_cuda_line(config))
    print(_limits_line(limits))
    print(f"  state: {config.state_path}  cache: {config.cache_path}")
    why = guard_problem(config)
    if why is None:
        print(f"  guard: armed in each pod, checks every {config.guard.interval_seconds:g}s")
    elif config.guard.enabled:
        print(f"warning: no guard in the pod ({why}); the limits hold only while passes run")
    else:
        print("  guard: off (guard.enabled: false); the limits hold only while passes run")
    if pod.interruptible:
        from podmgr.runpod.spot import GRAPHQL_RETIREMENT

        print(f"warning: {GRAPHQL_RETIREMENT}")
    return 0


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
    """The config's GPU ids against RunPod's catalog when one is at hand: the one
    `--refresh-catalog` saved, else read with RUNPOD_API_KEY (a short try: validate must
    not hang on a network). ConfigError (exit 2) with the closest ids for an id it lacks;
    else how far the ids were checked."""
    import os

    from podmgr.cli.catalog import catalog_path, check_gpu_ids, saved_catalog
    from podmgr.errors import ApiError

    catalog = saved_catalog(config)
    if catalog is not None:
        check_gpu_ids(config.pod, catalog, f"saved at {catalog_path(config)}")
        return "checked against the saved catalog"
    if not os.environ.get("RUNPOD_API_KEY"):
        return "not checked: no saved catalog and no RUNPOD_API_KEY"
    from podmgr.logs import configure_logging
    from podmgr.runpod.client import RunPodClient

    configure_logging("error")  # its retries are said in the line this returns
    client = RunPodClient(retry_initial_seconds=0.5, retry_max_seconds=VALIDATE_RETRY_SECONDS)
    try:
        catalog = client.gpu_catalog(config.pod.gpu_count)
    except ApiError as error:
        return f"not checked: RunPod's catalog unread ({error.message})"
    check_gpu_ids(config.pod, catalog, "read now with RUNPOD_API_KEY")
    return "checked against RunPod's catalog"


# How long `config validate` retries reading RunPod's catalog before it leaves ids unchecked.
VALIDATE_RETRY_SECONDS = 5.0


def _cuda_line(config: Any) -> str:
    from podmgr.cuda import image_cuda_floor

    pod = config.pod
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
