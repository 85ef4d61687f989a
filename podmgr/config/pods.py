"""The `pods` section: several pods, each with its own model, behind one session and proxy.

Each entry is the fields of the `pod` section plus a `name` (shown in `podmgr up NAME`,
`X-Upstream`, `status` and metrics) and an optional `idle_timeout_seconds` of its own.
`configured_pods(config)` is the one way to read them: a config with only `pod` (or the
old flat form) reads as one entry named `pod`, so one-pod code paths do not change.

The checks across entries (names and models unique; `pod` and `pods` not both) live in
`check_pods` and run from `Config` (model.py).

ROUTE23 note: this is the proxy helper's small reader of the agreed interface; the core
helper's `Config.pods` replaces it when the branches meet (NOTES-23-ROUTE23.md).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from podmgr.config.sections import PodSection

if TYPE_CHECKING:
    from podmgr.config.model import Config

__all__ = ["DEFAULT_POD_NAME", "PodEntry", "check_pods", "configured_pods", "single_pod"]

DEFAULT_POD_NAME = "pod"
_POD_NAME = re.compile(r"^[a-z0-9-]{1,20}$")


class PodEntry(PodSection):
    """One entry of `pods`: a pod section with a name and its own idle time."""

    name: str = Field(description="Lower-case letters, digits and '-', 1-20 characters.")
    idle_timeout_seconds: int | None = Field(
        None, ge=1, description="Overrides limits.idle_timeout_seconds for this pod."
    )

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not _POD_NAME.match(value):
            raise ValueError("must be 1-20 lower-case letters, digits or '-'")
        return value


def single_pod(pod: PodSection) -> PodEntry:
    """The one entry a config with only `pod` (or the flat form) means."""
    return PodEntry.model_validate({**pod.model_dump(), "name": DEFAULT_POD_NAME})


def check_pods(pods: list[PodEntry]) -> None:
    """Names and models unique, at least one entry. ValueError names the entry."""
    if not pods:
        raise ValueError("pods needs at least one entry")
    names: set[str] = set()
    models: set[str] = set()
    for index, pod in enumerate(pods):
        if pod.name in names:
            raise ValueError(f"pods[{index}].name {pod.name!r} is used twice")
        if pod.model in models:
            raise ValueError(f"pods[{index}].model {pod.model!r} is served by two pods")
        names.add(pod.name)
        models.add(pod.model)


def configured_pods(config: Config) -> tuple[PodEntry, ...]:
    """Every configured pod, in order; never empty (module docstring)."""
    if config.pods:
        return tuple(config.pods)
    return (single_pod(config.pod),)
