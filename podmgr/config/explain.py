"""A config error as the user can act on it: which field, where its value came from, and
the field they probably meant.

pydantic says `limits.runtime_seconds: Input should be a valid integer` whether the value
was in the file or in `PODMGR_RUNTIME_SECONDS`, and answers a misspelt field with "Extra
inputs are not permitted" (issue 22). Here the message gains `(from PODMGR_RUNTIME_SECONDS)`
or `(in /path/pod_config.json)`, and an unknown field gets "did you mean ...?" from
difflib over the names allowed at that place (the section's fields and, at the top, the
sections and the old flat names too).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from podmgr.config.flat import FLAT_TO_SECTION, LEGACY_UPSTREAM, SECTIONS

__all__ = ["field_source", "unknown_field_message"]

_SECTION_TO_FLAT = {path: name for name, path in FLAT_TO_SECTION.items()}
_UPSTREAM_NAMES = frozenset({"upstreams", *LEGACY_UPSTREAM})


def field_source(loc: Sequence[str], env_names: Mapping[str, str], file: str | None) -> str | None:
    """`from VARIABLE` when an env override set the field at `loc`, else `in FILE`."""
    if loc and loc[0] == "upstreams":
        names: set[str] = set(_UPSTREAM_NAMES)
    elif len(loc) >= 3 and loc[0] == "pods":  # pods.N.field: an entry's field, as in `pod`
        names = {_SECTION_TO_FLAT.get(("pod", loc[2]), "")}
    elif len(loc) >= 2:
        names = {_SECTION_TO_FLAT.get((loc[0], loc[1]), "")}
    else:
        names = set()
    for name in sorted(names & set(env_names)):
        return f"from {env_names[name]}"
    return f"in {file}" if file else None


def unknown_field_message(root: type[BaseModel], loc: Sequence[str | int]) -> str:
    """What to say about the unknown field at `loc` (its last part) under `root`."""
    allowed = _allowed_names(root, loc[:-1])
    place = ".".join(str(part) for part in loc[:-1] if not isinstance(part, int))
    entry = any(isinstance(part, int) for part in loc[:-1])  # pods.1.x: inside a list
    where = f"not a field of {'an entry of ' * entry}{place}" if place else "not a config field"
    guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    if guess:
        return f"{where}; did you mean {guess[0]!r}?"
    return f"{where} (known: {', '.join(sorted(allowed))})"


def _allowed_names(root: type[BaseModel], parent: Sequence[str | int]) -> list[str]:
    model = _model_at(root, parent)
    if model is None:
        return []
    names = [name for name in model.model_fields if name != "base_dir"]
    if not parent:  # a file may still use the old flat names
        names += [*SECTIONS, *FLAT_TO_SECTION, *LEGACY_UPSTREAM]
    return sorted(set(names))


def _model_at(root: type[BaseModel], path: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that holds the fields at `path` (through lists and optionals)."""
    current: Any = root
    for part in path:
        current = _unwrap(current)
        if isinstance(part, int):
            continue  # the list was unwrapped to its item type
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = field.annotation
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """`list[X]`, `X | None`, `Optional[X]` -> X (the first model among the arguments)."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation
