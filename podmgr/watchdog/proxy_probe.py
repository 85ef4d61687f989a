"""Looking at the proxy without touching it: its /health, and whether a pid is our proxy.

Standard library only, so that `podmgr status` can use it without the heavy imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["fetch_health", "is_our_proxy", "pid_alive"]


def fetch_health(base_url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The proxy's /health JSON, or None if nothing usable answered (stdlib only: fast)."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/health", timeout=timeout) as resp:
            body = json.loads(resp.read(65536) or b"{}")
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return body if isinstance(body, dict) else None


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
