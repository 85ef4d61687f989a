"""Issue 22: a GPU named by its display name ("RTX 4090") passed `config validate`, and
`podmgr up` then left an active session, a running proxy and a `pending_create` that made
the next `up` wait ~120 s. Now validate names the field and the closest ids, `up` exits 2
leaving nothing behind, a create refused outright keeps no `pending_create`, shutdown
forgets one, and the corrected config serves at once."""

from __future__ import annotations

import subprocess
import sys

import pytest
from wdkit import Harness

from podmgr.errors import (
    ApiError,
    AuthError,
    BalanceError,
    CapacityError,
    ConfigError,
    ConflictError,
    ContractError,
    PlacementError,
    PodmgrError,
    TransientApiError,
    UnconfirmedCreateError,
)
from podmgr.runpod.gpu_ids import closest_ids
from podmgr.runpod.values import GpuType
from podmgr.state import PendingCreate
from podmgr.watchdog import actions as act
from podmgr.watchdog.apply import refused_outright
from podmgr.watchdog.plan import plan
from podmgr.watchdog.proxy_probe import fetch_health

from .helpers import NOW, config, seen, session, state

CATALOG = [
    GpuType("NVIDIA GeForce RTX 4090", "RTX 4090"),
    GpuType("NVIDIA RTX A6000", "RTX A6000"),
    GpuType("NVIDIA A100 80GB PCIe", "A100 PCIe"),
    GpuType("NVIDIA H100 80GB HBM3", "H100 SXM"),
]


@pytest.mark.parametrize(
    ("name", "first"),
    [
        pytest.param("RTX 4090", "NVIDIA GeForce RTX 4090", id="display name"),
        pytest.param("rtx 4090", "NVIDIA GeForce RTX 4090", id="case"),
        pytest.param("NVIDIA RTX 4090", "NVIDIA GeForce RTX 4090", id="words of the id"),
        pytest.param("NVIDIA GeForce RTX 4080", "NVIDIA GeForce RTX 4090", id="typo"),
        pytest.param("H100", "NVIDIA H100 80GB HBM3", id="part of the id"),
    ],
)
def test_the_closest_id_comes_first(name: str, first: str) -> None:
    assert closest_ids(name, CATALOG)[0].id == first


def test_no_suggestion_for_a_name_like_none() -> None:
    assert closest_ids("Quadro P6000 Pro Max", CATALOG) == []


def _status(status: int) -> ApiError:
    error = ApiError(f"RunPod answered {status}")
    error.status = status
    return error


@pytest.mark.parametrize(
    ("error", "outright"),
    [
        pytest.param(ConfigError("x", field="pod.gpu_type_id"), True, id="config"),
        pytest.param(AuthError("401"), True, id="401/403 key"),
        pytest.param(ContractError("422"), True, id="422"),
        pytest.param(_status(404), True, id="404 template"),
        pytest.param(_status(400), True, id="400 other"),
        pytest.param(ConflictError("409"), False, id="409"),
        pytest.param(_status(409), False, id="409 plain"),
        pytest.param(TransientApiError("429", may_have_applied=False), False, id="429"),
        pytest.param(TransientApiError("500"), False, id="5xx"),
        pytest.param(UnconfirmedCreateError("lost"), False, id="no clear answer"),
        pytest.param(CapacityError("no room"), False, id="capacity"),
        pytest.param(PlacementError("placed nowhere", status=400), False, id="placement"),
        pytest.param(BalanceError("402"), False, id="402: its own path"),
        pytest.param(ApiError("unreadable answer"), False, id="no status"),
    ],
)
def test_which_refusals_are_outright(error: PodmgrError, outright: bool) -> None:
    assert refused_outright(error) is outright


def test_shutdown_forgets_a_create_that_got_no_clear_answer() -> None:
    pending = state(session())
    pending.pending_create = PendingCreate(name="podmgr-x", gpu_type_id="A", at=NOW - 10)
    actions = plan(config(), pending, seen(), NOW, "shutdown")
    assert act.ForgetCreate("podmgr-x", "shutdown requested") in actions


def cli(wd: Harness, *args: str, key: bool = True) -> subprocess.CompletedProcess[str]:
    env = wd.sim.env(wd.dir / "home")
    if not key:
        del env["RUNPOD_API_KEY"]
    return subprocess.run(
        [sys.executable, "-m", "podmgr", *args, "--config", str(wd.config_path)],
        env=env, cwd=wd.dir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_validate_names_the_field_and_the_closest_ids(wd: Harness) -> None:
    wd.configure(gpu_type_id="RTX 4090")
    unchecked = cli(wd, "config", "validate", key=False)  # no catalog at hand
    assert unchecked.returncode == 0 and "gpu ids: not checked" in unchecked.stdout
    read = cli(wd, "config", "validate")  # read with the key
    assert read.returncode == 2, read.stdout + read.stderr
    assert "pod.gpu_type_id" in read.stderr and "'NVIDIA GeForce RTX 4090'" in read.stderr
    wd.configure(gpu_type_id="NVIDIA GeForce RTX 4090")
    assert cli(wd, "watchdog", "--refresh-catalog").returncode == 0  # saves the catalog
    wd.configure(gpu_type_id="RTX 4090")
    saved = cli(wd, "config", "validate", key=False)
    assert saved.returncode == 2 and "did you mean 'NVIDIA GeForce RTX 4090'?" in saved.stderr
    assert "catalog.json" in saved.stderr
    up = cli(wd, "up", key=False)  # the saved catalog refuses it before anything starts
    assert up.returncode == 2 and "pod.gpu_type_id" in up.stderr
    assert not wd.store.path.exists() and wd.ledger() == []


def test_up_with_a_display_name_exits_2_leaving_nothing_then_the_fix_serves(
    wd: Harness,
) -> None:
    wd.configure(gpu_type_id="RTX 4090", create_confirm_seconds=120)
    up = cli(wd, "up")
    assert up.returncode == 2, up.stdout + up.stderr
    assert "pod.gpu_type_id" in up.stderr and "'NVIDIA GeForce RTX 4090'" in up.stderr
    left = wd.state()
    assert left.session is not None and not left.session.active
    assert left.session.end_reason == "create_refused"
    assert left.pending_create is None and left.proxy_pid is None
    assert fetch_health(wd.config.proxy.url) is None  # no proxy answers
    assert wd.ledger() == []
    wd.configure(gpu_type_id="NVIDIA GeForce RTX 4090")
    fixed = cli(wd, "up")
    try:
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "no clear answer" not in fixed.stdout and "serving:" in fixed.stdout
    finally:
        assert cli(wd, "shutdown").returncode == 0


def test_a_create_refused_with_404_keeps_no_pending_create(wd: Harness) -> None:
    wd.configure(template_id="no-such-template")  # REST v2 createPod: 404 for it
    with pytest.raises(ApiError) as raised:
        wd.run("start")
    assert raised.value.status == 404
    left = wd.state()
    assert left.pending_create is None and left.proxy_pid is None
    assert left.session is not None and left.session.end_reason == "create_refused"
    assert wd.ledger() == []


def test_shutdown_clears_a_pending_create(wd: Harness) -> None:
    wd.run("start")
    with wd.store.locked():
        pending = wd.state()
        pending.pending_create = PendingCreate(name=f"{wd.prefix}lost", gpu_type_id="x", at=1.0)
        wd.store.save(pending)
    wd.run("shutdown")
    assert wd.state().pending_create is None
