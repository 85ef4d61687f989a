"""The sections of the config, one model each, grouped as a user thinks of them.

`pod` (what to run and where: LiteLLM's `model_list`, SkyPilot's `resources`), `limits`
(how long and how much a session may cost), `startup` (how long a pod has to serve),
`watchdog` (the cron pass), `proxy` (the local OpenAI-compatible server, SkyPilot's
`service`), `cache` and `guard` (the limits' copy in the pod). `upstreams` is a plain list
of `UpstreamSpec` (upstreams.py). Checks within one section live on it; checks across
sections live on `Config` (model.py).

Every string that the RunPod API receives (model, image, docker args, env, names, GPU ids)
is checked here so that a quote, backslash or newline is a config error with its field
path, never a broken request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from podmgr.config.checks import (
    check_cuda_known,
    check_env_name_free,
    check_graphql_safe,
    is_loopback,
    resolve_env_value,
)
from podmgr.config.upstreams import check_wake_hours
from podmgr.cuda import DEFAULT_CUDA_FLOOR, cuda_key, image_cuda_floor
from podmgr.errors import ConfigError

__all__ = [
    "CacheSection",
    "GuardSection",
    "LimitsSection",
    "PodSection",
    "ProxySection",
    "StartupSection",
    "WatchdogSection",
]

GIB = 1024**3
RUNPOD_PROXY_TEMPLATE = "https://{pod_id}-{port}.proxy.runpod.net"
MIN_PROXY_KEY_CHARS = 16  # each of proxy.api_keys: not blank, not guessable
DEFAULT_IMAGE = "vllm/vllm-openai:v0.8.5"

_DATA_CENTER = re.compile(r"^[A-Z]{2,4}-[A-Z]{2,4}-[0-9]{1,2}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_SECTION = ConfigDict(extra="forbid", validate_assignment=True)


class PodSection(BaseModel):
    """The pod: model, image, GPUs, cloud, disks, volume, env."""

    model_config = _SECTION

    model: str = Field("Qwen/Qwen2.5-Coder-7B-Instruct", description="Model vLLM serves.")
    gpu_type_id: str | list[str] = Field(
        "NVIDIA GeForce RTX 4090",
        description="GPU type id, or an ordered list to fall back through on capacity errors.",
    )
    gpu_count: int = Field(1, ge=1, le=8)
    cloud_type: Literal["SECURE", "COMMUNITY", "ALL"] = "SECURE"
    # No template by default: ids are opaque and no template "vllm" is known to exist; a
    # template id on create gave the misleading "no longer any instances available"
    # (runpod-python#297; ../shared/RUNPOD_FACTS.md). The SDK omits a null one.
    template_id: str | None = Field(
        None, description="RunPod template id passed on create; null (default) sends none."
    )
    # Pinned, not `:latest`: each vLLM release raises the host CUDA it needs, and on an older
    # host the container never starts while the pod bills (v0.9.0 needs cuda>=12.8,
    # vllm#18813). v0.8.5 is the last release line built on CUDA 12.4 (vllm#5635).
    image_name: str = Field(DEFAULT_IMAGE, description="Container image (a pinned vLLM release).")
    # The host CUDA constraint (RunPod OpenAPI v2, CreateGpuConfig): a floor sent as
    # `gpu.minCudaVersion` (by default what the pinned image needs: v0.8.5 runs from 12.4),
    # or an exact set as `gpu.allowedCudaVersions`; never both, as the document says. Without
    # one a pod can land on a host too old for the image, never start and bill (cuda.py).
    min_cuda_version: str | None = Field(
        None,
        description="Lowest host CUDA version the pod may be placed on (sent as "
        "gpu.minCudaVersion); null: what the image tag needs (12.4 for v0.8.5; 12.8 for an "
        "image podmgr does not know).",
    )
    allowed_cuda_versions: list[str] | None = Field(
        None,
        description="An exact set of host CUDA versions instead of a floor (sent as "
        "gpu.allowedCudaVersions); excludes min_cuda_version.",
    )
    # Spot pods: about half the price, and RunPod may stop them at any time to give the GPU
    # to another pod (RunPod OpenAPI v1, PodCreateInput.interruptible).
    interruptible: bool = Field(
        False,
        description="Create spot (interruptible) pods; a preempted pod is resumed, or "
        "recreated when its host has no GPU free.",
    )
    max_preemptions: int = Field(
        2,
        ge=0,
        description="Preemptions per session on spot pods; at this many the session "
        "continues on an on-demand pod.",
    )
    # RunPod OpenAPI v2's CreatePodRequest has no public-IP switch and no download-speed
    # filter (v1 had both); the fields stay so that an older config gets a clear error.
    support_public_ip: bool = Field(
        False,
        description="Must be false: RunPod's REST API v2 has no public-IP switch (podmgr "
        "never uses a public IP).",
    )
    docker_args: str | None = Field(
        None, description="Container command; null builds one from model and vllm_args."
    )
    vllm_args: list[str] = Field(default_factory=list, description="Extra vLLM CLI args.")
    vllm_port: int = Field(8000, ge=1, le=65535, description="Port vLLM listens on in the pod.")
    container_disk_in_gb: int = Field(50, ge=1)
    volume_in_gb: int = Field(0, ge=0)
    volume_mount_path: str = "/workspace"
    # Stopping a pod wipes its container disk: without a volume every restart downloads the
    # model again (RUNPOD_FACTS.md "Startup as it really is"). A network volume persists
    # independently of pods and pins the pod to its data center (RunPod docs,
    # storage/network-volumes.mdx); vLLM's HF cache (HF_HOME) is put on the mount path.
    network_volume_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="RunPod network volume to mount at volume_mount_path; the weights are "
        "downloaded once per volume (HF_HOME on it). Secure Cloud only.",
    )
    data_center_ids: list[str] | None = Field(
        None,
        description="Data centers the pod may be placed in (e.g. EU-RO-1); with a network "
        "volume, must include the volume's.",
    )
    min_download_mbps: float | None = Field(
        None, description="Must be null: RunPod's REST API v2 has no download-speed filter."
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra pod env; a value '${NAME}' is read from this machine's env var NAME.",
    )
    pod_name_prefix: str = Field("podmgr-", min_length=1, max_length=40)
    endpoint_url_template: str = Field(
        RUNPOD_PROXY_TEMPLATE, description="Pod URL, with {pod_id} and {port}."
    )

    @field_validator("gpu_type_id")
    @classmethod
    def _gpu_ids_safe(cls, value: str | list[str]) -> str | list[str]:
        ids = [value] if isinstance(value, str) else value
        if not ids:
            raise ValueError("needs at least one GPU type id")
        for gpu in ids:
            if not gpu.strip():
                raise ValueError("GPU type id is empty")
            check_graphql_safe(gpu, "GPU type id")
        return value

    @field_validator("model", "image_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty or blank")
        return value

    @field_validator(
        "model", "image_name", "docker_args", "template_id", "pod_name_prefix", "volume_mount_path"
    )
    @classmethod
    def _graphql_safe(cls, value: str | None) -> str | None:
        if value is not None:
            check_graphql_safe(value)
        return value

    @field_validator("vllm_args")
    @classmethod
    def _args_safe(cls, value: list[str]) -> list[str]:
        for arg in value:
            check_graphql_safe(arg, "vLLM argument")
        return value

    @field_validator("env")
    @classmethod
    def _env_safe(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not _ENV_NAME.match(key):
                raise ValueError(f"env name {key!r} is not a valid variable name")
            check_env_name_free(key)
            check_graphql_safe(item, f"env {key}")
        return value

    @field_validator("min_cuda_version")
    @classmethod
    def _cuda_floor_known(cls, value: str | None) -> str | None:
        if value is not None:
            check_cuda_known(value)
        return value

    @field_validator("allowed_cuda_versions")
    @classmethod
    def _cuda_known(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError(
                "needs at least one CUDA version; an empty list would let RunPod place the "
                "pod on any host, also one too old for the image"
            )
        for version in value:
            check_cuda_known(version)
        return value

    @field_validator("data_center_ids")
    @classmethod
    def _data_centers(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("needs at least one data center id, or null for any")
        for item in value or ():
            if not _DATA_CENTER.match(item):
                raise ValueError(f"{item!r} does not look like a RunPod data center id (EU-RO-1)")
        return value

    @field_validator("support_public_ip", "min_download_mbps")
    @classmethod
    def _not_in_v2(cls, value: bool | float | None) -> bool | float | None:
        if value:
            raise ValueError(
                "RunPod's REST API v2 has no such create field (v1 had it; v1 was retired on "
                "2026-11-15): remove it from the config"
            )
        return value

    @field_validator("volume_in_gb")
    @classmethod
    def _volume_floor(cls, value: int) -> int:
        if 0 < value < 10:
            raise ValueError(
                "a pod volume is at least 10 GB (RunPod OpenAPI v2, PersistentMount.size); "
                "0 means none"
            )
        return value

    @field_validator("endpoint_url_template")
    @classmethod
    def _template_has_pod_id(cls, value: str) -> str:
        if "{pod_id}" not in value:
            raise ValueError("must contain {pod_id}")
        return value

    @model_validator(mode="after")
    def _pod_checks(self) -> PodSection:
        self._check_cuda_floor()
        if self.network_volume_id and self.cloud_type != "SECURE":
            raise ConfigError(
                f"is {self.cloud_type}, but network volumes exist only in Secure Cloud "
                "(RunPod docs, storage/network-volumes): use SECURE with network_volume_id",
                field="pod.cloud_type",
            )
        return self

    def _check_cuda_floor(self) -> None:
        if self.min_cuda_version is not None and self.allowed_cuda_versions is not None:
            raise ConfigError(
                "min_cuda_version and allowed_cuda_versions exclude each other (RunPod OpenAPI "
                "v2, CreateGpuConfig: 400 if both are sent): keep one",
                field="pod.allowed_cuda_versions",
            )
        needed = image_cuda_floor(self.image_name)
        if needed is None:
            return
        given = self.allowed_cuda_versions or (
            [self.min_cuda_version] if self.min_cuda_version else []
        )
        too_old = [v for v in given if cuda_key(v) < cuda_key(needed)]
        if too_old:
            field = "allowed_cuda_versions" if self.allowed_cuda_versions else "min_cuda_version"
            raise ConfigError(
                f"{', '.join(too_old)} below CUDA {needed}, which image {self.image_name} "
                "needs: a pod on such a host never starts and bills (vllm#18813)",
                field=f"pod.{field}",
            )

    @property
    def cuda_floor(self) -> str:
        """The oldest host CUDA version the pod may land on."""
        if self.allowed_cuda_versions:
            return min(self.allowed_cuda_versions, key=cuda_key)
        return self.min_cuda_version or image_cuda_floor(self.image_name) or DEFAULT_CUDA_FLOOR

    @property
    def weights_on_volume(self) -> bool:
        """A network volume or a pod volume is mounted: vLLM's HF cache goes there."""
        return bool(self.network_volume_id) or self.volume_in_gb > 0

    @property
    def hf_home(self) -> str:
        """vLLM's Hugging Face cache on the volume's mount path."""
        return self.volume_mount_path.rstrip("/") + "/huggingface"

    @property
    def gpu_type_ids(self) -> list[str]:
        """The GPU types to try, in order."""
        return [self.gpu_type_id] if isinstance(self.gpu_type_id, str) else list(self.gpu_type_id)

    def pod_url(self, pod_id: str, port: int | None = None) -> str:
        """The pod's public HTTP URL for vLLM (RunPod's proxy URL by default)."""
        return self.endpoint_url_template.format(pod_id=pod_id, port=port or self.vllm_port)

    def container_command(self) -> str:
        """docker_args for the pod: explicit, or vLLM serving `model` on `vllm_port`."""
        if self.docker_args is not None:
            return self.docker_args
        parts = ["--model", self.model, "--host", "0.0.0.0", "--port", str(self.vllm_port)]
        return " ".join([*parts, *self.vllm_args])

    def resolved_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The `env` table with `${NAME}` references replaced by this machine's values."""
        resolved = {}
        for key, value in self.env.items():
            real = resolve_env_value(value, environ)
            try:
                check_graphql_safe(real, f"the value of env {key}")
            except ValueError as error:
                raise ConfigError(str(error), field=f"pod.env.{key}") from None
            resolved[key] = real
        return resolved


