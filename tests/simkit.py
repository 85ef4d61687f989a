"""Test helpers around the simulator (podmgr/sim/process.py runs it as a process).

- `write_pod_state(path, pod_id, url, api_key=...)`: a state file as the watchdog writes it
  for a pod (ready by default), for a proxy to find its upstream in;
  `write_pods_state(path, {name: upstream})` the same for several pods (config `pods`).
- `self_signed(directory)`: a certificate for localhost and 127.0.0.1, for TLS tests.
- `simulated_vllm(api_key=...)`: a simulator with one serving pod, the upstream of a proxy
  test: its URL, its faults (`upstream_error`, `upstream_drop`, `upstream_stall`,
  `upstream_slow`) and what reached it (`traffic()`: received, model calls, cancelled);
  `start_pod(sim, ...)` adds another serving pod to a running simulator.

Importable as `simkit` from every test folder (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podmgr.sim.process import WAIT_SECONDS, SimProcess, wait_until
from podmgr.state import PodPhase, PodRecord, Session, State, StateStore

__all__ = [
    "SimUpstream",
    "self_signed",
    "simulated_vllm",
    "start_pod",
    "write_pod_state",
    "write_pods_state",
]


def write_pod_state(
    path: str | os.PathLike[str],
    pod_id: str,
    url: str | None,
    *,
    api_key: str,
    phase: PodPhase = "ready",
) -> None:
    """A state file as the watchdog writes it for pod `pod_id` at `url` in `phase`.

    The session is an hour long and a minute old; a ready pod has been ready for 30 s.
    """
    now = time.time()
    state = State(
        session=Session(started_at=now - 60, deadline=now + 3600, cost_usd=0.05),
        pod=PodRecord(
            id=pod_id, name=f"podmgr-{pod_id}", gpu_type_id="NVIDIA GeForce RTX 4090",
            cost_per_hr=0.69, created_at=now - 60, ready_at=now - 30 if phase == "ready" else None,
            phase=phase, endpoint_url=url, vllm_api_key=api_key, billed_until=now - 60,
        ),
    )  # fmt: skip
    StateStore(Path(path)).save(state)


def _ready_record(pod_id: str, url: str | None, api_key: str, now: float) -> PodRecord:
    return PodRecord(
        id=pod_id, name=f"podmgr-{pod_id}", gpu_type_id="NVIDIA GeForce RTX 4090",
        cost_per_hr=0.69, created_at=now - 60, ready_at=now - 30, phase="ready",
        endpoint_url=url, vllm_api_key=api_key, billed_until=now - 60,
    )  # fmt: skip


def write_pods_state(path: str | os.PathLike[str], pods: dict[str, SimUpstream]) -> None:
    """A state file with one ready record per configured pod name (issue 23's `pods`), in
    one session an hour long and a minute old. A name left out has no pod (it is cold)."""
    now = time.time()
    state = State(
        session=Session(started_at=now - 60, deadline=now + 3600, cost_usd=0.05),
        pods={name: _ready_record(up.pod_id, up.url, up.api_key, now) for name, up in pods.items()},
    )
    StateStore(Path(path)).save(state)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `localhost` and 127.0.0.1 and its key (mode 0600), as
    PEM files in `directory`, for TLS tests of the proxy and of the watchdog's probe.

    `cryptography` (a test dependency) is imported here only, so the kit stays cheap to import.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "localhost.crt", directory / "localhost.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class SimUpstream:
    """A simulated pod serving vLLM, the upstream of a proxy test (see `simulated_vllm`)."""

    sim: SimProcess
    pod_id: str
    api_key: str
    model: str

    @property
    def url(self) -> str:
        """The pod's URL (what `upstream_url` or the state file's endpoint_url holds)."""
        return self.sim.pod_url(self.pod_id)

    def traffic(self) -> dict[str, Any]:
        return self.sim.pod_traffic(self.pod_id)

    def set_fault(self, fault: str, **params: Any) -> None:
        """`SimProcess.set_fault` for this pod only: the faults with a `pod_id` parameter
        (upstream_error, upstream_drop, upstream_stall, upstream_slow, pod_crash, vllm_die,
        and vLLM's start-up failures: vllm_oom, gated_model, model_not_found, bad_vllm_args,
        unsupported_arch, which strike this pod's next container unless its current one
        has not passed their moment: podmgr/sim/fatal.py)."""
        self.sim.set_fault(fault, pod_id=self.pod_id, **params)

    def clear_faults(self) -> None:
        self.sim.clear_faults()

    def write_state(self, path: str | os.PathLike[str]) -> None:
        """A state file naming this pod as the watchdog's ready pod."""
        write_pod_state(path, self.pod_id, self.url, api_key=self.api_key)

    def wait_cancelled(self, before: int, timeout: float = WAIT_SECONDS) -> int:
        """Wait until the pod counted more abandoned answers than `before`; the count."""

        def cancelled() -> int:
            count = int(self.traffic()["cancelled"])
            return count if count > before else 0

        what = f"the pod to see its client leave (cancelled > {before})"
        return wait_until(cancelled, what, timeout)


@contextmanager
def simulated_vllm(
    *,
    api_key: str,
    model: str = "sim-model",
    token_delay: float = 0.0,
    edge_timeout_seconds: float = 100.0,
) -> Iterator[SimUpstream]:
    """A simulator with one serving pod (vLLM requiring `api_key`), stopped on exit."""
    with SimProcess(
        pull_seconds=0.05, load_seconds=0.05, token_delay=token_delay,
        edge_timeout_seconds=edge_timeout_seconds,
    ) as sim:  # fmt: skip
        upstream = start_pod(sim, api_key=api_key, model=model)
        yield upstream


def start_pod(sim: SimProcess, *, api_key: str, model: str = "sim-model") -> SimUpstream:
    """Another serving pod on a running simulator, as a `SimUpstream`."""
    pod_id = sim.create_pod(model=model, env={"VLLM_API_KEY": api_key})
    sim.wait_serving(pod_id)
    return SimUpstream(sim, pod_id, api_key, model)
