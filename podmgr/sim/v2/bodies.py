"""REST v2 request bodies as strict pydantic models, and their violations as `errors` texts.

Written from RunPod REST API v2 (openapi.json; not a copy of it): CreatePodRequest
(`unevaluatedProperties: false`, `name` required, `image` required unless `templateId`),
BaseContainerConfig / ContainerConfig (`args` string, `disk` integer >= 1, `env` object
of strings, `image`, `ports`, `registry`), Mounts / PersistentMount / NetworkMount
(`additionalProperties: false`; persistent `size` >= 10; network `maxItems` 1),
CreateGpuConfig (`id` required, `count` >= 1 default 1, `allowedCudaVersions` and
`minCudaVersion` as `major.minor`, `unevaluatedProperties: false`), Cloud, and
PodActionRequest (`additionalProperties: false`, `action` required, PodAction enum).
CPU pods (`cpu`, CreateCpuConfig) are accepted as an object and refused with 400 by the
create (podmgr/sim/v2/create.py): the simulator has no CPU pods.

A body outside the contract is a 422 whose `errors` lists each violation in the style of
the document's example `"$: additional properties 'bogus' not allowed"`; the other texts
("expected integer", "missing property 'name'") follow that style, RunPod's exact wording
for them is undocumented.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
)
from pydantic_core import ErrorDetails

__all__ = [
    "CreateGpu",
    "CreatePodRequest",
    "Mounts",
    "NetworkMount",
    "PersistentMount",
    "PodActionRequest",
    "violations",
]

_STRICT = ConfigDict(extra="forbid")
_VERSION = r"^\d+\.\d+$"
CudaVersion = Annotated[str, StringConstraints(strict=True, pattern=_VERSION)]


class PersistentMount(BaseModel):
    model_config = _STRICT
    size: StrictInt = Field(ge=10)
    path: StrictStr


class NetworkMount(BaseModel):
    model_config = _STRICT
    volumeId: StrictStr
    path: StrictStr


class Mounts(BaseModel):
    model_config = _STRICT
    persistent: PersistentMount | None = None
    network: list[NetworkMount] | None = Field(default=None, max_length=1)


class CreateGpu(BaseModel):
    model_config = _STRICT
    id: StrictStr
    count: StrictInt = Field(default=1, ge=1)
    allowedCudaVersions: list[CudaVersion] | None = None
    minCudaVersion: CudaVersion | None = None


class CreatePodRequest(BaseModel):
    model_config = _STRICT
    name: StrictStr = Field(min_length=1)
    image: StrictStr | None = None
    args: StrictStr = ""
    disk: StrictInt | None = Field(default=None, ge=1)
    env: dict[str, StrictStr] = Field(default_factory=dict)
    ports: list[StrictStr] = Field(default_factory=list)
    registry: StrictStr | None = None
    mounts: Mounts | None = None
    gpu: CreateGpu | None = None
    cpu: dict[str, Any] | None = None
    cloud: Literal["SECURE", "COMMUNITY"] = "SECURE"
    dataCenterIds: list[StrictStr] = Field(default_factory=list)
    templateId: StrictStr | None = Field(default=None, min_length=1)
    startSsh: StrictBool = False
    startJupyter: StrictBool = False
    globalNetworking: StrictBool = False


class PodActionRequest(BaseModel):
    model_config = _STRICT
    action: Literal["start", "stop", "restart", "terminate"]


_JSON_TYPES = {
    "int_type": "integer",
    "int_parsing": "integer",
    "string_type": "string",
    "bool_type": "boolean",
    "dict_type": "object",
    "model_type": "object",
    "list_type": "array",
    "model_attributes_type": "object",
}


def _path(loc: tuple[int | str, ...]) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _text(error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"{_path(loc[:-1])}: additional properties '{loc[-1]}' not allowed"
    if kind == "missing":
        return f"{_path(loc[:-1])}: missing property '{loc[-1]}'"
    if kind in _JSON_TYPES:
        return f"{_path(loc)}: expected {_JSON_TYPES[kind]}"
    if kind in ("greater_than_equal", "too_short", "string_too_short"):
        bound = ctx.get("ge", ctx.get("min_length"))
        return f"{_path(loc)}: must be at least {bound}"
    if kind == "too_long":
        return f"{_path(loc)}: must have at most {ctx.get('max_length')} items"
    if kind == "literal_error":
        return f"{_path(loc)}: value must be one of {ctx.get('expected')}"
    if kind == "string_pattern_mismatch":
        return f"{_path(loc)}: does not match pattern {ctx.get('pattern')}"
    return f"{_path(loc)}: {error['msg']}"


def violations(error: ValidationError) -> list[str]:
    """Each violation of a body, as an `errors` text."""
    return [_text(item) for item in error.errors()]