class LimitsSection(BaseModel):
    """How long and how much a session may run, and when a request may start one."""

    model_config = _SECTION

    runtime_seconds: int = Field(3600, ge=1, description="Length of a session (hard).")
    max_cost_usd: float | None = Field(None, gt=0, description="Budget per session (hard).")
    idle_timeout_seconds: int | None = Field(
        None, ge=1, description="End the session after this long without a request."
    )
    max_restarts: int = Field(3, ge=0)
    wake_on_request: bool = Field(
        False, description="A request with no active session starts one, as `podmgr up`."
    )
    wake_hours: list[str] | None = Field(
        None, description='Local time windows a request may wake the pod in, e.g. ["08:00-20:00"].'
    )

    @field_validator("wake_hours")
    @classmethod
    def _wake_hours_ok(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            check_wake_hours(value)
        return value


class StartupSection(BaseModel):
    """How long a created or restarted pod has to serve, and how it is probed."""

    model_config = _SECTION

    # A real vLLM pod takes minutes to serve (image pull, weights download, load); dstack
    # waits 20 minutes for a pod (dstack commit 0c5f83732; ../shared/RUNPOD_FACTS.md,
    # "Startup as it really is"). These three add up to the startup budget: 60 + 114 x 10
    # = 1200 s. The old 10 + 20 x 5 = 110 s killed every real pod before it served.
    initial_wait_seconds: float = Field(
        60,
        ge=0,
        description="`podmgr up` checks a created or restarted pod first after this long; "
        "part of the startup budget.",
    )
    max_startup_attempts: int = Field(
        114,
        ge=1,
        description="Checks a pod gets to serve after the initial wait; the startup budget "
        "is initial_wait_seconds + max_startup_attempts * poll_interval_seconds.",
    )
    poll_interval_seconds: float = Field(
        10, gt=0, description="Seconds between the checks of `podmgr up` while a pod starts."
    )
    no_container_timeout_seconds: float = Field(
        900,
        gt=0,
        description="A pod still without a container this long after its create or restart "
        "is a likely image or host-CUDA problem: it is replaced on another host once per "
        "session; the second time ends the session.",
    )
    # A create RunPod answered with an error may have made a pod that listings show only
    # later (transformerlab-app#2305; ../shared/RUNPOD_FACTS.md): no other pod is created
    # for this long, so that a second one never bills beside it.
    create_confirm_seconds: float = Field(
        120,
        ge=0,
        description="How long a create that got no clear answer is looked for in RunPod's "
        "listing (and adopted when it shows up) before another pod is created.",
    )
    # Issue 22: `podmgr up` against an unreachable RunPod retried every 10 s forever. A pass
    # retries each call for up to api_retry_max_seconds (60 s), and one request may take its
    # 30 s timeout: with 80 s no further pass starts, so `up` ends within ~170 s.
    unreachable_seconds: float = Field(
        80,
        ge=0,
        description="`podmgr up` starts no further pass once its passes have failed to reach "
        "RunPod (network, 5xx, 429) for this long, and exits 6 (each pass retries its calls "
        "for up to api_retry_max_seconds first).",
    )
    health_probe_attempts: int = Field(
        3, ge=1, description="Failed pod /health probes in a row before vLLM counts as dead."
    )
    http_timeout_seconds: float = Field(10, gt=0, description="Timeout of pod health probes.")

    @property
    def budget_seconds(self) -> float:
        """How long a pod has from its create or restart to serve."""
        return self.initial_wait_seconds + self.max_startup_attempts * self.poll_interval_seconds


class WatchdogSection(BaseModel):
    """The cron pass: how often, its retries and backoffs, its state file, its log level."""

    model_config = _SECTION

    interval_seconds: int = Field(300, ge=1, description="How often cron runs us.")
    restart_backoff_seconds: float = Field(
        30, ge=0, description="Wait before restart n+1: this times 2**n (capped at 1 hour)."
    )
    api_retry_initial_seconds: float = Field(
        1, ge=0, description="First backoff of a retried RunPod API call (then x2, jittered)."
    )
    api_retry_max_seconds: float = Field(
        60, ge=0, description="Give up retrying a RunPod API call after this long in total."
    )
    proxy_start_timeout_seconds: float = Field(
        20, gt=0, description="How long a started proxy has to answer /health."
    )
    state_file: str = ".podmgr/state.json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class ProxySection(BaseModel):
    """The local OpenAI-compatible proxy: address, keys, TLS, limits, its upstream client."""

    model_config = _SECTION

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_keys: list[str] = Field(
        default_factory=list,
        description="Bearer keys required when not on loopback (16 characters at least each).",
    )
    use_https: bool = False
    ssl_cert: str | None = None
    ssl_key: str | None = None
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    enable_profiling: bool = False
    upstream_client: Literal["own", "aiohttp"] = Field(
        "own", description="HTTP client to the model server (both pass the same tests)."
    )
    upstream_timeout_seconds: float = Field(600, gt=0)
    upstream_allowed_fails: int = Field(
        3, ge=1, description="Failures within the cool-down window before an upstream rests."
    )
    upstream_cooldown_seconds: float = Field(
        60, gt=0, description="How long a failing upstream is skipped (LiteLLM cooldown_time)."
    )

    @field_validator("api_keys")
    @classmethod
    def _keys_not_guessable(cls, value: list[str]) -> list[str]:
        # A blank key matched a request with no Authorization header at all: on 0.0.0.0
        # with wake_on_request, such a request created a pod. A short key is guessed.
        for index, key in enumerate(value):
            if len(key.strip()) < MIN_PROXY_KEY_CHARS:
                what = "is blank" if not key.strip() else f"has {len(key.strip())} characters"
                raise ValueError(
                    f"key {index + 1} {what}; each key needs at least {MIN_PROXY_KEY_CHARS} "
                    "characters: a guessable key on a non-loopback address is an open GPU "
                    "that bills you (generate one: python3 -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))')"
                )
        return value

    @model_validator(mode="after")
    def _proxy_checks(self) -> ProxySection:
        if self.use_https and not (self.ssl_cert and self.ssl_key):
            raise ValueError("use_https needs ssl_cert and ssl_key")
        if not is_loopback(self.host) and not self.api_keys:
            raise ValueError(
                f"proxy host {self.host} is not loopback: set proxy api_keys so that "
                "the proxy requires a key"
            )
        return self

    @property
    def url(self) -> str:
        """Where this machine reaches the proxy."""
        scheme = "https" if self.use_https else "http"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{scheme}://{host}:{self.port}"


class CacheSection(BaseModel):
    """The proxy's answer cache: what is cached, where, how much."""

    model_config = _SECTION

    mode: Literal["all", "deterministic", "off"] = "all"
    dir: str = ".podmgr/cache"
    max_entries: int = Field(1000, ge=0, description="Cache entries (LRU).")
    max_bytes: int = Field(GIB, ge=0, description="Cache bytes on disk (LRU).")
    memory_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="Most recently used cache bodies kept in memory."
    )
    prewarm: str | None = Field(
        None, description="File of requests (JSON lines) replayed once the pod is ready."
    )
    fallback_answers: bool = Field(
        True, description="Cache answers of upstreams other than the pod too."
    )


class GuardSection(BaseModel):
    """The guard in the pod (podmgr/guard): the limits hold when this machine sleeps."""

    model_config = _SECTION

    enabled: bool = Field(
        True,
        description="Run the guard in the pod: it terminates its own pod at the deadline, "
        "budget or idle timeout when no watchdog pass comes (docs/guard.md).",
    )
    interval_seconds: float = Field(
        10, gt=0, description="How often the guard in the pod checks its limits."
    )
    lease_seconds: float | None = Field(
        None,
        ge=1,
        description="Off by default. The guard ends its pod when no watchdog pass renewed "
        "its lease for this long, counted from the guard's start (so longer than the "
        "startup budget); catches a cron job removed while a pod runs.",
    )
