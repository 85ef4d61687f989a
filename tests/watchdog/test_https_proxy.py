"""`use_https` with a self-signed certificate, as a new user would make one: `podmgr up`
starts the real proxy over TLS and the watchdog trusts it through the configured
certificate, not the system's CAs (issue 9: every pass exited 10 "did not answer")."""

from __future__ import annotations

import datetime
import ipaddress
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from podmgr.watchdog.proxy_probe import fetch_health, fetch_proxy_health

from .conftest import Harness
from .test_cli import cli


def self_signed_for_localhost(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (PEM files)."""
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


def _status_says_healthy(wd: Harness) -> bool:
    """`podmgr status` probes with a 1 s timeout: a busy machine may need another try."""
    status = cli(wd, "status", "--json")
    assert status.returncode == 0, status.stderr
    healthy: bool = json.loads(status.stdout)["proxy"]["healthy"]
    return healthy


@pytest.mark.timeout(300)  # three CLI processes and a proxy start on a busy machine
def test_up_and_later_passes_trust_their_own_https_proxy(wd: Harness) -> None:
    cert, key = self_signed_for_localhost(wd.dir)
    # Relative paths, as in a pod_config.json beside its certificate; a generous start
    # timeout for a busy machine (the defect was never answering, not answering late).
    wd.configure(
        use_https=True, ssl_cert=cert.name, ssl_key=key.name, proxy_start_timeout_seconds=60
    )
    assert wd.config.proxy_url.startswith("https://127.0.0.1:")

    up = cli(wd, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "proxy pid" in up.stdout, up.stdout
    assert wd.state().proxy_pid is not None

    later = cli(wd, "watchdog")
    assert later.returncode == 0, later.stdout + later.stderr
    assert fetch_proxy_health(wd.config, timeout=10) is not None  # what passes and status use
    assert any(_status_says_healthy(wd) for _ in range(3)), "status never saw the proxy healthy"

    # It really is TLS with a certificate the system does not know: without the
    # configured certificate the probe refuses it.
    assert fetch_health(wd.config.proxy_url, timeout=10) is None
    assert fetch_health(wd.config.proxy_url, timeout=10, cafile=cert) is not None
