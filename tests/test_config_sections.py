"""The config in sections: an old flat file and one in sections give the same effective config.

The flat configs come from the repository's own JSON config files and from every literal
config the tests build (dicts passed to `build_config`, keyword configs passed to the
fixtures that write a config file), found by reading the test sources. The sectioned twin
of each is built here with the section models' own field lists and the few renames, not
with the loader's table, so a wrong row in that table fails.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podmgr.config import Config, build_config, load_config
from podmgr.config.flat import is_flat_form
from podmgr.config.migrate import effective_view, migrate_data
from podmgr.config.upstreams import resolve_key
from podmgr.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"

RENAMED = {
    "watchdog_interval_seconds": ("watchdog", "interval_seconds"),
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
SECTION_MODELS = ("pod", "limits", "startup", "watchdog", "proxy", "cache")
# Keyword configs in the tests go to these helpers, which write them into a config file.
CONFIG_WRITERS = {
    "build_config",
    "make_proxy",
    "ProxyProcess",
    "configure",
    "write_config",
    "_config",
}


def section_of(name: str) -> tuple[str, str]:
    """Where an old flat name lives, from the section models' own fields."""
    if name in RENAMED:
        return RENAMED[name]
    for section in SECTION_MODELS:
        model = Config.model_fields[section].annotation
        if name in model.model_fields:  # type: ignore[union-attr]
            return section, name
    raise KeyError(name)


def in_sections(flat: dict[str, Any]) -> dict[str, Any]:
    """The sectioned twin of a flat config (upstream_url as its one upstreams entry)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if key in ("upstream_url", "upstream_api_key", "upstreams"):
            continue
        section, name = section_of(key)
        out.setdefault(section, {})[name] = value
    if "upstreams" in flat:
        out["upstreams"] = flat["upstreams"]
    if flat.get("upstream_url") is not None:
        entry = {"name": "upstream", "kind": "openai", "base_url": flat["upstream_url"]}
        if flat.get("upstream_api_key") is not None:
            entry["api_key"] = flat["upstream_api_key"]
        out["upstreams"] = [entry]
    return out


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _flat_names() -> set[str]:
    names = set(RENAMED) | {"upstream_url", "upstream_api_key", "upstreams"}
    for section in SECTION_MODELS:
        names |= set(Config.model_fields[section].annotation.model_fields)  # type: ignore[union-attr]
    return names


def configs_in_tests() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every literal flat config the tests build: (where, the dict)."""
    names = _flat_names()
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called not in CONFIG_WRITERS:
                continue
            found: dict[str, Any] = {}
            if node.args and isinstance(node.args[0], ast.Dict):
                found = _literal(node.args[0]) or {}
            for keyword in node.keywords:
                value = _literal(keyword.value)
                if keyword.arg in names and value is not None:
                    found[keyword.arg] = value
            if found and set(found) <= names and "upstream_url" not in found:
                yield f"{path.relative_to(REPO)}:{node.lineno}", found


TEST_CONFIGS = list(configs_in_tests())
REPO_FILES = [REPO / "pod_config.json"]


def effective(data: dict[str, Any]) -> dict[str, Any] | str:
    """The effective config as JSON, or the error a load gives."""
    try:
        return build_config(data, environ={}).model_dump(mode="json")
    except ConfigError as error:
        return f"error: {str(error).split(': ', 1)[-1]}"


def test_the_tests_hold_many_flat_configs() -> None:
    assert len(TEST_CONFIGS) >= 40


@pytest.mark.parametrize(("where", "flat"), TEST_CONFIGS, ids=[w for w, _ in TEST_CONFIGS])
def test_a_flat_config_of_the_tests_and_its_sections_give_the_same_config(
    where: str, flat: dict[str, Any]
) -> None:
    assert effective(in_sections(flat)) == effective(flat), where


@pytest.mark.parametrize("file", REPO_FILES, ids=lambda p: p.name)
def test_the_shipped_files_are_in_sections_and_equal_their_flat_form(file: Path) -> None:
    data = json.loads(file.read_text())
    assert not is_flat_form(data)
    flat = {}
    for section, values in data.items():
        for name, value in values.items():
            old = next((k for k, path in RENAMED.items() if path == (section, name)), name)
            flat[old] = value
    assert effective(flat) == effective(data)
    assert load_config(file, environ={}).model_dump() == build_config(flat, environ={}).model_dump()


def test_the_shipped_file_holds_only_what_a_user_decides() -> None:
    data = json.loads((REPO / "pod_config.json").read_text())
    assert set(data) <= {"pod", "limits"}
    assert {"model", "gpu_type_id", "cloud_type", "vllm_args"} <= set(data["pod"])
    assert {"runtime_seconds", "max_cost_usd", "idle_timeout_seconds"} <= set(data["limits"])


