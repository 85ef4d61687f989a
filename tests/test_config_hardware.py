"""Issue 11's config fields on REST v2: network volume, data centers, spot; what the create
sends for them (CreatePodRequest), and the invalid combinations (exit 2 naming the field)."""

from __future__ import annotations

from typing import Any

import pytest

from podmgr.config import build_config
from podmgr.errors import ConfigError
from podmgr.runpod.client import create_request
from podmgr.watchdog.spec import pod_spec


def body(values: dict[str, Any], spot: bool = False) -> dict[str, Any]:
    config = build_config(values, environ={})
    spec = pod_spec(config, "cid", "podmgr-x", "NVIDIA GeForce RTX 4090", "k", spot=spot)
    return create_request(spec).body()


def test_network_volume_fields_are_sent_with_hf_home_on_the_mount() -> None:
    sent = body({"network_volume_id": "agv6w2qcg7", "data_center_ids": ["EU-RO-1"]})
    assert sent["mounts"] == {"network": [{"volumeId": "agv6w2qcg7", "path": "/workspace"}]}
    assert sent["dataCenterIds"] == ["EU-RO-1"]
    assert sent["env"]["HF_HOME"] == "/workspace/huggingface"


def test_a_pod_volume_gets_hf_home_too_and_env_overrides_it() -> None:
    assert body({"volume_in_gb": 80})["env"]["HF_HOME"] == "/workspace/huggingface"
    assert body({"volume_in_gb": 80})["mounts"] == {
        "persistent": {"size": 80, "path": "/workspace"}
    }
    own = body({"volume_in_gb": 80, "env": {"HF_HOME": "/workspace/hf"}})
    assert own["env"]["HF_HOME"] == "/workspace/hf"


def test_defaults_send_no_volume_no_data_center_and_no_spot_marker() -> None:
    sent = body({})
    for key in ("mounts", "dataCenterIds"):
        assert key not in sent
    assert "HF_HOME" not in sent["env"] and "PODMGR_SPOT" not in sent["env"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        pytest.param({"network_volume_id": "v1", "cloud_type": "COMMUNITY"}, "cloud_type",
                     id="volume-in-community-cloud"),
        pytest.param({"network_volume_id": "v1", "cloud_type": "ALL"}, "cloud_type",
                     id="volume-with-all"),
        pytest.param({"network_volume_id": "bad id"}, "network_volume_id", id="volume-id"),
        pytest.param({"data_center_ids": []}, "data_center_ids", id="no-data-center"),
        pytest.param({"data_center_ids": ["eu ro"]}, "data_center_ids", id="bad-data-center"),
        pytest.param({"min_download_mbps": 500}, "min_download_mbps", id="download-speed-v1"),
        pytest.param({"support_public_ip": True}, "support_public_ip", id="public-ip-v1"),
        pytest.param({"volume_in_gb": 5}, "volume_in_gb", id="volume-under-10gb"),
        pytest.param({"max_preemptions": -1}, "max_preemptions", id="preemptions"),
    ],
)  # fmt: skip
def test_invalid_combinations_exit_2_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config(values, environ={})
    assert raised.value.exit_code == 2 and raised.value.field == field, raised.value
