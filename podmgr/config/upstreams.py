"""The `upstreams` config: an ordered list of where the proxy may send a request.

Each entry is a managed pod (`kind: "pod"`, at most one per configured pod, named by
`pod`; its URL and key come from the watchdog's state file) or any OpenAI-compatible
server (`kind: "openai"`: OpenRouter, a RunPod Serverless vLLM endpoint, Ollama,
llama.cpp, another vLLM) with its `base_url`.
A request goes to the first entry, in order, that serves its model and is available
(proxy/upstream/router.py). Keys are never stored in the file: `api_key` must be a
`${ENV}` reference, read when the proxy or `podmgr upstreams test` starts.

After load `upstreams` is never empty: without it the one upstream is the pod (with
`pods`, one pod upstream per pod, named by the pod and serving exactly its model:
`pod_upstreams`). An old
flat file's `upstream_url`/`upstream_api_key` become one `openai` entry at load
(flat.py); that entry alone may hold a literal key, kept out of every dump.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from podmgr.config.checks import resolve_env_value
from podmgr.config.served import served_models
from podmgr.errors import ConfigError

__all__ = [
    "UpstreamSpec",
    "check_pod_upstreams",
    "check_upstream_list",
    "check_wake_hours",
    "in_wake_hours",
    "parse_window",
    "pod_upstreams",
    "resolve_key",
    "upstream_line",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers an entry may not set: the proxy sets them (auth from api_key, framing).
_RESERVED_HEADERS = frozenset(
    {"authorization", "host", "content-length", "transfer-encoding", "connection"}
)


class UpstreamSpec(BaseModel):
    """One entry of `upstreams` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Shown in X-Upstream, /health, the dashboard and metrics.")
    kind: Literal["pod", "openai"] = Field(description="pod: the managed pod; openai: base_url.")
    pod: str | None = Field(
        None,
        description="kind pod: the name of the configured pod (in `pods`) it is; null: the "
        "pod named like this entry, or the only pod.",
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible root, with or without a trailing /v1 (openai)."
    )
    api_key: str | None = Field(
        None, description="A ${ENV} reference to the upstream's key (never the key itself)."
    )
    models: list[str] | Literal["*"] = Field(
        "*", description="The request models this upstream serves, or '*' for any."
    )
    model_map: dict[str, str] = Field(
        default_factory=dict, description="Requested model name -> the upstream's model id."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers sent with every request (e.g. X-Title)."
    )
    connect_timeout_seconds: float = Field(10, gt=0)
    read_timeout_seconds: float | None = Field(
        None, gt=0, description="Silence allowed mid-answer; null: upstream_timeout_seconds."
    )
    price_input_per_million: float | None = Field(
        None, ge=0, description="USD per million prompt tokens (turns usage into money)."
    )
    price_output_per_million: float | None = Field(
        None, ge=0, description="USD per million completion tokens."
    )
    # The literal `upstream_api_key` of an old flat file: not a field, so never in a file,
    # a dump, the schema or `podmgr config show`.
    _literal_key: str | None = PrivateAttr(None)

    @classmethod
    def from_url(cls, base_url: str, api_key: str | None) -> UpstreamSpec:
        """The entry an old flat file's `upstream_url` and `upstream_api_key` meant."""
        fields: dict[str, Any] = {"name": "upstream", "kind": "openai", "base_url": base_url}
        reference = api_key is not None and _ENV_REFERENCE.match(api_key) is not None
        spec = cls.model_validate({**fields, "api_key": api_key} if reference else fields)
        if api_key is not None and not reference:
            spec._literal_key = api_key
        return spec

    @property
    def literal_key(self) -> str | None:
        """The key written into an old flat file (upstream_api_key), if that is its source."""
        return self._literal_key

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "must be 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _url_ok(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment")
        return value

    @field_validator("api_key")
    @classmethod
    def _key_is_reference(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_REFERENCE.match(value):
            raise ValueError(
                "must be a ${ENV_NAME} reference to an environment variable; keys are "
                "never written into the config file"
            )
        return value

    @field_validator("models")
    @classmethod
    def _models_ok(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list) and (not value or any(not m.strip() for m in value)):
            raise ValueError("must be '*' or a non-empty list of model names")
        return value

    @field_validator("headers")
    @classmethod
    def _headers_ok(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name} is set by the proxy; use api_key for keys")
            if any(ch in item for ch in "\r\n\0"):
                raise ValueError(f"header {name} holds CR, LF or NUL")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> UpstreamSpec:
        if self.kind == "openai" and self.base_url is None:
            raise ValueError("an upstream of kind 'openai' needs base_url")
        if self.kind == "pod" and self.base_url is not None:
            raise ValueError("the pod's URL comes from the state file: drop base_url")
        if self.kind != "pod" and self.pod is not None:
            raise ValueError("only an upstream of kind 'pod' names a pod")
        return self

    @property
    def pod_name(self) -> str:
        """The configured pod this managed-pod upstream is (resolved at load)."""
        return self.pod or "pod"

    def serves(self, model: str | None) -> bool:
        """True if a request for `model` may go here (no model: any upstream may)."""
        if self.models == "*" or model is None:
            return True
        return model in self.models or model in self.model_map

    def upstream_model(self, model: str) -> str:
        """The model id to send this upstream for a request naming `model`."""
        return self.model_map.get(model, model)


def check_upstream_list(upstreams: list[UpstreamSpec]) -> None:
    """Across entries: names unique. ValueError names the entry. (Which pod each entry of
    kind pod is, and at most one per pod, needs the pods: `check_pod_upstreams`, and
    Config for a config without `pods`.)"""
    seen: set[str] = set()
    for index, spec in enumerate(upstreams):
        if spec.name in seen:
            raise ValueError(f"upstreams[{index}].name {spec.name!r} is used twice")
        seen.add(spec.name)
    if not upstreams:
        raise ValueError("upstreams needs at least one entry")


class _Pod(Protocol):
    name: str
    model: str
    vllm_args: list[str]


def _ids(pod: _Pod) -> list[str]:
    """The model ids the pod answers to (its `--served-model-name`s, else its model)."""
    return list(served_models(pod.model, pod.vllm_args))


def pod_upstreams(pods: Sequence[_Pod]) -> list[UpstreamSpec]:
    """The default `upstreams` with `pods`: one managed-pod entry per pod, named by the pod
    and serving exactly its model (so a request routes by its model): the ids its vLLM
    answers to, `--served-model-name`'s when its vllm_args give them."""
    return [
        UpstreamSpec.model_validate(
            {"name": pod.name, "kind": "pod", "pod": pod.name, "models": _ids(pod)}
        )
        for pod in pods
    ]


def check_pod_upstreams(upstreams: list[UpstreamSpec], pods: Sequence[_Pod]) -> None:
    """With `pods`: each entry of kind pod names a configured pod (by `pod`, else by its own
    name; the only pod when there is one), at most once; an entry with `models: "*"` serves
    its pod's model. Entries are resolved in place. ConfigError names the entry."""
    by_name = {pod.name: pod for pod in pods}
    taken: set[str] = set()
    for index, spec in enumerate(upstreams):
        if spec.kind != "pod":
            continue
        name = spec.pod or (spec.name if spec.name in by_name else None)
        if name is None and len(pods) == 1:
            name = pods[0].name
        if name is None or name not in by_name:
            raise ConfigError(
                f"names no configured pod ({', '.join(by_name)}); set its `pod`",
                field=f"upstreams[{index}].pod",
            )
        if name in taken:
            raise ConfigError(
                f"pod {name!r} has two upstreams of kind 'pod'", field=f"upstreams[{index}]"
            )
        taken.add(name)
        models = _ids(by_name[name]) if spec.models == "*" and len(pods) > 1 else spec.models
        upstreams[index] = spec.model_copy(update={"pod": name, "models": models})


def resolve_key(spec: UpstreamSpec, environ: Mapping[str, str] | None = None) -> str | None:
    """The key `spec.api_key` names, read from the environment (ConfigError if unset)."""
    if spec.literal_key is not None:
        return spec.literal_key
    if spec.api_key is None:
        return None
    try:
        return resolve_env_value(spec.api_key, environ)
    except ConfigError as error:
        message = str(error).removeprefix(f"{error.field}: ")
        raise ConfigError(message, field=f"upstreams.{spec.name}.api_key") from None


_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def parse_window(text: str) -> tuple[int, int]:
    """ "08:00-20:00" as minutes of the day (start, end); end < start wraps past midnight."""
    match = _WINDOW.match(text.strip())
    if not match:
        raise ValueError(f"wake window {text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    return h1 * 60 + m1, min(h2 * 60 + m2, 24 * 60)


def check_wake_hours(windows: list[str]) -> None:
    for window in windows:
        parse_window(window)


def in_wake_hours(windows: list[str] | None, minute_of_day: int) -> bool:
    """True if `minute_of_day` (local time) lies in one of `windows` (None: always)."""
    if windows is None:
        return True
    for window in windows:
        start, end = parse_window(window)
        inside = start <= minute_of_day < end if start <= end else not end <= minute_of_day < start
        if inside:
            return True
    return False


def upstream_line(view: dict[str, Any]) -> str:
    """One upstream in words: state, calls, errors, latency, tokens, money."""
    if view["available"]:
        state = "available"
    elif view["cooling_down_seconds"]:
        state = f"cooling down {view['cooling_down_seconds']:.0f}s"
    else:
        state = "not ready"
    latency = view["mean_latency_seconds"]
    mean = f"{latency * 1000:.0f} ms mean" if latency is not None else "- ms"
    return (
        f"{state}, {view['requests']} calls, {view['errors']} errors, {mean}, "
        f"{view['prompt_tokens']}+{view['completion_tokens']} tokens, ${view['cost_usd']:.4f}"
    )
