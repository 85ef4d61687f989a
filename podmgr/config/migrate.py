"""Rewriting an old flat pod_config.json in sections, and the effective config as JSON.

`migrate_data` keeps only what the file says (no defaults are added) and refuses a literal
`upstream_api_key`: a file in sections holds keys only as `${ENV}` references.
`effective_view` is what `podmgr config show` prints: every field with its default, keys
redacted.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from podmgr.config.flat import SECTIONS, to_sections
from podmgr.config.load import build_config, read_config_file
from podmgr.config.model import Config
from podmgr.errors import ConfigError

__all__ = ["effective_view", "migrate_data", "migrate_file"]

REDACTED = "<redacted>"


def migrate_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The file's own values in sections; ConfigError if they are invalid or hold a key."""
    key = data.get("upstream_api_key")
    if isinstance(key, str) and not key.startswith("${"):
        raise ConfigError(
            "holds a literal key; a config in sections names keys as ${ENV} references: put "
            'the key in an environment variable and set upstream_api_key to "${NAME}" first',
            field="upstream_api_key",
        )
    build_config(data, environ={})  # the same errors as a load, before anything is written
    sections = to_sections(data)
    if "upstreams" in sections:
        sections["upstreams"] = [_spec_data(spec) for spec in sections["upstreams"]]
    order = {name: index for index, name in enumerate(SECTIONS)}
    return dict(sorted(sections.items(), key=lambda item: order.get(item[0], len(order))))


def _spec_data(spec: Any) -> Any:
    """An upstream entry as the file would hold it (an entry made from upstream_url too)."""
    if isinstance(spec, Mapping):
        return dict(spec)
    return spec.model_dump(mode="json", exclude_defaults=True, include=spec.model_fields_set)


def migrate_file(file: Path) -> Path | None:
    """Rewrite `file` in sections, the old one kept as `<file>.bak`; None if nothing to do."""
    raw = json.loads(file.read_text(encoding="utf-8"))
    data = read_config_file(file)
    migrated = migrate_data(data)
    if migrated == data:
        return None
    if isinstance(raw, dict) and "$schema" in raw:
        migrated = {"$schema": raw["$schema"], **migrated}
    backup = file.with_name(file.name + ".bak")
    shutil.copy2(file, backup)
    file.write_text(json.dumps(migrated, indent=2) + "\n", encoding="utf-8")
    return backup


def effective_view(config: Config) -> dict[str, Any]:
    """Every section with every default, as JSON values; the proxy's keys redacted."""
    view = config.model_dump(mode="json")
    if config.pods is None:
        del view["pods"]  # a one-pod config shows as it always did
    view["proxy"]["api_keys"] = [REDACTED for _ in config.proxy.api_keys]
    for entry, spec in zip(view["upstreams"], config.upstreams, strict=True):
        if spec.literal_key is not None:
            entry["api_key"] = REDACTED
    return view
