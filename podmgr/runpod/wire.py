"""RunPod REST API v2 on the wire: the parts of the document's schemas podmgr sends and reads.

Written from RunPod's published OpenAPI 3.1 document (`api-reference-v2/openapi.json`,
"Runpod REST API" 2.0.0, components.schemas named on each class), not copied from it.
Field names are the document's camelCase.

Reading is lenient by default: a field the document lacks is kept aside, not refused, so a
richer answer never breaks a pass. `strict` (tests, `PODMGR_RUNPOD_STRICT=1`) refuses an
answer that carries a field the document lacks or misses one it requires: the simulator's
answers are checked against the document that way (`check_strict`).

Requests are written exactly: `CreatePodRequest` forbids unknown fields, as the document's
`unevaluatedProperties: false` does (RunPod answers 422 to one).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AvailabilityLevel",
    "CreateGpuConfig",
    "CreatePodRequest",
    "CudaVersionAvailability",
    "GpuConfig",
    "GpuType",
    "ListGpuTypesResponse",
    "ListPodBillingResponse",
    "ListPodsResponse",
    "Mounts",
    "NetworkMount",
    "NetworkVolume",
    "PersistentMount",
    "Pod",
    "PodBillingRecord",
    "PodRuntime",
    "PodStatus",
    "Problem",
    "ReadModel",
    "check_strict",
]

PodStatus = Literal["PROVISIONING", "STARTING", "RUNNING", "EXITED", "ERROR", "TERMINATED"]
AvailabilityLevel = Literal["NONE", "LOW", "MEDIUM", "HIGH"]
Cloud = Literal["SECURE", "COMMUNITY"]


class ReadModel(BaseModel):
    """An answer's object: unknown fields kept aside (`model_extra`); `REQUIRED` lists what
    the document requires, checked only in strict mode (`check_strict`)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    REQUIRED: ClassVar[frozenset[str]] = frozenset()


def check_strict(model: BaseModel, where: str = "$") -> list[str]:
    """Every departure from the document in a parsed answer: fields it lacks, required
    fields missing, recursively. Empty: the answer fits the document."""
    problems: list[str] = []
    if isinstance(model, ReadModel):
        problems += [f"{where}.{name}: not in the document" for name in model.model_extra or {}]
        fields = type(model).model_fields
        given = {fields[name].alias or name for name in model.model_fields_set if name in fields}
        problems += [
            f"{where}.{name}: required by the document, missing"
            for name in sorted(model.REQUIRED - given)
        ]
    for name in model.model_fields_set & set(type(model).model_fields):
        problems += _check_value(getattr(model, name), f"{where}.{name}")
    return problems


def _check_value(value: Any, where: str) -> list[str]:
    if isinstance(value, BaseModel):
        return check_strict(value, where)
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _check_value(item, f"{where}[{i}]")]
    return []


# --- errors -------------------------------------------------------------------------------
class Problem(ReadModel):
    """components.schemas.ErrorResponse: RFC 9457 problem details."""

    REQUIRED = frozenset({"title", "status", "detail"})
    title: str = ""
    status: int = 0
    detail: str = ""
    errors: list[str] | None = None


# --- pods ---------------------------------------------------------------------------------
class GpuConfig(ReadModel):
    """components.schemas.GpuConfig."""

    REQUIRED = frozenset({"id"})
    id: str = ""
    count: int = 1


class PersistentMount(BaseModel):
    """components.schemas.PersistentMount (`additionalProperties: false`)."""

    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=10)
    path: str


class NetworkMount(BaseModel):
    """components.schemas.NetworkMount (`additionalProperties: false`)."""

    model_config = ConfigDict(extra="forbid")
    volumeId: str
    path: str


class Mounts(BaseModel):
    """components.schemas.Mounts: at most one of `persistent` or `network`."""

    model_config = ConfigDict(extra="forbid")
    persistent: PersistentMount | None = None
    network: list[NetworkMount] | None = None


class PodRuntimePort(ReadModel):
    """components.schemas.PodRuntimePort."""

    private: int | None = None
    public: int | None = None
    type: str | None = None
    ip: str | None = None


class PodRuntime(ReadModel):
    """components.schemas.PodRuntime: "Null when the pod is not RUNNING" (Pod.runtime)."""

    uptime: int | None = None
    gpus: list[dict[str, Any]] | None = None
    cpu: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    ports: list[PodRuntimePort] | None = None


