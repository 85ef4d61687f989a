"""A REST v2 create body as a world create order: one GPU type, mounts, start command.

RunPod REST API v2 (openapi.json, createPod and CreatePodRequest): "This endpoint places
one specific GPU type. It does not search for capacity, and it does not fall back to a
different GPU": the order names exactly `gpu.id`. Cross-field rules answer 400: both
mounts (Mounts: "mutually exclusive, enforced at the handler with 400"), a non-empty
`allowedCudaVersions` with `minCudaVersion` (CreateGpuConfig: "400 if both are sent"),
not exactly one of `gpu` / `cpu` ("enforced at the handler layer"; the simulator has no
CPU pods, so `cpu` is always refused). `image` missing without `templateId` breaks the
schema's if/then: 422. A template "is resolved at create time ... the created pod does
not retain a link to the template (`template` stays null)" (CreatePodRequest.templateId).
`startJupyter` "injects a generated JUPYTER_PASSWORD environment variable, unless the
request already sets one"; `startSsh` injects `PUBLIC_KEY` only when the account has
registered keys, and the simulated account has none (CreatePodRequest.startSsh).

Start command (`args`): "Arguments passed to the container entrypoint"
(BaseContainerConfig.args). RunPod's start command also takes JSON
`{"entrypoint": [...], "cmd": [...]}` replacing the image's ENTRYPOINT / CMD (RunPod docs
pods/templates/manage-templates.mdx); whether v2's `args` honours that form is
undocumented, so `--start-command-json` chooses: `honour` (the default) replaces them, so a
pod's entrypoint can be podmgr's guard (podmgr/sim/podproc.py runs it), and vLLM's
arguments are `cmd` without a leading `vllm serve`; `ignore` hands the string to the
image's entrypoint literally (vLLM's `python3 -m vllm.entrypoints.openai.api_server`),
whose argparse refuses it (pods.py "failing"; narrator.py prints the error). Plain `args`
are vLLM's arguments either way, as the v1 start command was.
"""

from __future__ import annotations

import json
import secrets
import shlex
from typing import Any

from pydantic import ValidationError

from podmgr.sim.operations import KNOWN_TEMPLATES, CreateOrder, SimApiError
from podmgr.sim.pods import PodSpec, PortSpec
from podmgr.sim.v2.bodies import CreatePodRequest, violations

__all__ = [
    "DEFAULT_DISK_GB",
    "Unprocessable",
    "create_order",
    "read_create",
    "start_command",
    "start_command_fields",
]

# The document gives no default for `disk`; v1's containerDiskInGb defaulted to 50 and
# v2's examples use 50.
DEFAULT_DISK_GB = 50
# What a known template resolves to when the body has no image (a plausible image; the
# templates' contents are not in RunPod's docs).
_TEMPLATE_IMAGE = "runpod/pytorch:2.1.0-py3.10-cuda11.8.0-devel-ubuntu22.04"


class Unprocessable(Exception):
    """A body outside the contract: 422 with these `errors`."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def read_create(body: Any) -> CreatePodRequest:
    """The validated body; Unprocessable lists what breaks the contract."""
    if not isinstance(body, dict):
        raise Unprocessable(["$: expected object"])
    try:
        data = CreatePodRequest.model_validate(body)
    except ValidationError as error:
        raise Unprocessable(violations(error)) from None
    if data.image is None and data.templateId is None:
        raise Unprocessable(["$: missing property 'image'"])
    return data


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def start_command(args: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(entrypoint, cmd) when `args` is RunPod's start-command JSON, else None."""
    try:
        data = json.loads(args)
    except ValueError:
        return None
    if not isinstance(data, dict) or not ({"entrypoint", "cmd"} & data.keys()):
        return None
    entrypoint, cmd = _strings(data.get("entrypoint", [])), _strings(data.get("cmd", []))
    if entrypoint is None or cmd is None:
        return None
    return entrypoint, cmd


def _split(args: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(args))
    except ValueError:
        return tuple(args.split())


def start_command_fields(args: str, mode: str) -> dict[str, Any]:
    """The PodSpec fields the start command decides (see the module docstring)."""
    parsed = start_command(args)
    if parsed is None:
        return {"docker_args": args, "docker_start_cmd": _split(args)}
    if mode == "ignore":
        return {"docker_args": "", "vllm_arg_error": args}
    entrypoint, cmd = parsed
    vllm_args = cmd[2:] if cmd[:2] == ("vllm", "serve") else cmd
    return {
        "docker_args": shlex.join(vllm_args),
        "docker_entrypoint": entrypoint,
        "docker_start_cmd": cmd,
    }


def _ports(items: list[str]) -> tuple[PortSpec, ...]:
    specs = []
    for item in items:
        number, sep, kind = item.partition("/")
        if not number.isdigit() or not sep or kind not in ("http", "tcp", "udp"):
            raise SimApiError("bad_request", f"ports: {item!r} is not port/protocol")
        specs.append(PortSpec(int(number), kind))
    return tuple(specs)


def _mounts(data: CreatePodRequest) -> dict[str, Any]:
    mounts = data.mounts
    if mounts is None:
        return {"volume_in_gb": 0}
    if mounts.persistent is not None and mounts.network:
        raise SimApiError("bad_request", "mounts: persistent and network are mutually exclusive")
    if mounts.network:
        mount = mounts.network[0]
        return {
            "volume_in_gb": 0,
            "network_volume_id": mount.volumeId,
            "volume_mount_path": mount.path,
        }
    if mounts.persistent is not None:
        return {"volume_in_gb": mounts.persistent.size, "volume_mount_path": mounts.persistent.path}
    return {"volume_in_gb": 0}


def create_order(data: CreatePodRequest, start_command_json: str) -> CreateOrder:
    """The world's create order for a valid body; SimApiError for a cross-field rule."""
    if data.cpu is not None or data.gpu is None:
        raise SimApiError(
            "bad_request", "exactly one of gpu or cpu is required (the simulator has no CPU pods)"
        )
    gpu = data.gpu
    if gpu.allowedCudaVersions and gpu.minCudaVersion is not None:
        raise SimApiError(
            "bad_request", "gpu: allowedCudaVersions and minCudaVersion are mutually exclusive"
        )
    image = data.image
    if image is None and data.templateId in KNOWN_TEMPLATES:
        image = _TEMPLATE_IMAGE
    env = dict(data.env)
    if data.startJupyter:
        env.setdefault("JUPYTER_PASSWORD", secrets.token_urlsafe(12))
    spec = PodSpec(
        name=data.name,
        image_name=image or "",
        gpu_type_id="",
        gpu_display_name="",
        gpu_count=gpu.count,
        cloud_type=data.cloud,
        cost_per_hr=0.0,
        env=env,
        ports=_ports(data.ports),
        container_disk_in_gb=data.disk or DEFAULT_DISK_GB,
        template_id=data.templateId,
        support_public_ip=any(port.type == "tcp" for port in _ports(data.ports)),
        start_ssh=data.startSsh,
        allowed_cuda_versions=tuple(gpu.allowedCudaVersions or ()),
        min_cuda_version=gpu.minCudaVersion,
        data_center_ids=tuple(data.dataCenterIds),
        args=data.args,
        registry=data.registry,
        global_networking=data.globalNetworking,
        **_mounts(data),
        **start_command_fields(data.args, start_command_json),
    )
    return CreateOrder(spec, (gpu.id,))
