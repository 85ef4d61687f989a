"""Where the pod's requests go: the watchdog's ready pod, or why there is none.

A pod from the state file is always treated as behind RunPod's 100 s edge limit; an
`openai` upstream (kinds.py) only when its `base_url` is a `*.proxy.runpod.net` URL (a
local or self-hosted vLLM has no such limit, so its non-streaming requests are forwarded
as they are: the faster path).

The state file is the watchdog's (never locked or written here). `UpstreamResolver.refresh`
stats it (mtime, inode, size) and re-reads it only when it changed; the app calls it from a
background task about every half second, so a request only reads an attribute and a new
pod is picked up without a restart.

With several pods (config `pods`) the resolver keeps one `Upstream` per pod name in
`targets` (a new dict whenever the file changed, so a caller may compare it by identity);
`current` is the first pod's, what one-pod code paths read.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from podmgr.proxy.openai_errors import ProxyFailure, pod_unavailable
from podmgr.state import State, StateStore, pod_record

__all__ = ["Upstream", "UpstreamResolver", "edge_limited", "root_url"]


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where to send a request now; `failure` says why there is nowhere (503)."""

    base_url: str | None
    auth_header: bytes | None
    reason: str | None
    failure: ProxyFailure | None
    # True when a proxy between us and the server cuts answers that take more than 100 s to
    # start (RunPod's edge): non-streaming completions are then sent upstream as streams.
    edge_limited: bool = True

    @property
    def ready(self) -> bool:
        return self.base_url is not None

    @property
    def url_host(self) -> str | None:
        return urlsplit(self.base_url).netloc if self.base_url else None


def root_url(url: str) -> str:
    """The server root: no trailing slash, and a trailing `/v1` means the same root."""
    url = url.rstrip("/")
    return url[:-3].rstrip("/") if url.endswith("/v1") else url


def edge_limited(url: str) -> bool:
    """A pod URL (`*.proxy.runpod.net`) has the edge limit; a server of the user's own does not."""
    host = urlsplit(url).hostname or ""
    return host.endswith(".proxy.runpod.net")


def _unavailable(reason: str, message: str, retry_after: int) -> Upstream:
    return Upstream(None, None, reason, pod_unavailable(reason, message, retry_after))


def upstream_from_state(state: State | None, name: str = "pod") -> Upstream:
    """The pod `name` to use, or why there is none, from the watchdog's state."""
    pod = pod_record(state, name)
    if pod is not None and pod.phase == "ready" and pod.endpoint_url:
        auth = f"Bearer {pod.vllm_api_key}".encode() if pod.vllm_api_key else None
        return Upstream(root_url(pod.endpoint_url), auth, None, None)
    session = state.session if state else None
    if session is not None and not session.active:
        why = session.end_reason or "ended"
        return _unavailable(
            "session_ended", f"the GPU session has ended ({why}); start a new one", 60
        )
    if pod is None:
        return _unavailable("no_pod", "no GPU pod is running; start one with `podmgr up`", 60)
    if pod.phase == "stopped":
        return _unavailable("pod_stopped", "the GPU pod is stopped", 60)
    return _unavailable(
        "pod_starting", f"the GPU pod is starting (phase {pod.phase}); retry shortly", 10
    )


class UpstreamResolver:
    """Keeps the current `Upstream` and `State`, re-reading the state file when it changes."""

    def __init__(self, state_path: Path, pod_names: tuple[str, ...] = ("pod",)) -> None:
        self._store = StateStore(state_path)
        self._stamp: tuple[int, int, int] | None = None
        self.pod_names = pod_names
        self.state: State | None = None
        self.targets: dict[str, Upstream] = self._targets(None)
        self.current: Upstream = self.targets[pod_names[0]]
        self.checked_at = 0.0

    def _targets(self, state: State | None) -> dict[str, Upstream]:
        return {name: upstream_from_state(state, name) for name in self.pod_names}

    def target(self, name: str) -> Upstream:
        """Where the pod `name` is now (or why it is not there)."""
        found = self.targets.get(name)
        return found if found is not None else upstream_from_state(None, name)

    def refresh(self) -> bool:
        """Re-read the state file if it changed; True if it did. Blocking: call in a thread."""
        self.checked_at = time.time()
        try:
            info = os.stat(self._store.path)
            stamp = (info.st_mtime_ns, info.st_ino, info.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp and self._stamp is not None:
            return False
        self._stamp = stamp
        self.state = self._store.peek() if stamp is not None else None
        self.targets = self._targets(self.state)
        self.current = self.targets[self.pod_names[0]]
        return True
