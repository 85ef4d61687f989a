"""`Config`: the sections of pod_config.json in one model, with the checks across sections.

Each part of the code reads its own section (`config.pod`, `config.limits`, ...); what
needs the file's directory (`resolve_path`, `state_path`, `cache_path`) lives here.

`config.pods` is always a non-empty tuple of named pods (pods.py): the file's `pods`, or its
one `pod` as the entry named "pod". `config.pod` is the first entry, for one-pod code paths.
A dump names the set the way the file did (`pod` or `pods`), so it validates again.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from podmgr.config.flat import to_sections
from podmgr.config.pods import DEFAULT_POD_NAME, PodEntry, check_entry, check_pod_set
from podmgr.config.sections import (
    CacheSection,
    GuardSection,
    LimitsSection,
    PodSection,
    ProxySection,
    StartupSection,
    WatchdogSection,
)
from podmgr.config.upstreams import (
    UpstreamSpec,
    check_pod_upstreams,
    check_upstream_list,
    pod_upstreams,
)
from podmgr.errors import ConfigError

__all__ = ["Config"]


def _the_pod() -> list[UpstreamSpec]:
    return [UpstreamSpec.model_validate({"name": "pod", "kind": "pod"})]


class Config(BaseModel):
    """Everything the watchdog and the proxy need; defaults match the original tool."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    pod: PodSection = Field(
        default_factory=lambda: PodSection.model_validate({}),
        description="The pod (one pod); with `pods`, the first entry (not written beside it).",
    )
    pods: tuple[PodEntry, ...] = Field(
        default=(),
        description="Several pods, each serving its own model, in one session; excludes `pod`.",
    )
    limits: LimitsSection = Field(default_factory=lambda: LimitsSection.model_validate({}))
    startup: StartupSection = Field(default_factory=lambda: StartupSection.model_validate({}))
    watchdog: WatchdogSection = Field(default_factory=lambda: WatchdogSection.model_validate({}))
    proxy: ProxySection = Field(default_factory=lambda: ProxySection.model_validate({}))
    cache: CacheSection = Field(default_factory=lambda: CacheSection.model_validate({}))
    upstreams: list[UpstreamSpec] = Field(
        default_factory=_the_pod,
        description="Ordered upstreams (pod and OpenAI-compatible fallbacks); default: the pod.",
    )
    guard: GuardSection = Field(default_factory=lambda: GuardSection.model_validate({}))

    # Where the file was read from; relative paths resolve against it. Not part of the file.
    base_dir: str = Field(".", exclude=True, description="(internal) directory of the file")

    @model_validator(mode="before")
    @classmethod
    def _read_flat(cls, data: Any) -> Any:
        """An old flat config (or flat fields beside sections) read into sections."""
        if not isinstance(data, Mapping):
            return data
        sections = to_sections(data)
        if "pods" in sections and "pod" in sections:
            raise ConfigError(
                "pods and pod (or the old flat pod fields) exclude each other: put every "
                "pod in pods",
                field="pods",
            )
        return sections

    @field_validator("pods", mode="before")
    @classmethod
    def _entry_errors_named(cls, value: Any) -> Any:
        """A check inside an entry names `pods.N.<field>`, not `pod.<field>`."""
        if isinstance(value, list | tuple):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    check_entry(index, item)
        return value

    @field_validator("upstreams")
    @classmethod
    def _upstreams_ok(cls, value: list[UpstreamSpec]) -> list[UpstreamSpec]:
        check_upstream_list(value)
        return value

    @model_validator(mode="after")
    def _pod_set(self) -> Config:
        """`pods` given: `pod` is its first entry; else `pod` is the one entry "pod"."""
        if "pods" in self.model_fields_set:
            check_pod_set(self.pods)
            # __dict__: an assignment would validate (and run this validator) again.
            self.__dict__["pod"] = self.pods[0].section()
        else:
            entry = {**self.pod.model_dump(exclude_unset=True), "name": DEFAULT_POD_NAME}
            self.__dict__["pods"] = (PodEntry.model_validate(entry),)
        return self

    @model_serializer(mode="wrap")
    def _dump_as_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave out the derived one of `pod` and `pods`, so a dump validates again."""
        data = cast(dict[str, Any], handler(self))
        data.pop("pod" if "pods" in self.model_fields_set else "pods", None)
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        self._pods_into_sections()
        lease = self.guard.lease_seconds
        if lease is not None and lease < 2 * self.watchdog.interval_seconds:
            raise ConfigError(
                "must be at least twice the watchdog's interval_seconds "
                "(watchdog_interval_seconds): one late pass must not end the pod",
                field="guard.lease_seconds",
            )
        if self.limits.wake_on_request and self.pod_upstream is None:
            raise ValueError("wake_on_request needs the pod among the upstreams (kind 'pod')")
        return self

    def _pods_into_sections(self) -> None:
        """With `pods`: `pod` means the first entry, and `upstreams` (when the file does
        not list them) is one pod upstream per pod, named by it and serving its model."""
        if "pods" not in self.model_fields_set:
            named = [spec.pod for spec in self.upstreams if spec.pod not in (None, "pod")]
            if named:
                raise ConfigError(
                    f"names pod {named[0]!r}, but only `pods` names pods", field="upstreams"
                )
            if sum(spec.kind == "pod" for spec in self.upstreams) > 1:
                raise ConfigError(
                    "at most one upstream of kind 'pod' (several pods: list them in `pods`)",
                    field="upstreams",
                )
            return
        if "upstreams" not in self.model_fields_set:
            self.__dict__["upstreams"] = pod_upstreams(self.pods)
        check_pod_upstreams(self.upstreams, self.pods)

    @property
    def pod_upstream(self) -> UpstreamSpec | None:
        """The upstream entry of the managed pod, if the pod is one of the upstreams."""
        return next((spec for spec in self.upstreams if spec.kind == "pod"), None)

    @property
    def lists_pods(self) -> bool:
        """True when the file named its pods in `pods` (its fields are then `pods.N.<field>`),
        False for a `pod` section or a flat file (`pod.<field>`)."""
        return "pods" in self.model_fields_set

    def pod_field(self, index: int, field: str) -> str:
        """How an error names `field` of the index-th pod: `pods.1.gpu_type_id` for a file
        with `pods`, `pod.gpu_type_id` for one pod (the path pydantic's errors give too)."""
        return f"pods.{index}.{field}" if self.lists_pods else f"pod.{field}"

    @property
    def pod_names(self) -> tuple[str, ...]:
        """The configured pods' names, in the file's order."""
        return tuple(entry.name for entry in self.pods)

    def pod_entry(self, name: str) -> PodEntry:
        """The configured pod called `name`; ConfigError naming the known ones otherwise."""
        for entry in self.pods:
            if entry.name == name:
                return entry
        known = ", ".join(self.pod_names)
        raise ConfigError(f"no pod is called {name!r} (configured: {known})", field="pods")

    def idle_timeout_for(self, name: str) -> int | None:
        """The idle time of pod `name`: its own, else limits.idle_timeout_seconds."""
        own = self.pod_entry(name).idle_timeout_seconds
        return own if own is not None else self.limits.idle_timeout_seconds

    def resolve_path(self, value: str) -> Path:
        """A path from the config, absolute, relative ones taken from the file's directory."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(self.base_dir) / path

    @property
    def state_path(self) -> Path:
        """The watchdog's state file."""
        return self.resolve_path(self.watchdog.state_file)

    @property
    def cache_path(self) -> Path:
        """The proxy's cache directory."""
        return self.resolve_path(self.cache.dir)
