"""Doctor's pure decisions: which (GPU type, cloud) it rents and the most it can cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from podmgr.config import build_config
from podmgr.doctor.choice import MODEL, Choice, bound_usd, cheapest, doctor_cid, doctor_config
from podmgr.runpod.values import GpuType
from podmgr.watchdog.identity import config_id


def gpu(gpu_id: str, price: float, **more: object) -> GpuType:
    values: dict[str, object] = {
        "display_name": gpu_id,
        "memory_gb": 24,
        "community_price": price,
        "community_cloud": True,
        "community_stock": "HIGH",
        "community_cuda": ("12.4", "12.8"),
        "secure_cloud": False,
    }
    return GpuType(id=gpu_id, **{**values, **more})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("left_out", "why"),
    [
        (gpu("cheap", 0.10, community_stock="NONE"), "no stock"),
        (gpu("cheap", 0.10, memory_gb=6), "too small for the model"),
        (gpu("cheap", 0.10, community_cuda=("12.2",)), "CUDA too old"),
        (gpu("cheap", 0.0), "no price"),
        (gpu("cheap", 0.10, community_cloud=False), "not offered there"),
    ],
)
def test_a_cheaper_gpu_that_cannot_serve_is_left_out(left_out: GpuType, why: str) -> None:
    choice = cheapest([left_out, gpu("fits", 0.30)], "12.4")
    assert choice is not None and choice.gpu_type_id == "fits", why


def test_the_cheapest_pair_wins_across_clouds() -> None:
    both = gpu("both", 0.50, secure_cloud=True, secure_price=0.40, secure_stock="LOW",
               secure_cuda=("12.8",))  # fmt: skip
    choice = cheapest([both, gpu("other", 0.45)], "12.4")
    assert choice == Choice("both", "both", "SECURE", 0.40, 24, 3)


def test_nothing_fits() -> None:
    assert cheapest([gpu("small", 0.1, memory_gb=4)], "12.4") is None


def test_the_bound_is_the_price_for_the_whole_deadline_rounded_up() -> None:
    assert bound_usd(0.33, 1200) == 0.11
    assert bound_usd(0.34, 1200) == 0.12  # 0.1133 -> 0.12


def test_the_pod_config_is_the_small_model_guarded_and_not_the_watchdogs(tmp_path: Path) -> None:
    user = build_config(
        {"model": "big/model", "docker_args": "--model big/model", "guard_lease_seconds": 900,
         "volume_in_gb": 50, "pod_name_prefix": "me-"},
        environ={},
    )  # fmt: skip
    choice = Choice("G", "G", "COMMUNITY", 0.3, 24, 1)
    cfg = doctor_config(user, choice, deadline_seconds=1200, idle_seconds=120, bound=0.1)
    assert (
        MODEL in cfg.pod.container_command()
        and "--max-model-len 2048" in cfg.pod.container_command()
    )
    assert (cfg.pod.gpu_type_ids, cfg.pod.cloud_type, cfg.guard.enabled) == (
        ["G"],
        "COMMUNITY",
        True,
    )
    assert (
        cfg.limits.runtime_seconds,
        cfg.limits.idle_timeout_seconds,
        cfg.limits.max_cost_usd,
    ) == (1200, 120, 0.1)
    assert cfg.guard.lease_seconds is None and cfg.pod.volume_in_gb == 0
    assert cfg.pod.pod_name_prefix == "me-doctor-"
    config_path = tmp_path / "pod_config.json"
    assert doctor_cid(config_path) != config_id(config_path)
