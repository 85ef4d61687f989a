"""`podmgr init`: a first pod_config.json, with the price of a session shown before any spend.

Asks (stdin a terminal, no --yes) for what the flags did not give: the model, the context
length, a budget, the session's length and the idle limit. Reads the GPU catalog (the
cached one, or RunPod's with RUNPOD_API_KEY: podmgr/cli/prices.py), proposes the cheapest
GPU types whose memory fits the model at that context (podmgr/fit.py says how the fit is
estimated, and so does the output), shows their $/h, a session's worst case and the idle
limit, checks the key and RunPod's rate-limit policy, and writes only what differs from
the defaults, in sections. It never creates a pod, and an existing file is overwritten
only with --force (else exit 2).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podmgr.cli.prices import Catalog
    from podmgr.config import Config
    from podmgr.fit import Estimate
    from podmgr.runpod.values import GpuType

__all__ = ["Answers", "minimal_config", "parse_duration", "propose", "register"]

DEFAULT_CONTEXT = 16384
DEFAULT_IDLE_SECONDS = 900
PROPOSED = 3
_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def register(subparsers: Any) -> None:
    init = subparsers.add_parser(
        "init",
        help="write a first pod_config.json: model, cheapest fitting GPUs, price, limits",
        description=(
            "Asks for (or takes as flags) the model, context length, budget, runtime and "
            "idle limit; proposes the cheapest GPU types whose memory fits; shows $/h and a "
            "session's worst case; checks RUNPOD_API_KEY; writes only what differs from the "
            "defaults. Never creates a pod. It writes one pod (a `pod` section); for several "
            "models, one pod each, edit `pods` by hand from examples/two_models.json "
            "(docs/configuration.md)."
        ),
    )
    init.add_argument("--model", help="Hugging Face model id vLLM serves")
    init.add_argument("--context", type=int, help=f"context length in tokens ({DEFAULT_CONTEXT})")
    init.add_argument("--budget", type=float, help="budget per session in USD (default none)")
    init.add_argument("--runtime", help="session length, e.g. 1h, 90m (default 1h)")
    init.add_argument("--idle", help="idle limit, e.g. 15m, or none (default 15m)")
    init.add_argument("--weights-gib", type=float, help="model weights in GiB (id names no size)")
    init.add_argument("--path", default="pod_config.json", help="file to write (pod_config.json)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.add_argument("--yes", "-y", action="store_true", help="ask nothing; defaults for the rest")
    init.set_defaults(handler=run_init)


def parse_duration(text: str, field: str) -> int:
    """Seconds from "1h", "90m", "1h30m", "45s" or a plain number of seconds."""
    from podmgr.errors import ConfigError

    value = text.strip().lower()
    if re.fullmatch(r"\d+", value):
        seconds = float(value)
    elif value and _PART.sub("", value) == "":
        units = {"h": 3600, "m": 60, "s": 1}
        seconds = sum(float(n) * units[u] for n, u in _PART.findall(value))
    else:
        raise ConfigError(f"{text!r} is not a duration (e.g. 1h, 90m, 1h30m, 3600)", field=field)
    if seconds < 1:
        raise ConfigError("must be at least 1s", field=field)
    return int(seconds)


@dataclass(frozen=True)
class Answers:
    """What the person chose (from flags or questions)."""

    model: str
    context: int
    budget: float | None
    runtime_seconds: int
    idle_seconds: int | None
    weights_gib: float | None = None


Ask = Callable[[str], str]


def _parse_answer(field: str, text: str) -> Any:
    from podmgr.errors import ConfigError

    if field == "--model":
        if not text.strip():
            raise ConfigError("give a model id", field=field)
        return text.strip()
    if field in ("--context", "--weights-gib"):
        try:
            number = int(text) if field == "--context" else float(text)
        except ValueError:
            raise ConfigError(f"{text!r} is not a number", field=field) from None
        if number <= 0 or (field == "--context" and number < 256):
            raise ConfigError("too small", field=field)
        return number
    if field == "--budget":
        if text.strip().lower() in ("", "none"):
            return None
        try:
            budget = float(text.strip().lstrip("$"))
        except ValueError:
            raise ConfigError(f"{text!r} is not an amount in USD", field=field) from None
        if budget <= 0:
            raise ConfigError("must be more than 0 (or none)", field=field)
        return budget
    if field == "--idle" and text.strip().lower() in ("none", "off", "0"):
        return None
    return parse_duration(text, field)


def _question(ask: Ask, prompt: str, default: str, field: str) -> Any:
    """Ask until the answer parses (three tries), the default for an empty answer."""
    from podmgr.errors import ConfigError

    for attempt in range(3):
        try:
            answer = ask(f"{prompt} [{default}]: ").strip()
        except EOFError:
            answer = ""
        try:
            return _parse_answer(field, answer or default)
        except ConfigError as error:
            if attempt == 2:
                raise
            print(f"  {error.message}")
    raise AssertionError("unreachable")


def gather(args: argparse.Namespace, default_model: str, ask: Ask | None) -> Answers:
    """The answers: each flag given, else a question (ask not None), else the default."""

    def value(flag: str, given: Any, prompt: str, default: str) -> Any:
        if given is not None:
            return _parse_answer(flag, str(given))
        if ask is not None:
            return _question(ask, prompt, default, flag)
        return _parse_answer(flag, default)

    idle_default = f"{DEFAULT_IDLE_SECONDS // 60}m"
    return Answers(
        model=value("--model", args.model, "Model (Hugging Face id)", default_model),
        context=value("--context", args.context, "Context length (tokens)", str(DEFAULT_CONTEXT)),
        budget=value("--budget", args.budget, "Budget per session in USD, or none", "none"),
        runtime_seconds=value("--runtime", args.runtime, "Session length", "1h"),
        idle_seconds=value("--idle", args.idle, "Idle limit, or none", idle_default),
        weights_gib=None if args.weights_gib is None else _parse_answer(
            "--weights-gib", str(args.weights_gib)
        ),
    )  # fmt: skip


def propose(
    gpus: list[GpuType], need: Estimate, cloud: str, gpu_count: int = 1
) -> list[tuple[GpuType, float]]:
    """The cheapest GPU types (with their $/h) that fit `need`, have a price in `cloud`
    and are not out of stock now, cheapest first, at most PROPOSED."""
    from podmgr.fit import fits

    fitting = [
        (gpu, price * gpu_count)
        for gpu in gpus
        if gpu.memory_gb
        and (price := gpu.price(cloud))
        and gpu.offered(cloud) is not False
        and gpu.stock(cloud) != "NONE"
        and fits(need, gpu.memory_gb, gpu_count)
    ]
    return sorted(fitting, key=lambda pair: (pair[1], pair[0].id))[:PROPOSED]


def minimal_config(answers: Answers, gpu_ids: list[str], defaults: Config) -> dict[str, Any]:
    """The config in sections with only what differs from the defaults (the context length
    always: it is what the memory estimate assumed)."""
    pod: dict[str, Any] = {}
    if answers.model != defaults.pod.model:
        pod["model"] = answers.model
    if gpu_ids != defaults.pod.gpu_type_ids:
        pod["gpu_type_id"] = gpu_ids
    pod["vllm_args"] = ["--max-model-len", str(answers.context)]
    limits: dict[str, Any] = {}
    if answers.runtime_seconds != defaults.limits.runtime_seconds:
        limits["runtime_seconds"] = answers.runtime_seconds
    if answers.budget != defaults.limits.max_cost_usd:
        limits["max_cost_usd"] = answers.budget
    if answers.idle_seconds != defaults.limits.idle_timeout_seconds:
        limits["idle_timeout_seconds"] = answers.idle_seconds
    return {"pod": pod, "limits": limits} if limits else {"pod": pod}


def _estimate(answers: Answers, ask: Ask | None) -> Estimate:
    from podmgr.errors import ConfigError
    from podmgr.fit import estimate

    need = estimate(answers.model, answers.context, weights_gib=answers.weights_gib)
    if need is None and ask is not None:
        print(f"{answers.model} names no size (like 7B or 32B).")
        weights = _question(ask, "Model weights in GiB", "16", "--weights-gib")
        need = estimate(answers.model, answers.context, weights_gib=weights)
    if need is None:
        raise ConfigError(
            f"{answers.model!r} names no size (like 7B or 32B): give the weights' size in "
            "GiB with --weights-gib",
            field="--weights-gib",
        )
    return need


def _key_lines(config: Config) -> list[str]:
    """What RUNPOD_API_KEY is worth: accepted or not, and RunPod's rate-limit policy."""
    from podmgr.cli.prices import quick_client
    from podmgr.doctor.choice import minute_left
    from podmgr.errors import AuthError, PodmgrError

    client = quick_client(config)
    if client is None:
        return [
            "key: RUNPOD_API_KEY is not set; `podmgr up` needs it "
            "(RunPod console > Settings > API Keys; export it, and put it in cron's line)"
        ]
    rest = client.rest()
    try:
        pods = client.call("list_pods", rest.list_pods)
    except AuthError as error:
        return [f"key: RunPod refused RUNPOD_API_KEY ({error.message}); `podmgr up` would too"]
    except PodmgrError as error:
        return [f"key: not checked, RunPod did not answer ({error.message})"]
    left = minute_left(rest.rate_windows)
    return [
        f"key: accepted ({len(pods)} pods on the account); RateLimit-Policy "
        f"{rest.rate_policy or '(not sent)'}; {'?' if left is None else f'{left:g}'} calls "
        "left this minute",
        "  the limit is per user: cron's passes, `podmgr up`, the proxy's wake and each "
        "pod's guard share it",
    ]


