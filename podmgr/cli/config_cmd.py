"""`podmgr config validate|schema`: check a config file, print its JSON Schema.

`validate` also resolves the env's `${NAME}` references as `podmgr up` would, so an unset
variable or a value that cannot go through RunPod's API is an error here too (exit 2).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("config", help="validate a config file or print its schema")
    actions = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    validate = actions.add_parser("validate", help="check a config file; exit 2 if invalid")
    validate.add_argument("--config", help="path to pod_config.json")
    validate.add_argument("path", nargs="?", help="path (same as --config)")
    validate.set_defaults(handler=run_validate)
    schema = actions.add_parser("schema", help="print the JSON Schema of pod_config.json")
    schema.set_defaults(handler=run_schema)


def run_validate(args: argparse.Namespace) -> int:
    from podmgr.config import find_config_path, load_config
    from podmgr.guard.launch import guard_problem

    path = args.path or args.config
    config = load_config(path)
    config.resolved_env()  # `${NAME}` values as `podmgr up` would send them
    where = find_config_path(path)
    source = str(where) if where.exists() else "defaults (no config file found)"
    print(f"ok: {source}")
    print(f"  gpu types: {', '.join(config.gpu_type_ids)}  cloud: {config.cloud_type}")
    print(_cuda_line(config))
    print(f"  runtime: {config.runtime_seconds}s  budget: {config.max_cost_usd or 'none'}")
    print(f"  state: {config.state_path}  cache: {config.cache_path}")
    why = guard_problem(config)
    if why is None:
        print(f"  guard: armed in each pod, checks every {config.guard_interval_seconds:g}s")
    elif config.guard:
        print(f"warning: no guard in the pod ({why}); the limits hold only while passes run")
    else:
        print("  guard: off (guard: false); the limits hold only while passes run")
    if config.interruptible:
        from podmgr.runpod.spot import GRAPHQL_RETIREMENT

        print(f"warning: {GRAPHQL_RETIREMENT}")
    return 0


def _cuda_line(config: Any) -> str:
    from podmgr.cuda import image_cuda_floor

    if config.allowed_cuda_versions:
        return f"  host CUDA: exactly {', '.join(config.allowed_cuda_versions)}"
    needed = image_cuda_floor(config.image_name)
    why = f"{config.image_name} needs {needed}" if needed else f"{config.image_name}: not known"
    return f"  host CUDA: {config.cuda_floor} and newer ({why})"


def run_schema(_args: argparse.Namespace) -> int:
    from podmgr.config import config_schema

    schema: dict[str, Any] = config_schema()
    print(json.dumps(schema, indent=2))
    return 0