class Pod(ReadModel):
    """components.schemas.Pod (ContainerConfig + the pod's own fields)."""

    REQUIRED = frozenset(
        [
            "id",
            "name",
            "status",
            "actions",
            "image",
            "args",
            "disk",
            "mounts",
            "ports",
            "env",
            "registry",
            "cloud",
            "dataCenterId",
            "cudaVersion",
            "ssh",
            "template",
            "cost",
            "locked",
            "runtime",
            "createdAt",
            "startedAt",
            "globalNetworking",
        ]
    )
    id: str
    name: str = ""
    status: str = "UNKNOWN"  # PodStatus; an unknown one must not break a pass
    actions: list[str] = Field(default_factory=list)
    image: str | None = None
    args: str | None = None
    disk: int | None = None
    mounts: dict[str, Any] | None = None
    ports: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    registry: str | None = None
    gpu: GpuConfig | None = None
    cpu: dict[str, Any] | None = None
    cluster: dict[str, Any] | None = None
    cloud: str | None = None
    data_center_id: str | None = Field(default=None, alias="dataCenterId")
    cuda_version: str | None = Field(default=None, alias="cudaVersion")
    ssh: dict[str, Any] | None = None
    template: str | None = None
    cost: float = 0.0
    locked: bool = False
    runtime: PodRuntime | None = None
    created_at: str | None = Field(default=None, alias="createdAt")
    started_at: str | None = Field(default=None, alias="startedAt")
    global_networking: dict[str, Any] | None = Field(default=None, alias="globalNetworking")


class ListPodsResponse(ReadModel):
    """components.schemas.ListPodsResponse: `{"pods": [...]}`."""

    REQUIRED = frozenset({"pods"})
    pods: list[Pod] = Field(default_factory=list)


class CreateGpuConfig(BaseModel):
    """components.schemas.CreateGpuConfig: one GPU type, and the host CUDA constraint
    (`allowedCudaVersions` exact set, or `minCudaVersion` floor: never both)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    count: int = Field(1, ge=1)
    allowedCudaVersions: list[str] | None = None
    minCudaVersion: str | None = Field(default=None, pattern=r"^\d+\.\d+$")


class CreatePodRequest(BaseModel):
    """components.schemas.CreatePodRequest: what podmgr sends (unknown fields refused;
    attribute names are the document's)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    image: str | None = None
    args: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    ports: list[str] = Field(default_factory=list)
    disk: int | None = Field(default=None, ge=1)
    mounts: Mounts | None = None
    gpu: CreateGpuConfig
    cloud: Cloud = "SECURE"
    dataCenterIds: list[str] | None = None
    templateId: str | None = None

    def body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


# --- catalog ------------------------------------------------------------------------------
class CudaVersionAvailability(ReadModel):
    """components.schemas.CudaVersionAvailability."""

    REQUIRED = frozenset({"version", "available"})
    version: str
    available: bool = False


class GpuPrice(ReadModel):
    """GpuType.price: list USD/h for one GPU, per cloud."""

    REQUIRED = frozenset({"secure", "community"})
    secure: float | None = None
    community: float | None = None
    serverless: float | None = None


class GpuMaxCount(ReadModel):
    """GpuType.maxCount."""

    REQUIRED = frozenset({"secure", "community"})
    secure: int | None = None
    community: int | None = None


class DataCenterAvailability(ReadModel):
    """components.schemas.DataCenterAvailability."""

    REQUIRED = frozenset({"id", "name", "availability"})
    id: str
    name: str = ""
    availability: str = "NONE"


class GpuType(ReadModel):
    """components.schemas.GpuType (with include=AVAILABILITY: `availability`,
    `dataCenters`, `cudaVersions`)."""

    REQUIRED = frozenset(
        {"id", "name", "pool", "manufacturer", "memory", "secure", "community", "price"}
        | {"maxCount"}
    )
    id: str
    name: str = ""
    pool: str | None = None
    manufacturer: str | None = None
    memory: int | None = None
    secure: bool = False
    community: bool = False
    price: GpuPrice = Field(default_factory=GpuPrice)
    max_count: GpuMaxCount | None = Field(default=None, alias="maxCount")
    availability: str | None = None
    data_centers: list[DataCenterAvailability] | None = Field(default=None, alias="dataCenters")
    cuda_versions: list[CudaVersionAvailability] | None = Field(default=None, alias="cudaVersions")


class ListGpuTypesResponse(ReadModel):
    """components.schemas.ListGpuTypesResponse."""

    REQUIRED = frozenset({"gpus"})
    gpus: list[GpuType] = Field(default_factory=list)


# --- billing and volumes ------------------------------------------------------------------
class PodBillingRecord(ReadModel):
    """components.schemas.PodBillingRecord: one pod, one time bucket."""

    REQUIRED = frozenset(
        {"startTime", "endTime", "podId", "totalAmount", "gpuAmount", "cpuAmount", "diskAmount"}
    )
    start_time: str = Field(default="", alias="startTime")
    end_time: str = Field(default="", alias="endTime")
    pod_id: str = Field(default="", alias="podId")
    total_amount: float = Field(default=0.0, alias="totalAmount")
    gpu_amount: float = Field(default=0.0, alias="gpuAmount")
    cpu_amount: float = Field(default=0.0, alias="cpuAmount")
    disk_amount: float = Field(default=0.0, alias="diskAmount")


class ListPodBillingResponse(ReadModel):
    """components.schemas.ListPodBillingResponse."""

    REQUIRED = frozenset({"records", "metadata"})
    records: list[PodBillingRecord] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None


class NetworkVolume(ReadModel):
    """components.schemas.NetworkVolume."""

    REQUIRED = frozenset({"id", "name", "size", "dataCenter", "type"})
    id: str
    name: str = ""
    size: int | None = None
    data_center: str | None = Field(default=None, alias="dataCenter")
    type: str | None = None
