"""The `pods` section: several pods, each serving its own model, in one session (issue 23).

An entry is a `pod` section (PodSection, same fields and defaults) plus a `name` (what
`podmgr up NAME`, `X-Upstream`, the state and `status` call the pod) and an optional
`idle_timeout_seconds` that overrides `limits.idle_timeout_seconds` for that pod alone (an
autocomplete pod may idle out sooner than the chat pod).

A config with only `pod` (or the old flat form) reads as one entry named `pod`
(`DEFAULT_POD_NAME`), so every one-pod code path and state file keeps working. `pod` and
`pods` together are refused (which one would win is a guess), as are two entries with the
same name (the state keys records by name) or the same model (a request is routed by model:
two pods for one model would leave the route a guess and bill twice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, ValidationError

from podmgr.config.sections import PodSection
from podmgr.config.served import check_served_ids
from podmgr.errors import ConfigError

__all__ = [
    "DEFAULT_POD_NAME",
    "POD_NAME_PATTERN",
    "PodEntry",
    "check_entry",
    "check_pod_set",
    "entry_field",
]

DEFAULT_POD_NAME = "pod"
POD_NAME_PATTERN = r"^[a-z0-9-]{1,20}$"


class PodEntry(PodSection):
    """One entry of `pods`: a pod section with its name and its own idle time."""

    name: str = Field(
        pattern=POD_NAME_PATTERN,
        description="The pod's name (lower-case letters, digits, '-'; 1-20 characters): "
        "`podmgr up NAME`, X-Upstream, status.",
    )
    idle_timeout_seconds: int | None = Field(
        None,
        ge=1,
        description="End this pod alone after this long without a request for its model; "
        "default: limits.idle_timeout_seconds.",
    )

    def section(self) -> PodSection:
        """The entry as a plain pod section (what one-pod code paths read)."""
        return PodSection.model_validate(
            self.model_dump(exclude={"name", "idle_timeout_seconds"}, exclude_unset=True)
        )


def check_pod_set(entries: Sequence[PodEntry]) -> None:
    """ConfigError (field `pods`) for an empty set, a name or model given twice (a model id
    from `--served-model-name` included), or pods with different `pod_name_prefix` (the
    watchdog lists our pods by one prefix)."""
    if not entries:
        raise ConfigError("needs at least one pod", field="pods")
    prefixes = sorted({entry.pod_name_prefix for entry in entries})
    if len(prefixes) > 1:
        raise ConfigError(
            f"every pod needs the same pod_name_prefix (given: {', '.join(prefixes)}): the "
            "watchdog finds the pods of a set by one prefix",
            field="pods",
        )
    check_served_ids(entries)
    for what in ("name", "model"):
        seen: set[str] = set()
        for entry in entries:
            value = getattr(entry, what)
            if value in seen:
                raise ConfigError(
                    f"two pods have the {what} {value!r}; each pod needs its own {what}"
                    + (" (requests are routed by model)" if what == "model" else ""),
                    field="pods",
                )
            seen.add(value)


def entry_field(index: int, field: str) -> str:
    """`pod.gpu_type_id` (a pod section's own name for its field) as `pods.1.gpu_type_id`:
    the same path pydantic gives a type error in that entry (explain.py, load.py)."""
    return f"pods.{index}.{field.removeprefix('pod.')}"


def check_entry(index: int, data: Mapping[str, Any]) -> None:
    """Run entry `index`'s own checks; a ConfigError they raise (PodSection's checks across
    fields name `pod.<field>`) is raised again naming `pods.<index>.<field>`. A type error
    is left to the validation of the list, which names the entry itself."""
    try:
        PodEntry.model_validate(data)
    except ValidationError:
        return
    except ConfigError as error:
        field = entry_field(index, error.field) if error.field else f"pods.{index}"
        raise ConfigError(str(error).removeprefix(f"{error.field}: "), field=field) from None
