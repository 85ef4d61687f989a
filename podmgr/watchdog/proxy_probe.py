"""Looking at the proxy without touching it: its /health, and whether a pid is our proxy.

The standard library's urllib, not httpx: `podmgr status` uses this and must stay fast
(importing httpx would add ~65 ms to a ~180 ms command). With `use_https` the watchdog
checks its own proxy over TLS that trusts exactly the configured `ssl_cert`: a
self-signed certificate is not in the system's CAs, and every pass used to find the
proxy it had just started "not answering" (issue 9).
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from podmgr.config import Config

__all__ = [
    "fetch_health",
    "fetch_proxy_health",
    "is_our_proxy",
    "pid_alive",
    "proxy_log_path",
    "proxy_serves",
    "proxy_serves_pods",
    "trusting",
]


def proxy_log_path(config: Config) -> Path:
    """Where the proxy the watchdog starts writes its output: `proxy.log` beside the state."""
    return config.state_path.parent / "proxy.log"


def trusting(cert_file: Path) -> ssl.SSLContext:
    """A client context whose only trust anchors are the certificates in `cert_file`.

    Partial chains are allowed so that a leaf certificate (not only a self-signed root)
    is trusted as given; the host name is still checked against the certificate.
    """
    context = ssl.create_default_context(cafile=str(cert_file))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def fetch_health(
    base_url: str, timeout: float = 2.0, cafile: Path | None = None
) -> dict[str, Any] | None:
    """The proxy's /health JSON, or None if nothing usable answered (or TLS failed).

    `cafile`: trust only this certificate file for an https URL (a file that cannot be
    read counts as no answer, as the proxy serving it cannot have started either).
    """
    try:
        context = trusting(cafile) if cafile is not None else None
        url = base_url.rstrip("/") + "/health"
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            body = json.loads(resp.read(65536) or b"{}")
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return body if isinstance(body, dict) else None


def fetch_proxy_health(config: Config, timeout: float = 2.0) -> dict[str, Any] | None:
    """/health of the proxy this config runs, trusting the certificate it serves."""
    cafile = (
        config.resolve_path(config.proxy.ssl_cert)
        if config.proxy.use_https and config.proxy.ssl_cert
        else None
    )
    return fetch_health(config.proxy.url, timeout=timeout, cafile=cafile)


def proxy_serves(config: Config, pod_id: str, timeout: float) -> bool:
    """Wait (up to `timeout`) until the proxy's /health says it forwards to `pod_id`: the
    proxy reads the state on its own schedule, and "serving" must mean that the user's
    first request reaches the pod (not 503 "the GPU pod is starting")."""
    deadline = time.monotonic() + timeout
    while True:
        health = fetch_proxy_health(config, timeout=2.0)
        pod = (health or {}).get("pod") or {}
        upstream = (health or {}).get("upstream") or {}
        if pod.get("id") == pod_id and pod.get("phase") == "ready" and upstream.get("ready"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def proxy_serves_pods(config: Config, pods: Mapping[str, str], timeout: float) -> bool:
    """`proxy_serves` for a set (config `pods`): wait (up to `timeout`) until the proxy's
    /health `pods` shows each pod name of `pods` ready with its pod id, so the first request
    for each model reaches its pod (issue 23: `podmgr up` said serving while the proxy
    still routed a pod's model to "starting")."""
    deadline = time.monotonic() + timeout
    while True:
        views = (fetch_proxy_health(config, timeout=2.0) or {}).get("pods") or {}
        if all(_ready(views.get(name), pod_id) for name, pod_id in pods.items()):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _ready(view: Any, pod_id: str) -> bool:
    return isinstance(view, dict) and view.get("id") == pod_id and view.get("phase") == "ready"


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


def pid_alive(pid: int) -> bool:
    """True for a running (not zombie) process; reaps it if it is our exited child."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) not in ("Z", "X")


def is_our_proxy(pid: int | None, config_path: Path) -> bool:
    """Alive and its command line runs `proxy` for this config file."""
    if not pid or pid <= 0 or not pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [a.decode(errors="replace") for a in argv]
    return "proxy" in args and str(config_path) in args
