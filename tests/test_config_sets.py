"""A config with `pods` as the user meets it (issue 23): errors inside an entry name the
entry (`pods.1.<field>`), `PODMGR_*` overrides of pod fields are refused naming the
variable (session-wide ones still apply), `config show` / `migrate` / `schema` carry
`pods`, and `up`'s prices cover every pod. A one-pod file reads and says exactly as before."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from podmgr.cli.catalog import check_every_pod
from podmgr.cli.prices import Catalog, catalog_path, confirm_spend, price_lines, save_catalog
from podmgr.config import Config, build_config, config_schema
from podmgr.config.migrate import effective_view, migrate_data, migrate_file
from podmgr.errors import ConfigError
from podmgr.runpod.values import GpuType
from podmgr.state import PodRecord, Session, State, StateStore

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "two_models.json"

CHAT = {"name": "chat", "model": "big/chat-32b", "gpu_type_id": ["NVIDIA RTX A6000"]}
FIM = {"name": "fim", "model": "small/fim-1.5b", "gpu_type_id": ["NVIDIA GeForce RTX 4090"]}


def _set(fim: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {"pods": [CHAT, {**FIM, **(fim or {})}], **top}


def _error(data: dict[str, Any], environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        build_config(data, environ=environ or {}, source="/x/pod_config.json")
    return caught.value


# --- errors inside an entry name the entry ------------------------------------------------
@pytest.mark.parametrize(
    ("fim", "field", "words"),
    [
        pytest.param(
            {"network_volume_id": "v", "cloud_type": "COMMUNITY"},
            "pods.1.cloud_type",
            "network volumes exist only in Secure Cloud",
            id="check across fields (PodSection model validator)",
        ),
        pytest.param(
            {"min_cuda_version": "12.4", "allowed_cuda_versions": ["12.4"]},
            "pods.1.allowed_cuda_versions",
            "exclude each other",
            id="cuda floor and exact set",
        ),
        pytest.param(
            {"min_cuda_version": "12.1", "image_name": "vllm/vllm-openai:v0.9.0"},
            "pods.1.min_cuda_version",
            "below CUDA 12.8",
            id="cuda below the image's",
        ),
        pytest.param({"gpu_count": "x"}, "pods.1.gpu_count", "valid integer", id="type error"),
        pytest.param(
            {"gpu_cont": 1},
            "pods.1.gpu_cont",
            "an entry of pods; did you mean 'gpu_count'",
            id="typo",
        ),
    ],
)
def test_a_bad_field_in_the_second_entry_names_pods_1(
    fim: dict[str, Any], field: str, words: str
) -> None:
    error = _error(_set(fim))
    assert error.field == field and words in error.message
    assert "(in /x/pod_config.json)" in error.message


def test_the_same_check_in_a_pod_section_still_names_pod() -> None:
    error = _error({"pod": {"network_volume_id": "v", "cloud_type": "COMMUNITY"}})
    assert error.field == "pod.cloud_type"


def test_the_first_entry_is_pods_0() -> None:
    bad = {**CHAT, "network_volume_id": "v", "cloud_type": "COMMUNITY"}
    assert _error({"pods": [bad, FIM]}).field == "pods.0.cloud_type"


# --- env overrides with `pods` ------------------------------------------------------------
@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        pytest.param("PODMGR_MODEL", "other/model", "model", id="model"),
        pytest.param("PODMGR_GPU_TYPE_ID", '["NVIDIA L40S"]', "gpu_type_id", id="gpu types"),
        pytest.param("PODMGR_VLLM_ARGS", '["--x"]', "vllm_args", id="vllm args"),
    ],
)
def test_a_pod_field_override_with_pods_is_refused_naming_the_variable(
    variable: str, value: str, field: str
) -> None:
    error = _error(_set(), {variable: value})
    assert error.field == variable
    assert f"sets pod.{field}" in error.message and "entry of `pods`" in error.message
    assert "/x/pod_config.json" in error.message


def test_the_same_override_without_pods_applies_as_before() -> None:
    config = build_config({"pod": {"model": "a/b"}}, environ={"PODMGR_MODEL": "other/model"})
    assert config.pod.model == "other/model"


def test_session_wide_overrides_apply_to_a_set() -> None:
    environ = {
        "PODMGR_RUNTIME_SECONDS": "7200",
        "PODMGR_MAX_COST_USD": "5",
        "PODMGR_PROXY_PORT": "9001",
        "PODMGR_IDLE_TIMEOUT_SECONDS": "900",
    }
    config = build_config(_set({"idle_timeout_seconds": 60}), environ=environ)
    assert config.limits.runtime_seconds == 7200 and config.limits.max_cost_usd == 5
    assert config.proxy.port == 9001
    assert config.idle_timeout_for("chat") == 900 and config.idle_timeout_for("fim") == 60


def test_endpoint_template_and_prefix_overrides_reach_every_pod() -> None:
    environ = {
        "PODMGR_ENDPOINT_URL_TEMPLATE": "http://127.0.0.1:8600/pods/{pod_id}-{port}",
        "PODMGR_POD_NAME_PREFIX": "mine-",
    }
    config = build_config(_set({"pod_name_prefix": "theirs-"}), environ=environ)
    assert {e.endpoint_url_template for e in config.pods} == {environ[
        "PODMGR_ENDPOINT_URL_TEMPLATE"]}  # fmt: skip
    assert {e.pod_name_prefix for e in config.pods} == {"mine-"}  # the variable wins


def test_a_bad_set_wide_override_names_the_variable() -> None:
    error = _error(_set(), {"PODMGR_ENDPOINT_URL_TEMPLATE": "http://no-pod-id"})
    assert error.field == "pods.0.endpoint_url_template"
    assert "(from PODMGR_ENDPOINT_URL_TEMPLATE)" in error.message


# --- show, migrate, schema ----------------------------------------------------------------
def test_show_lists_every_pod_with_its_defaults_and_validates_again() -> None:
    view = effective_view(build_config(_set({"idle_timeout_seconds": 60}), environ={}))
    assert "pod" not in view
    assert [entry["name"] for entry in view["pods"]] == ["chat", "fim"]
    assert all(entry["container_disk_in_gb"] == 50 for entry in view["pods"])  # a default
    assert [entry["idle_timeout_seconds"] for entry in view["pods"]] == [None, 60]
    assert [(u["name"], u["models"]) for u in view["upstreams"]] == [
        ("chat", ["big/chat-32b"]), ("fim", ["small/fim-1.5b"]),
    ]  # fmt: skip
    again = Config.model_validate(json.loads(json.dumps(view)))
    assert again.pods == build_config(_set({"idle_timeout_seconds": 60}), environ={}).pods


def test_migrate_leaves_a_pods_file_alone(tmp_path: Path) -> None:
    file = tmp_path / "pod_config.json"
    file.write_text(json.dumps(_set(limits={"runtime_seconds": 600})))
    before = file.read_text()
    assert migrate_file(file) is None and file.read_text() == before


def test_migrate_moves_flat_session_fields_beside_pods_into_sections() -> None:
    migrated = migrate_data(_set(runtime_seconds=600, proxy_port=9001))
    assert migrated == {
        "pods": [CHAT, FIM],
        "limits": {"runtime_seconds": 600},
        "proxy": {"port": 9001},
    }


def test_the_schema_describes_pods_entries() -> None:
    schema = config_schema()
    entry = schema["$defs"]["PodEntry"]
    assert schema["properties"]["pods"]["items"] == {"$ref": "#/$defs/PodEntry"}
    assert {"name", "idle_timeout_seconds", "model", "gpu_type_id"} <= set(entry["properties"])
    assert entry["properties"]["name"]["pattern"] == "^[a-z0-9-]{1,20}$"


# --- GPU ids and prices of every pod ------------------------------------------------------
CATALOG = [
    GpuType("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 0.69, 0.34),
    GpuType("NVIDIA RTX A6000", "RTX A6000", 48, 0.76, 0.33),
    GpuType("NVIDIA L40S", "L40S", 48, 0.86, 0.79),
]


def test_every_pods_gpu_ids_are_checked_and_the_error_names_the_pod() -> None:
    check_every_pod(build_config(_set(), environ={}), CATALOG, "test")  # both known
    config = build_config(_set({"gpu_type_id": ["RTX 4090"]}), environ={})
    with pytest.raises(ConfigError) as caught:
        check_every_pod(config, CATALOG, "test")
    assert caught.value.field == "pods.1.gpu_type_id"
    assert "pod 'fim'" in caught.value.message and "NVIDIA GeForce RTX 4090" in caught.value.message


def test_one_pods_unknown_gpu_id_still_names_pod_gpu_type_id() -> None:
    config = build_config({"pod": {"gpu_type_id": "RTX 4090"}}, environ={})
    with pytest.raises(ConfigError) as caught:
        check_every_pod(config, CATALOG, "test")
    assert caught.value.field == "pod.gpu_type_id" and "pod 'pod'" not in caught.value.message


@pytest.mark.parametrize(
    ("budget", "worst"),
    [
        pytest.param(None, "$3.10 (runtime 2h x $1.55/h at most), every pod together", id="sum"),
        pytest.param(
            2.0,
            "$2.00 (the budget; runtime 2h x $1.55/h at most would be $3.10), every pod together",
            id="capped by the budget",
        ),
    ],
)
def test_prices_of_a_set_list_each_pod_and_sum_their_dearest(
    budget: float | None, worst: str
) -> None:
    chat = {**CHAT, "gpu_type_id": ["NVIDIA RTX A6000", "NVIDIA L40S"]}
    limits = {"runtime_seconds": 7200, "max_cost_usd": budget, "idle_timeout_seconds": 1800}
    fim = {**FIM, "idle_timeout_seconds": 600}
    config = build_config({"pods": [chat, fim], "limits": limits}, environ={})
    lines = price_lines(config, Catalog(CATALOG, "test"))
    assert lines[:5] == [
        "pod chat (big/chat-32b): GPU types, in the order a create tries them (SECURE cloud):",
        "  NVIDIA RTX A6000: $0.76/h",
        "  NVIDIA L40S: $0.86/h",
        "pod fim (small/fim-1.5b): GPU types, in the order a create tries them (SECURE cloud):",
        "  NVIDIA GeForce RTX 4090: $0.69/h",
    ]
    assert lines[5] == f"worst case for this session: {worst}"  # 0.86 + 0.69 = 1.55 $/h
    shared = "none" if budget is None else "$2.00 per session, shared by the pods' guards"
    assert lines[6] == f"budget: {shared}; idle limit: chat 30m, fim 10m"


def test_prices_of_one_pod_read_as_before() -> None:
    config = build_config({"pod": {"gpu_type_id": "NVIDIA L40S"}}, environ={})
    lines = price_lines(config, Catalog(CATALOG, "test"))
    assert lines[:3] == [
        "GPU types, in the order a create tries them (SECURE cloud):",
        "  NVIDIA L40S: $0.86/h",
        "worst case for this session: $0.86 (runtime 1h x $0.86/h at most)",
    ]


def test_a_set_with_an_unpriced_gpu_has_an_unknown_worst_case() -> None:
    config = build_config(_set({"gpu_type_id": ["NVIDIA H200"]}), environ={})
    lines = price_lines(config, Catalog(CATALOG, "test"))
    assert "  NVIDIA H200: price unknown" in lines
    assert any(line.startswith("worst case for this session: unknown") for line in lines)


def test_the_example_two_pod_file_loads_as_documented() -> None:
    config = build_config(json.loads(EXAMPLE.read_text()), environ={})
    assert config.pod_names == ("chat", "fim")
    chat, fim = config.pods
    assert "32B" in chat.model and "1.5B" in fim.model
    assert set(chat.gpu_type_ids).isdisjoint(fim.gpu_type_ids)  # different GPU types
    assert config.idle_timeout_for("fim") < config.idle_timeout_for("chat")  # type: ignore[operator]


def test_the_docs_show_the_example_file_as_it_is() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    section = text[text.index("## Several models: `pods`") :]
    shown = section[section.index("```json") + len("```json") : section.index("```\n", 8)]
    assert json.loads(shown) == json.loads(EXAMPLE.read_text())


def test_up_shows_no_prices_when_a_pod_of_the_set_already_runs(tmp_path: Path) -> None:
    data = _set(watchdog={"state_file": "state/state.json"})
    config = build_config(data, tmp_path, environ={})
    shown: list[str] = []

    def never(_question: str) -> str:
        raise AssertionError("asked")

    def confirm() -> bool:
        return confirm_spend(
            config, yes=False, emit=shown.append, ask=never, stdin_tty=True, stdout_tty=False
        )

    store = StateStore(config.state_path)
    save_catalog(catalog_path(config), CATALOG)  # prices from the cache, no RunPod call
    store.save(State(session=Session(started_at=time.time(), deadline=time.time() + 600)))
    assert confirm() and shown[0].startswith("pod chat (big/chat-32b)")  # no pod yet: prices
    shown.clear()
    running = State(
        session=Session(started_at=time.time(), deadline=time.time() + 600),
        pods={
            "fim": PodRecord(
                id="p2",
                name="podmgr-p2",
                gpu_type_id="A",
                cost_per_hr=0.69,
                created_at=time.time(),
                vllm_api_key="fake-vllm-key-not-secret",
            )
        },
    )
    store.save(running)  # a record under "fim", none under "pod": the session has a pod
    assert confirm() and shown == []
