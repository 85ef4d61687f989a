"""`podmgr proxy`: run the caching OpenAI proxy in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "proxy", help="run the caching OpenAI-compatible proxy (foreground)"
    )
    parser.add_argument("--config", help="path to pod_config.json")
    parser.add_argument("--host", help="address to listen on (default: proxy_host)")
    parser.add_argument("--port", type=int, help="port to listen on (default: proxy_port)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from podmgr.config import find_config_path, load_config
    from podmgr.errors import ConfigError
    from podmgr.proxy import run_proxy

    config = load_config(args.config)
    try:
        if args.host is not None:
            config.proxy.host = args.host
        if args.port is not None:
            config.proxy.port = args.port
    except ValidationError as error:
        message = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(message, field="--host/--port") from None
    return run_proxy(config, find_config_path(args.config).resolve())
