"""Finding, reading and validating pod_config.json, with env overrides on top.

Where the file is found (first hit wins): `--config PATH`, `$PODMGR_CONFIG`,
`./pod_config.json`, then the `pod_config.json` beside the package's checkout (so cron works
without `cd`). Relative paths inside the file (cache.dir, watchdog.state_file, ...) are
resolved against the directory of the file, not the current directory.

A file in sections and an old flat file load into the same `Config` (flat.py). Environment
overrides, strongest first: `PODMGR_<FIELD>` with the old flat names (JSON values are
parsed, so `PODMGR_GPU_TYPE_ID='["A","B"]'` works), then the original tool's
`MAX_CACHE_SIZE`, `CACHE_SIZE_BYTES`, `ENABLE_PROFILING` and `PREWARM_CACHE`. With
`pods` in the file, a pod field's override is refused naming its variable, except
`PODMGR_ENDPOINT_URL_TEMPLATE` and `PODMGR_POD_NAME_PREFIX`, which set every entry
(`_pod_overrides`).

An invalid value is exit 2 naming the field and where its value came from: the
variable (`from PODMGR_RUNTIME_SECONDS`) or the file (`in /path/pod_config.json`); an
unknown field gets "did you mean ...?" (explain.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from podmgr.config.explain import field_source, unknown_field_message
from podmgr.config.flat import FLAT_TO_SECTION, LEGACY_UPSTREAM, flat_keys, to_sections
from podmgr.config.model import Config
from podmgr.errors import ConfigError

__all__ = [
    "CONFIG_FILENAME",
    "build_config",
    "config_schema",
    "env_overrides",
    "env_sources",
    "find_config_path",
    "load_config",
    "read_config_file",
]

CONFIG_FILENAME = "pod_config.json"

SEED_ENV_OVERRIDES: Mapping[str, str] = {
    "MAX_CACHE_SIZE": "max_cache_size",
    "CACHE_SIZE_BYTES": "max_cache_bytes",
    "ENABLE_PROFILING": "enable_profiling",
    "PREWARM_CACHE": "prewarm_cache",
}
# Old flat names an env override may use (`upstreams` keeps its name).
_ENV_NAMES = frozenset({*FLAT_TO_SECTION, *LEGACY_UPSTREAM, "upstreams"})


def config_schema() -> dict[str, Any]:
    """The JSON Schema of pod_config.json in sections (`podmgr config schema`)."""
    schema = Config.model_json_schema()
    schema["properties"].pop("base_dir", None)
    return schema


def find_config_path(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where to read the config from; see the module docstring for the order."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit).expanduser()
    if env.get("PODMGR_CONFIG"):
        return Path(env["PODMGR_CONFIG"]).expanduser()
    local = Path.cwd() / CONFIG_FILENAME
    if local.exists():
        return local
    return Path(__file__).resolve().parents[2] / CONFIG_FILENAME


def _parse_env_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Config values set in the environment, by old flat name (seed names first, PODMGR_*)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, field in SEED_ENV_OVERRIDES.items():
        if env.get(name):
            values[field] = _parse_env_value(env[name])
    for name, raw in env.items():
        if name.startswith("PODMGR_") and name[7:].lower() in _ENV_NAMES:
            values[name[7:].lower()] = _parse_env_value(raw)
    if isinstance(values.get("enable_profiling"), str):
        values["enable_profiling"] = values["enable_profiling"].lower() in ("1", "true", "yes")
    if values.get("prewarm_cache") is not None:
        values["prewarm_cache"] = str(values["prewarm_cache"])
    return values


def env_sources(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Which variable set each overridden field, by old flat name (as env_overrides reads)."""
    env = os.environ if environ is None else environ
    names = {field: name for name, field in SEED_ENV_OVERRIDES.items() if env.get(name)}
    for name in env:
        if name.startswith("PODMGR_") and name[7:].lower() in _ENV_NAMES:
            names[name[7:].lower()] = name
    return names


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` over `base`, section by section (a section's fields merge; anything else wins)."""
    out = dict(base)
    for key, value in top.items():
        below = out.get(key)
        if isinstance(below, dict) and isinstance(value, dict):
            out[key] = {**below, **value}
        else:
            out[key] = value
    return out


_SECTION_TO_FLAT = {path: name for name, path in FLAT_TO_SECTION.items()}


def _as_written(loc: tuple[str, ...], flat: set[str]) -> str:
    """A field path named as the user wrote it: the old flat name for a flat field."""
    old = _SECTION_TO_FLAT.get((loc[0], loc[1])) if len(loc) >= 2 else None
    if old in flat:
        loc = (str(old), *loc[2:])
    return ".".join(loc) or "(file)"


def _explained(
    loc: tuple[str | int, ...], message: str, flat: set[str], sources: _Sources
) -> ConfigError:
    """The error at `loc` named as written, with where its value came from."""
    parts = tuple(str(part) for part in loc)
    env_names, file = sources
    where = field_source(parts, env_names, file)
    from_env = where is not None and where.startswith("from ")
    field = ".".join(parts) if from_env else _as_written(parts, flat)
    return ConfigError(f"{message} ({where})" if where else message, field=field or "(file)")


# (flat name -> variable that set it, path of the file or None)
_Sources = tuple[Mapping[str, str], "str | None"]


def _format_validation_error(
    error: ValidationError, flat: set[str], sources: _Sources
) -> ConfigError:
    errors = error.errors()
    # a misspelt name also leaves its field missing: the misspelling is the one to show
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        message = unknown_field_message(Config, loc)
    else:
        message = first["msg"].removeprefix("Value error, ")
    return _explained(loc, message, flat, sources)


# Pod fields that an env override sets on every entry of `pods`: where pods are reached and
# how ours are named are the machine's and the set's (a set needs one pod_name_prefix), not
# one pod's choice. The simulator's rehearsal sets PODMGR_ENDPOINT_URL_TEMPLATE (README).
SET_WIDE_POD_FIELDS = frozenset({"endpoint_url_template", "pod_name_prefix"})


def _pod_overrides(
    data: Mapping[str, Any], env: Mapping[str, Any], sources: _Sources
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, env) with a set-wide pod override moved into every entry of the file's `pods`.

    Without `pods` both come back as they are. With `pods`, any other pod-field override is
    a ConfigError naming the variable: which entry it meant is a guess (one model for every
    pod would give two pods one model, which a set refuses). Overrides of session-wide
    fields (limits, proxy, cache, watchdog, startup, guard, upstreams) apply to a set as to
    one pod."""
    if "pods" not in data or not isinstance(data["pods"], list):
        return dict(data), dict(env)
    pod_fields = sorted(name for name in env if FLAT_TO_SECTION.get(name, ("",))[0] == "pod")
    refused = [name for name in pod_fields if name not in SET_WIDE_POD_FIELDS]
    if refused:
        env_names, file = sources
        name = refused[0]
        where = f" ({file})" if file else ""
        raise ConfigError(
            f"sets pod.{name}, but this config lists its pods in `pods`{where}: set {name} "
            "in the entry of `pods` it is for, and unset the variable (overrides of "
            "session-wide fields, such as PODMGR_RUNTIME_SECONDS or PODMGR_MAX_COST_USD, "
            "still apply; PODMGR_ENDPOINT_URL_TEMPLATE and PODMGR_POD_NAME_PREFIX apply to "
            "every pod)",
            field=env_names.get(name, f"PODMGR_{name.upper()}"),
        )
    wide = {name: env[name] for name in pod_fields}
    entries = [{**e, **wide} if isinstance(e, Mapping) else e for e in data["pods"]]
    rest = {name: value for name, value in env.items() if name not in wide}
    return {**data, "pods": entries}, rest


def build_config(
    data: Mapping[str, Any],
    base_dir: Path | str = ".",
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
) -> Config:
    """Validate `data` (flat or in sections) with env overrides; ConfigError names the field
    and where its value came from (the variable, or `source`: the file's path)."""
    env = env_overrides(environ)
    sources: _Sources = (env_sources(environ), source)
    flat = set(flat_keys(data))
    data, env = _pod_overrides(data, env, sources)
    try:
        merged = _merge(to_sections(data), to_sections(env))
        return Config.model_validate({**merged, "base_dir": str(base_dir)})
    except ValidationError as error:
        raise _format_validation_error(error, flat, sources) from None
    except ConfigError as error:  # raised by a check across fields, with its own path
        if error.field is None:
            raise
        message = str(error).removeprefix(f"{error.field}: ")
        loc = tuple(error.field.split("."))
        if len(loc) == 1 and loc[0] in FLAT_TO_SECTION:  # flat.py names the old flat name
            loc = FLAT_TO_SECTION[loc[0]]
        raise _explained(loc, message, flat, sources) from None


def read_config_file(file: Path) -> dict[str, Any]:
    """The JSON object in `file` (without `$schema`); ConfigError if it is not one."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {file}: {error}", field="--config") from None
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{file} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})",
            field="(file)",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must hold a JSON object", field="(file)")
    data.pop("$schema", None)
    return data


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override and validate the config; a missing default file means all defaults."""
    explicit = path is not None
    file = find_config_path(str(path) if path is not None else None, environ)
    if not file.exists():
        if explicit or (environ or os.environ).get("PODMGR_CONFIG"):
            raise ConfigError(f"config file {file} does not exist", field="--config")
        return build_config({}, Path.cwd(), environ)
    return build_config(read_config_file(file), file.resolve().parent, environ, str(file))