def _show(answers: Answers, need: Estimate, chosen: list[tuple[GpuType, float]], catalog: Catalog,
          config: Config) -> None:  # fmt: skip
    from podmgr.cli.prices import format_duration, worst_text

    print(
        f"memory: {answers.model} at {answers.context} tokens needs about "
        f"{need.total_gib:.1f} GiB (weights {need.weights_gib:.1f} + KV cache "
        f"{need.kv_gib:.1f} + overhead {need.overhead_gib:.1f})"
    )
    print(f"  estimated as {need.how}; a GPU fits at <= 90% of its memory (vLLM's default)")
    print(f"cheapest GPU types that fit ({config.pod.cloud_type} cloud; prices: {catalog.source}):")
    for gpu, price in chosen:
        print(f"  {gpu.id:<31} {gpu.memory_gb or 0:>4g} GiB  ${price:.2f}/h")
    dearest = max(price for _gpu, price in chosen)
    worst = worst_text(answers.runtime_seconds, dearest, answers.budget)
    print(f"worst case of a session: {worst}")
    idle = format_duration(answers.idle_seconds) if answers.idle_seconds else "none"
    print(f"idle limit: {idle} without a request ends the session")


def run_init(args: argparse.Namespace) -> int:
    from podmgr.cli.prices import load_catalog, quick_client
    from podmgr.config import build_config
    from podmgr.errors import ConfigError

    path = Path(args.path).expanduser()
    if path.exists() and not args.force:
        raise ConfigError(f"{path} exists; --force overwrites it", field="--path")
    ask: Ask | None = input if (not args.yes and sys.stdin.isatty()) else None
    defaults = build_config({}, path.resolve().parent, environ={})
    catalog = load_catalog(defaults, client=quick_client(defaults))  # before any question
    answers = gather(args, defaults.pod.model, ask)
    need = _estimate(answers, ask)
    chosen = propose(catalog.gpus, need, defaults.pod.cloud_type, defaults.pod.gpu_count)
    if not chosen:
        raise ConfigError(
            f"no GPU type in the catalog fits about {need.total_gib:.0f} GiB with a price in "
            f"the {defaults.pod.cloud_type} cloud and stock now: a smaller --context or a "
            "quantized model (AWQ, FP8) needs less",
            field="--model",
        )
    _show(answers, need, chosen, catalog, defaults)
    for line in _key_lines(defaults):
        print(line)
    data = minimal_config(answers, [gpu.id for gpu, _price in chosen], defaults)
    build_config(data, path.resolve().parent, environ={})  # what `config validate` checks
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    from podmgr.cli.options import hint

    where = None if path == Path("pod_config.json") else str(path)
    shown = hint("config show", where)
    print(f"wrote {path} (only what differs from the defaults; `{shown}` shows all)")
    validate, up = hint("config validate", where), hint("up", where)
    print(f"next: `{validate}`, then `{up}` (no pod was created)")
    return 0
