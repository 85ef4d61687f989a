"""The old flat form of pod_config.json, read into sections at load.

Until issue 21 the config was one flat object (`{"model": ..., "proxy_port": ...}`);
`FLAT_TO_SECTION` says where each old name lives now. `to_sections` turns a file in
either form (or a mix of both that names each field once) into the sectioned shape, and
turns `upstream_url`/`upstream_api_key` into the one entry of `upstreams` they meant.
`PODMGR_<FIELD>` env overrides use the old names and go through the same table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podmgr.config.upstreams import UpstreamSpec
from podmgr.errors import ConfigError

__all__ = ["FLAT_TO_SECTION", "SECTIONS", "flat_keys", "is_flat_form", "to_sections"]

SECTIONS = ("pod", "pods", "limits", "startup", "watchdog", "proxy", "cache", "upstreams", "guard")

_POD = (
    "model gpu_type_id gpu_count cloud_type template_id image_name min_cuda_version "
    "allowed_cuda_versions interruptible max_preemptions support_public_ip docker_args "
    "vllm_args vllm_port container_disk_in_gb volume_in_gb volume_mount_path "
    "network_volume_id data_center_ids min_download_mbps env pod_name_prefix "
    "endpoint_url_template"
)
_LIMITS = (
    "runtime_seconds max_cost_usd idle_timeout_seconds max_restarts wake_on_request wake_hours"
)
_STARTUP = (
    "initial_wait_seconds max_startup_attempts poll_interval_seconds "
    "no_container_timeout_seconds create_confirm_seconds unreachable_seconds "
    "health_probe_attempts http_timeout_seconds"
)
_WATCHDOG = (
    "restart_backoff_seconds api_retry_initial_seconds api_retry_max_seconds "
    "proxy_start_timeout_seconds state_file log_level"
)
_PROXY = (
    "use_https ssl_cert ssl_key max_body_bytes enable_profiling upstream_client "
    "upstream_timeout_seconds upstream_allowed_fails upstream_cooldown_seconds"
)

# old flat name -> (section, name in the section)
FLAT_TO_SECTION: Mapping[str, tuple[str, str]] = {
    **{name: ("pod", name) for name in _POD.split()},
    **{name: ("limits", name) for name in _LIMITS.split()},
    **{name: ("startup", name) for name in _STARTUP.split()},
    **{name: ("watchdog", name) for name in _WATCHDOG.split()},
    "watchdog_interval_seconds": ("watchdog", "interval_seconds"),
    **{name: ("proxy", name) for name in _PROXY.split()},
    "proxy_host": ("proxy", "host"),
    "proxy_port": ("proxy", "port"),
    "proxy_api_keys": ("proxy", "api_keys"),
    "cache_mode": ("cache", "mode"),
    "cache_dir": ("cache", "dir"),
    "max_cache_size": ("cache", "max_entries"),
    "max_cache_bytes": ("cache", "max_bytes"),
    "cache_memory_bytes": ("cache", "memory_bytes"),
    "prewarm_cache": ("cache", "prewarm"),
    "cache_fallback_answers": ("cache", "fallback_answers"),
    "guard": ("guard", "enabled"),
    "guard_interval_seconds": ("guard", "interval_seconds"),
    "guard_lease_seconds": ("guard", "lease_seconds"),
}
# The old single upstream: read into one entry of `upstreams`.
LEGACY_UPSTREAM = ("upstream_url", "upstream_api_key")


def flat_keys(data: Mapping[str, Any]) -> list[str]:
    """The keys of `data` that are old flat names (`guard` only as a bool, not a section)."""
    found = [key for key in data if key in FLAT_TO_SECTION or key in LEGACY_UPSTREAM]
    return [key for key in found if not (key == "guard" and isinstance(data[key], Mapping))]


def is_flat_form(data: Mapping[str, Any]) -> bool:
    """True if the file uses any old flat name (`podmgr config migrate` rewrites it)."""
    return bool(flat_keys(data))


def to_sections(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` in sections; ConfigError (the field) when a field is given flat and in a section."""
    flat = set(flat_keys(data))
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in flat:
            continue
        out[key] = dict(value) if key in SECTIONS and isinstance(value, Mapping) else value
    for key in flat - set(LEGACY_UPSTREAM):
        section, name = FLAT_TO_SECTION[key]
        target = out.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"section {section} must be an object", field=section)
        if name in target:
            raise ConfigError(
                f"given twice: as the old flat {key!r} and as {section}.{name}; keep "
                f"{section}.{name}",
                field=key,
            )
        target[name] = data[key]
    if data.get("upstream_url") is not None:
        if "upstreams" in out:
            raise ConfigError(
                "upstream_url and upstreams exclude each other: list it in upstreams",
                field="upstream_url",
            )
        out["upstreams"] = [legacy_upstream(data["upstream_url"], data.get("upstream_api_key"))]
    return out


def legacy_upstream(url: Any, key: Any) -> UpstreamSpec:
    """The entry of `upstreams` that `upstream_url` (and `upstream_api_key`) meant."""
    if not isinstance(url, str) or (key is not None and not isinstance(key, str)):
        raise ConfigError("upstream_url and upstream_api_key must be strings", field="upstream_url")
    try:
        return UpstreamSpec.from_url(url, key)
    except ValueError as error:
        raise ConfigError(str(error), field="upstream_url") from None
