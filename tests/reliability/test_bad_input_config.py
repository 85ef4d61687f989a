"""Part 5 of the reliability proofs, config and CLI side: bad values exit 2 and touch nothing.

The runpod SDK builds its GraphQL by string interpolation, so a quote, backslash or
control character in any value it interpolates (model, image, docker and vLLM args,
template id, pod name prefix, volume mount path, GPU type ids, env names and values,
including the resolved value of an env reference `${NAME}`) must be a config error.

- Every such field x every bad character goes through the validator in-process (a table).
- One subprocess per entry point per field class (`podmgr config validate`, `manage_pod.py`
  as cron runs it, `manage_pod.py --start`, `podmgr up`) against a real `podmgr sim`:
  exit 2, the field named on stderr, no traceback, no state file, no proxy started, and
  no request at all reached the simulator (its `GET /_sim/requests` counter) nor a pod
  in its ledger.
- Bad command lines and config files that are not JSON objects: exit 2, the flag or file
  named, no traceback, nothing written, no API call.

A plain pass (`manage_pod.py` without --start) does not resolve `${NAME}` up front: it
must go on enforcing deadlines where cron lacks a variable. It refuses the value when a
pod would be created (exit 2, no create call); `--start`, `up` and `config validate`
refuse it before anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podmgr.config import build_config
from podmgr.errors import ConfigError
from podmgr.sim.process import SimProcess

REPO = Path(__file__).resolve().parents[2]
BAD_CHARS = ['"', "\\", "\n", "\r", "\t", "\x00", "\x1b", "\x7f"]
SECRET_SOURCE = "PODMGR_TEST_HF_SOURCE"
CLI_TIMEOUT = 60

# Field of the config -> builder of a config with `bad` in that field -> field path named.
Builder = Callable[[str], dict[str, Any]]
GRAPHQL_FIELDS: list[tuple[str, Builder, str]] = [
    ("model", lambda bad: {"model": f"org/m{bad}x"}, "model"),
    ("image_name", lambda bad: {"image_name": f"vllm/vllm{bad}:latest"}, "image_name"),
    ("docker_args", lambda bad: {"docker_args": f"--model m{bad}"}, "docker_args"),
    ("template_id", lambda bad: {"template_id": f"t{bad}"}, "template_id"),
    ("pod_name_prefix", lambda bad: {"pod_name_prefix": f"p{bad}-"}, "pod_name_prefix"),
    ("volume_mount_path", lambda bad: {"volume_mount_path": f"/ws{bad}"}, "volume_mount_path"),
    ("vllm_args", lambda bad: {"vllm_args": ["--max-model-len", f"8{bad}"]}, "vllm_args"),
    ("gpu_type_id", lambda bad: {"gpu_type_id": f"NVIDIA{bad}"}, "gpu_type_id"),
    ("gpu_type_id-list", lambda bad: {"gpu_type_id": ["ok", f"B{bad}"]}, "gpu_type_id"),
    ("env-value", lambda bad: {"env": {"HF_HOME": f"/x{bad}"}}, "env"),
    ("env-name", lambda bad: {"env": {f"A{bad}B": "v"}}, "env"),
]
# Numbers and enums the SDK interpolates: a string carrying a quote or backslash is a type
# error (whitespace around a number is stripped by pydantic: the int sent is clean).
TYPED_FIELDS: list[tuple[str, Any]] = [
    ("container_disk_in_gb", '50"'),
    ("volume_in_gb", "1\\"),
    ("gpu_count", '1"'),
    ("vllm_port", '8000") { id } #'),
    ("cloud_type", 'SECURE"'),
]


@pytest.mark.parametrize("bad", BAD_CHARS, ids=repr)
@pytest.mark.parametrize(
    ("build", "field"), [pytest.param(b, f, id=name) for name, b, f in GRAPHQL_FIELDS]
)
def test_validator_refuses_every_bad_char_in_every_field(
    build: Builder, field: str, bad: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(build(bad), environ={})
    assert caught.value.exit_code == 2
    assert caught.value.field is not None and caught.value.field.startswith(field)


@pytest.mark.parametrize("bad", BAD_CHARS, ids=repr)
def test_env_override_and_env_reference_are_checked_too(bad: str) -> None:
    with pytest.raises(ConfigError) as override:
        build_config({}, environ={"PODMGR_IMAGE_NAME": f"img{bad}"})
    # named by its section path and the variable that set it (issue 22)
    assert override.value.field == "pod.image_name"
    assert "(from PODMGR_IMAGE_NAME)" in override.value.message
    config = build_config({"env": {"HF_TOKEN": "${" + SECRET_SOURCE + "}"}}, environ={})
    with pytest.raises(ConfigError) as reference:
        config.pod.resolved_env({SECRET_SOURCE: f"hf-fake{bad}token"})
    assert reference.value.exit_code == 2 and reference.value.field == "pod.env.HF_TOKEN"


# Issue 10: values RunPod would accept but that make a pod useless or leak a secret.
BLANK_VALUES: list[tuple[str, str]] = [
    ("model", ""),
    ("model", "   "),
    ("image_name", ""),
    ("image_name", " \u00a0"),
]
# Env names RunPod sets in every pod (RUNPOD_FACTS.md: RUNPOD_POD_ID, RUNPOD_DC_ID, ...,
# PUBLIC_KEY, CUDA_VERSION) and the ones podmgr sets itself (watchdog/identity.py).
RESERVED_ENV = [
    "RUNPOD_API_KEY",
    "RUNPOD_POD_ID",
    "RUNPOD_DC_ID",
    "RUNPOD_GPU_COUNT",
    "RUNPOD_PUBLIC_IP",
    "RUNPOD_VOLUME_ID",
    "RUNPOD_ANYTHING_ELSE",
    "PUBLIC_KEY",
    "CUDA_VERSION",
    "VLLM_API_KEY",
    "PODMGR_MANAGED",
    "PODMGR_CONFIG_ID",
]


@pytest.mark.parametrize(("field", "value"), BLANK_VALUES)
def test_blank_model_or_image_is_refused(field: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({field: value}, environ={})
    assert caught.value.exit_code == 2 and caught.value.field == field


@pytest.mark.parametrize("name", RESERVED_ENV)
def test_env_names_set_by_runpod_or_podmgr_are_refused(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"env": {name: "x"}}, environ={})
    assert caught.value.exit_code == 2 and caught.value.field == "env"
    assert name in caught.value.message


def test_podmgrs_own_env_names_are_the_ones_it_sets() -> None:
    from podmgr.config.checks import PODMGR_SET_ENV
    from podmgr.watchdog.identity import MARKER_CONFIG_ID, MARKER_MANAGED, VLLM_KEY_ENV

    assert {VLLM_KEY_ENV, MARKER_MANAGED, MARKER_CONFIG_ID} == PODMGR_SET_ENV


def test_env_runpod_api_key_says_it_would_leak_the_account_key() -> None:
    with pytest.raises(ConfigError, match="full API key into the pod, visible in RunPod"):
        build_config({"env": {"RUNPOD_API_KEY": "${RUNPOD_API_KEY}"}}, environ={})


def test_ordinary_env_names_still_pass() -> None:
    config = build_config({"env": {"HF_HOME": "/workspace/hf", "RUNPODX": "1"}}, environ={})
    assert set(config.pod.env) == {"HF_HOME", "RUNPODX"}


@pytest.mark.parametrize(("field", "value"), TYPED_FIELDS)
def test_interpolated_numbers_and_enums_refuse_strings(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({field: value}, environ={})
    assert caught.value.field == field


# --- the real entry points -------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with SimProcess(pull_seconds=0.05, load_seconds=0.05) as process:
        yield process


def write_config(directory: Path, sim: SimProcess, **values: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    base = {
        "endpoint_url_template": sim.pod_url_template,
        "state_file": "state/state.json",
        "cache_dir": "state/cache",
        "initial_wait_seconds": 0,
        "api_retry_max_seconds": 1,
        "pod_name_prefix": "badinput-",
    }
    path = directory / "pod_config.json"
    path.write_text(json.dumps({**base, **values}))
    return path


ENTRY_POINTS: dict[str, list[str]] = {
    "config-validate": ["-m", "podmgr", "config", "validate", "--config"],
    "manage_pod": [str(REPO / "manage_pod.py"), "--config"],
    "manage_pod-start": [str(REPO / "manage_pod.py"), "--start", "--config"],
    "up": ["-m", "podmgr", "up", "--config"],
}


def run_entry(
    entry: str, config: Path | str, sim: SimProcess, home: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, *ENTRY_POINTS[entry], str(config)],
        env={**sim.env(home), **env},
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


def assert_refused(
    run: subprocess.CompletedProcess[str], named: str, workdir: Path, sim: SimProcess, calls: int
) -> None:
    output = run.stdout + run.stderr
    print(f"exit {run.returncode}: {run.stderr.strip()[:200]}")
    assert run.returncode == 2, output
    assert named in run.stderr, output
    assert "Traceback" not in output
    assert not (workdir / "state").exists(), "a state file, lock or proxy log was written"
    assert sim.graphql_requests() == calls, "a request reached the RunPod API"
    assert [p for p in sim.ledger() if p["name"].startswith("badinput-")] == []


# (id, config values, extra env for the child, field named on stderr, entry points)
ALL = tuple(ENTRY_POINTS)
FIELD_CLASSES: list[tuple[str, dict[str, Any], dict[str, str], str, tuple[str, ...]]] = [
    ("string-field", {"image_name": 'vllm/vllm-openai:latest" } #'}, {}, "image_name", ALL),
    ("list-field", {"gpu_type_id": ["NVIDIA GeForce RTX 4090", "A\nB"]}, {}, "gpu_type_id",
     ALL),
    ("env-name", {"env": {"BAD\\NAME": "v"}}, {}, "env", ALL),
    ("env-reference", {"env": {"HF_TOKEN": "${" + SECRET_SOURCE + "}"}},
     {SECRET_SOURCE: 'hf-fake-token"\nmutation'}, "env.HF_TOKEN",
     ("config-validate", "manage_pod-start", "up")),
    ("blank-model", {"model": "  "}, {}, "model", ("config-validate",)),
    ("empty-image", {"image_name": ""}, {}, "image_name", ("config-validate",)),
    ("env-runpod-api-key", {"env": {"RUNPOD_API_KEY": "${RUNPOD_API_KEY}"}}, {},
     "full API key", ("config-validate", "up")),
    ("env-vllm-api-key", {"env": {"VLLM_API_KEY": "k"}}, {}, "env", ("config-validate",)),
]  # fmt: skip
ENTRY_CASES = [
    pytest.param(values, env, named, entry, id=f"{name}-{entry}")
    for name, values, env, named, entries in FIELD_CLASSES
    for entry in entries
]


@pytest.mark.parametrize(("values", "env", "named", "entry"), ENTRY_CASES)
def test_entry_points_exit_2_before_any_api_call(
    sim: SimProcess,
    tmp_path: Path,
    values: dict[str, Any],
    env: dict[str, str],
    named: str,
    entry: str,
) -> None:
    workdir = tmp_path / "work"
    config = write_config(workdir, sim, **values)
    calls = sim.graphql_requests()
    run = run_entry(entry, config, sim, tmp_path / "home", **env)
    assert_refused(run, named, workdir, sim, calls)


# --- bad command lines and config files ------------------------------------------------

BAD_COMMAND_LINES: list[tuple[list[str], str]] = [
    (["watchdog", "--frob"], "--frob"),
    (["up", "--runtime-seconds", "-5"], "--runtime-seconds"),
    (["up", "--start"], "--start"),
    (["demo", "--runtime", "-5"], "--runtime"),
    (["demo", "--proxy-port", "99999"], "--proxy-port"),
    (["demo", "--proxy-port", "http"], "--proxy-port"),
    (["demo", "--interval", "nan"], "--interval"),
    (["demo", "--duration", "-1"], "--duration"),
    (["sim", "--token-delay", "nan", "--port", "0"], "--token-delay"),
    (["sim", "--download-seconds", "-1", "--port", "0"], "--download-seconds"),
    (["sim", "--fault", "no_such_fault", "--port", "0"], "--fault"),
]


@pytest.mark.parametrize(
    ("args", "named"), [pytest.param(a, n, id=" ".join(a)) for a, n in BAD_COMMAND_LINES]
)
def test_bad_command_lines_exit_2(
    sim: SimProcess, tmp_path: Path, args: list[str], named: str
) -> None:
    calls = sim.graphql_requests()
    run = subprocess.run(
        [sys.executable, "-m", "podmgr", *args],
        env=sim.env(tmp_path / "home"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert_refused(run, named, tmp_path, sim, calls)
    assert not (tmp_path / ".podmgr").exists()  # the demo wrote nothing either


def _not_json(path: Path) -> Path:
    path.write_text('{"model": "m", ')
    return path


def _array(path: Path) -> Path:
    path.write_text('["model", "m"]')
    return path


def _bad_utf8(path: Path) -> Path:
    path.write_bytes(b'{"model": "\xff\xfe"}')
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


BAD_FILES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("not-json", _not_json, "(file)"),
    ("json-array", _array, "(file)"),
    ("invalid-utf8", _bad_utf8, "--config"),
    ("a-directory", _directory, "--config"),
]


@pytest.mark.parametrize("entry", ["manage_pod", "up"])
@pytest.mark.parametrize(
    ("make", "named"), [pytest.param(m, n, id=name) for name, m, n in BAD_FILES]
)
def test_bad_config_files_exit_2(
    sim: SimProcess, tmp_path: Path, make: Callable[[Path], Path], named: str, entry: str
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = make(workdir / "pod_config.json")
    calls = sim.graphql_requests()
    run = run_entry(entry, config, sim, tmp_path / "home")
    assert_refused(run, named, workdir, sim, calls)
    assert not (workdir / ".podmgr").exists()
