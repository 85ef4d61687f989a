"""The configuration: pod_config.json in sections, validated by pydantic, overridden by env.

One concept per module: `checks` (value checks shared by the sections, `${NAME}`),
`upstreams` (the `upstreams` entries), `sections` (one model per section), `model`
(`Config`: the sections and the checks across them), `flat` (the old flat form, read into
sections at load), `load` (finding, reading, env overrides), `migrate` (rewriting a file
in sections, `podmgr config show`'s view).
"""

from __future__ import annotations

from podmgr.config.checks import check_graphql_safe, resolve_env_value
from podmgr.config.load import (
    CONFIG_FILENAME,
    build_config,
    config_schema,
    env_overrides,
    find_config_path,
    load_config,
    read_config_file,
)
from podmgr.config.model import Config
from podmgr.config.sections import (
    CacheSection,
    GuardSection,
    LimitsSection,
    PodSection,
    ProxySection,
    StartupSection,
    WatchdogSection,
)

__all__ = [
    "CONFIG_FILENAME",
    "CacheSection",
    "Config",
    "GuardSection",
    "LimitsSection",
    "PodSection",
    "ProxySection",
    "StartupSection",
    "WatchdogSection",
    "build_config",
    "check_graphql_safe",
    "config_schema",
    "env_overrides",
    "find_config_path",
    "load_config",
    "read_config_file",
    "resolve_env_value",
]
