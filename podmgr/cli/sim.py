"""`podmgr sim`: run the local RunPod simulator (API, pod URLs, simulated vLLM) until Ctrl-C.

On start-up it prints these lines for scripts (and for `export`), then serves until SIGINT
or SIGTERM (exit 0):
    RUNPOD_API_BASE_URL=http://HOST:PORT
    POD_URL_TEMPLATE=http://HOST:PORT/pods/{pod_id}-{port}
    RUNPOD_REST_URL=http://HOST:PORT/v2
    RUNPOD_API_KEY=<the first key it accepts>
and, with several keys, a `# also accepted:` line. The keys are the simulator's own
(default sim-key-not-secret), never a RunPod account's.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["register"]

FAULT_HELP = (
    "inject a fault (repeatable): NAME (always), NAME:0.2 (probability), NAME:x3 (next 3 "
    "calls), optional ',key=value' params, or a JSON object. Names: api_error, api_slow, "
    "api_something_went_wrong, api_error_after_apply, capacity, resume_no_gpus, pod_crash, "
    "container_crash, vllm_die, list_error, transient_status, unknown_template, "
    "preempt, balance_zero, rate_limited, zero_gpus, "
    "upstream_error, upstream_drop, upstream_stall, upstream_slow"
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run the local RunPod simulator",
        description="A local RunPod: REST API v2 (v1 answers 410 Gone), GraphQL API for the "
        "runpod SDK, pod logs, pod URLs, simulated vLLM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=8765, help="port (0 picks a free one; default %(default)s)"
    )
    parser.add_argument(
        "--api-key", action="append", dest="api_keys", metavar="KEY",
        help="a RunPod API key the simulator accepts (repeatable; default sim-key-not-secret)",
    )  # fmt: skip
    parser.add_argument(
        "--read-only-key", action="append", dest="read_only_keys", default=[], metavar="KEY",
        help="a read-only API key: it may read; mutations get HTTP 403 (REST) or "
        "Unauthorized (GraphQL) (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--pull-seconds", type=float, default=2.0, help="image pull time (default %(default)s)"
    )
    parser.add_argument(
        "--download-seconds", type=float, default=0.0,
        help="weights download time, again after each stop unless the weights are on the "
        "pod's volume (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--load-seconds", type=float, default=3.0, help="model load time (default %(default)s)"
    )
    parser.add_argument(
        "--token-delay",
        type=float,
        default=0.02,
        help="seconds between tokens (default %(default)s)",
    )
    parser.add_argument(
        "--edge-timeout-seconds", type=float, default=100.0,
        help="answers not started within this get HTML 524, as on RunPod (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--host-cuda", default="", metavar="VERSIONS",
        help="CUDA versions of the hosts, e.g. 12.4,12.8: each GPU type's stock is spread "
        "over them; a create without allowedCudaVersions lands on the oldest (default: "
        "every host is new enough)",
    )  # fmt: skip
    parser.add_argument(
        "--image-min-cuda", default=None, metavar="VERSION",
        help="CUDA version every image needs: a pod on an older host stays RUNNING and "
        "never gets a container (default: none)",
    )  # fmt: skip
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC", help=FAULT_HELP)
    parser.add_argument("--seed", type=int, default=None, help="seed for ids and fault draws")
    parser.add_argument(
        "--run-guards", action="store_true",
        help="run each pod's guard start command as a real process, with a pod-scoped key "
        "and a stand-in vllm (podmgr/sim/podproc.py)",
    )  # fmt: skip
    parser.add_argument(
        "--rate-limit", default="minute=60,hour=3000,day=50000", metavar="POLICY",
        help="REST v2 requests per window for the account, e.g. minute=60,hour=3000,"
        "day=50000 (default: the document's example policy, %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--gpu-stock", action="append", default=[], metavar="'GPU TYPE=LEVEL'",
        help="a GPU type's availability in the v2 catalog, NONE|LOW|MEDIUM|HIGH (repeatable; "
        "default HIGH); NONE also makes its creates fail for capacity",
    )  # fmt: skip
    parser.add_argument(
        "--start-command-json", choices=("honour", "ignore"), default="honour",
        help="whether v2 `args` in RunPod's start-command JSON form ({\"entrypoint\": [...], "
        "\"cmd\": [...]}) replace the image's ENTRYPOINT/CMD (honour) or reach vLLM's "
        "entrypoint literally (ignore) (default %(default)s)",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def _settings(args: argparse.Namespace) -> Any:
    import math

    from podmgr.errors import ConfigError
    from podmgr.sim.faults import parse_fault
    from podmgr.sim.world import DEFAULT_API_KEY, SimSettings

    faults = []
    for text in args.fault:
        try:
            faults.append(parse_fault(text))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{text!r}: {error}", field="--fault") from None
    for name in (
        "pull_seconds", "download_seconds", "load_seconds", "token_delay", "edge_timeout_seconds"
    ):  # fmt: skip
        value = getattr(args, name)
        if not math.isfinite(value) or value < 0:  # nan and inf too
            raise ConfigError("must be a number >= 0", field="--" + name.replace("_", "-"))
    host_cuda, image_min_cuda = _cuda_settings(args)
    rate_limit, gpu_stock = _v2_settings(args)
    if not 0 <= args.port <= 65535:
        raise ConfigError("must be 0..65535", field="--port")
    return SimSettings(
        host=args.host,
        port=args.port,
        api_keys=tuple(args.api_keys or [DEFAULT_API_KEY]),
        read_only_keys=tuple(args.read_only_keys),
        pull_seconds=args.pull_seconds,
        load_seconds=args.load_seconds,
        download_seconds=args.download_seconds,
        token_delay=args.token_delay,
        edge_timeout_seconds=args.edge_timeout_seconds,
        faults=tuple(faults),
        seed=args.seed,
        host_cuda=host_cuda,
        image_min_cuda=image_min_cuda,
        run_guards=args.run_guards,
        rate_limit=rate_limit,
        gpu_stock=gpu_stock,
        start_command_json=args.start_command_json,
    )


def _v2_settings(
    args: argparse.Namespace,
) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]:
    from podmgr.errors import ConfigError
    from podmgr.sim.catalog import AVAILABILITY_LEVELS, GPU_TYPES, find_gpu_type
    from podmgr.sim.ratelimit import parse_policy

    try:
        rate_limit = parse_policy(args.rate_limit)
    except ValueError as error:
        raise ConfigError(str(error), field="--rate-limit") from None
    stock: dict[str, str] = {}
    for item in args.gpu_stock:
        gpu_id, sep, level = item.rpartition("=")
        if not sep or level.strip().upper() not in AVAILABILITY_LEVELS:
            raise ConfigError(
                f"{item!r}: expected 'GPU TYPE=LEVEL', LEVEL one of "
                f"{', '.join(AVAILABILITY_LEVELS)}", field="--gpu-stock",
            )  # fmt: skip
        if find_gpu_type(gpu_id.strip()) is None:
            known = ", ".join(gpu.id for gpu in GPU_TYPES)
            message = f"{gpu_id.strip()!r} is not in the catalog ({known})"
            raise ConfigError(message, field="--gpu-stock")
        stock[gpu_id.strip()] = level.strip().upper()
    return rate_limit, tuple(stock.items())


def _cuda_settings(args: argparse.Namespace) -> tuple[tuple[str, ...], str | None]:
    from podmgr.errors import ConfigError
    from podmgr.sim.hosts import parse_cuda_list

    host_cuda: tuple[str, ...] = ()
    try:
        if args.host_cuda:
            host_cuda = parse_cuda_list(args.host_cuda)
    except ValueError as error:
        raise ConfigError(str(error), field="--host-cuda") from None
    try:
        image = parse_cuda_list(args.image_min_cuda)[0] if args.image_min_cuda else None
    except ValueError as error:
        raise ConfigError(str(error), field="--image-min-cuda") from None
    return host_cuda, image


def _announcer(settings: Any) -> Callable[[list[str]], None]:
    """Print the server's lines, then the key a client must send (issue 22)."""

    def announce(lines: list[str]) -> None:
        first, *others = settings.api_keys
        keys = [f"RUNPOD_API_KEY={first}"]
        if others or settings.read_only_keys:
            keys.append(
                "# also accepted: "
                + ", ".join([*others, *(f"{key} (read-only)" for key in settings.read_only_keys)])
            )
        for line in [*lines, *keys]:
            print(line, flush=True)

    return announce


def run(args: argparse.Namespace) -> int:
    import asyncio

    from podmgr.errors import ConfigError
    from podmgr.logs import configure_logging
    from podmgr.sim.server import serve

    settings = _settings(args)
    configure_logging("info")
    try:
        asyncio.run(serve(settings, _announcer(settings)))
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {args.host}:{args.port}: {error}", field="--port"
        ) from None
    return 0