def test_upstream_url_becomes_one_upstreams_entry_with_its_literal_key() -> None:
    config = build_config(
        {"upstream_url": "http://127.0.0.1:9/v1", "upstream_api_key": "sk-literal-not-real"},
        environ={},
    )
    (spec,) = config.upstreams
    assert (spec.name, spec.kind, spec.base_url, spec.api_key) == (
        "upstream",
        "openai",
        "http://127.0.0.1:9/v1",
        None,
    )
    assert resolve_key(spec) == "sk-literal-not-real"
    shown = json.dumps(effective_view(config))
    assert "sk-literal-not-real" not in shown
    assert "sk-literal-not-real" not in json.dumps(config.model_dump(mode="json"))
    assert "literal" not in json.dumps(Config.model_json_schema())


def test_upstream_url_with_an_env_reference_keeps_the_reference() -> None:
    data = {"upstream_url": "http://127.0.0.1:9", "upstream_api_key": "${UP_KEY}"}
    (spec,) = build_config(data, environ={}).upstreams
    assert spec.api_key == "${UP_KEY}"
    assert resolve_key(spec, {"UP_KEY": "k"}) == "k"


def test_a_field_given_flat_and_in_its_section_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"proxy_port": 9000, "proxy": {"port": 9001}}, environ={})
    assert caught.value.exit_code == 2
    assert caught.value.field == "proxy_port"
    assert "proxy.port" in str(caught.value)


def test_flat_and_section_keys_for_different_fields_mix() -> None:
    config = build_config({"proxy_port": 9000, "proxy": {"host": "127.0.0.2"}}, environ={})
    assert (config.proxy.host, config.proxy.port) == ("127.0.0.2", 9000)


def test_upstream_url_beside_upstreams_is_an_error() -> None:
    data = {"upstream_url": "http://127.0.0.1:9", "upstreams": [{"name": "pod", "kind": "pod"}]}
    with pytest.raises(ConfigError, match="exclude each other"):
        build_config(data, environ={})


def test_migrate_refuses_a_literal_key() -> None:
    with pytest.raises(ConfigError, match="literal key"):
        migrate_data({"upstream_url": "http://127.0.0.1:9", "upstream_api_key": "sk-x"})


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podmgr", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )


FLAT_FILE = {
    "model": "org/model",
    "gpu_type_id": ["A", "B"],
    "runtime_seconds": 600,
    "max_cost_usd": 1.5,
    "proxy_port": 9123,
    "max_cache_size": 10,
    "guard": False,
    "watchdog_interval_seconds": 60,
    "upstream_url": "http://127.0.0.1:9/v1",
    "upstream_api_key": "${UPSTREAM_KEY}",
}


def test_validate_says_old_flat_form_and_migrate_rewrites_in_sections(tmp_path: Path) -> None:
    file = tmp_path / "pod_config.json"
    file.write_text(json.dumps(FLAT_FILE))
    before = load_config(file, environ={}).model_dump()
    said = run_cli("config", "validate", str(file), cwd=tmp_path)
    assert said.returncode == 0, said.stderr
    assert "old flat form: run `podmgr config migrate`" in said.stdout

    moved = run_cli("config", "migrate", "--config", str(file), cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert json.loads((tmp_path / "pod_config.json.bak").read_text()) == FLAT_FILE
    data = json.loads(file.read_text())
    assert not is_flat_form(data)
    assert data["proxy"] == {"port": 9123} and data["guard"] == {"enabled": False}
    assert data["upstreams"] == [
        {"name": "upstream", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
         "api_key": "${UPSTREAM_KEY}"}
    ]  # fmt: skip
    assert load_config(file, environ={}).model_dump() == before

    again = run_cli("config", "validate", str(file), cwd=tmp_path)
    assert again.returncode == 0 and "old flat form" not in again.stdout
    twice = run_cli("config", "migrate", "--config", str(file), cwd=tmp_path)
    assert twice.returncode == 0 and "nothing to do" in twice.stdout


def test_show_prints_every_section_with_defaults_and_redacts_keys(tmp_path: Path) -> None:
    key = "proxy-key-not-real-0123456789"
    file = tmp_path / "pod_config.json"
    file.write_text(json.dumps({"proxy_host": "0.0.0.0", "proxy_api_keys": [key]}))
    shown = run_cli("config", "show", "--config", str(file), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert list(view) == ["pod", "limits", "startup", "watchdog", "proxy", "cache", "upstreams",
                          "guard"]  # fmt: skip
    assert view["limits"]["runtime_seconds"] == 3600
    assert view["proxy"]["host"] == "0.0.0.0"
    assert key not in shown.stdout and view["proxy"]["api_keys"] == ["<redacted>"]


def test_mixing_in_a_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    file = tmp_path / "pod_config.json"
    file.write_text(json.dumps({"runtime_seconds": 60, "limits": {"runtime_seconds": 120}}))
    said = run_cli("config", "validate", str(file), cwd=tmp_path)
    assert said.returncode == 2
    assert "runtime_seconds" in said.stderr and "given twice" in said.stderr
