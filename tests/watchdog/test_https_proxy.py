"""`use_https` with a self-signed certificate, as a new user would make one: `podmgr up`
starts the real proxy over TLS and the watchdog trusts it through the configured
certificate, not the system's CAs (issue 9: every pass exited 10 "did not answer")."""

from __future__ import annotations

import json

import pytest
from simkit import self_signed
from wdkit import Harness

from podmgr.watchdog.proxy_probe import fetch_health, fetch_proxy_health

from .test_cli import cli


def _status_says_healthy(wd: Harness) -> bool:
    """`podmgr status` probes with a 1 s timeout: a busy machine may need another try."""
    status = cli(wd, "status", "--json")
    assert status.returncode == 0, status.stderr
    healthy: bool = json.loads(status.stdout)["proxy"]["healthy"]
    return healthy


@pytest.mark.timeout(300)  # three CLI processes and a proxy start on a busy machine
def test_up_and_later_passes_trust_their_own_https_proxy(wd: Harness) -> None:
    cert, key = self_signed(wd.dir)
    # Relative paths, as in a pod_config.json beside its certificate; a generous start
    # timeout for a busy machine (the defect was never answering, not answering late).
    wd.configure(
        use_https=True, ssl_cert=cert.name, ssl_key=key.name, proxy_start_timeout_seconds=60
    )
    assert wd.config.proxy.url.startswith("https://127.0.0.1:")

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
    assert fetch_health(wd.config.proxy.url, timeout=10) is None
    assert fetch_health(wd.config.proxy.url, timeout=10, cafile=cert) is not None
