"""Part 4 of the reliability proofs: the caching proxy under load and upstream faults.

The real proxy process sits in front of the project's simulator (one serving pod, reached
through the state file as the watchdog writes it). 64 concurrent connections send a mix of
cache hits, misses, streams and clients that hang up after the first SSE chunk, while the
simulated upstream returns 500s and 503s, drops connections, stalls (some past its 3 s edge
limit: 524), loses its vLLM (kill + stop/resume) and is SIGKILLed and restarted on the same
port. Afterwards: no 500 of the proxy's making, every failure OpenAI-shaped, only whole
200 answers in the cache, the cache within its limits, and the proxy's fds and RSS back
near their values after warm-up (both printed).

CI runs PODMGR_PROXY_LOAD_REQUESTS requests (default 2,000); `make chaos` runs 10,000
(the slow variant). Also here: the cache directory deleted, or made read-only, while the
proxy serves: requests are still answered (uncached), the proxy stays up.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from proxy.proxykit import VLLM_KEY, ProxyProcess, free_port, get_json
from simkit import write_pod_state

from podmgr.proxy.cache.key import decide
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.forward.coalescer import Coalescer
from podmgr.proxy.forward.flight import FlightState, UpstreamCall
from podmgr.proxy.observe.metrics import ProxyMetrics, Snapshot
from podmgr.proxy.upstream.client import UpstreamClient
from podmgr.proxy.upstream.transport import Transport
from podmgr.sim.process import wait_until

from .proxy_load import (
    CacheAudit,
    FaultSchedule,
    RestartableSim,
    Tally,
    audit_cache,
    drive,
    errors_logged,
    log_events,
    proc_fds,
    proc_rss_mib,
)

REQUESTS = int(os.environ.get("PODMGR_PROXY_LOAD_REQUESTS", "2000"))
CONNS = 64
WARMUP_REQUESTS = 400
RECOVERY_REQUESTS = 200
MAX_ENTRIES = 64
MAX_BYTES = 192 * 1024  # ~55 answers of this mix: the byte bound is the one that bites
MEMORY_BYTES = 48 * 1024
TOKEN_DELAY = 0.001  # a stream lasts ~12 ms: long enough for a hang-up to land mid-answer
SETTLE_SECONDS = 2.0
# Tolerances for "back near the start". fds: the proxy keeps a keep-alive pool to the
# upstream (aiohttp, up to one idle connection per concurrent client, 64 here) whose size
# after any run depends on how many were open when the load stopped; a leak of one fd per
# failed/cancelled request would show as hundreds or thousands at these request counts, so
# +24 separates "pool size differs" from "leak". RSS: allocator high-water marks and the
# hot cache (bounded by MEMORY_BYTES) move it by a few MiB; a per-request leak of even 5 KiB
# would be +50 MiB at 10,000 requests, so +50 MiB or +30% (the larger) is the bound.
FD_SLACK = 24
RSS_SLACK_MIB = 50.0
RSS_SLACK_RATIO = 0.30


def proxy_env() -> dict[str, str]:
    """The test's environment without PODMGR_* (this test's own knobs are not config)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PODMGR_")}


@pytest.fixture
def sim() -> Iterator[RestartableSim]:
    upstream = RestartableSim(free_port(), VLLM_KEY, TOKEN_DELAY).start()
    try:
        yield upstream
    finally:
        upstream.stop()


def start_proxy(workdir: Path, sim: RestartableSim) -> ProxyProcess:
    proxy = ProxyProcess(
        workdir,
        upstream_timeout_seconds=10,
        max_cache_size=MAX_ENTRIES,
        max_cache_bytes=MAX_BYTES,
        cache_memory_bytes=MEMORY_BYTES,
        enable_profiling=True,
        log_level="warning",
    )
    write_pod_state(proxy.state_path, sim.pod_id, sim.pod_url, api_key=VLLM_KEY)
    return proxy.start(env=proxy_env())


def settled(proxy: ProxyProcess, pid: int) -> tuple[int, float]:
    """(fds, RSS MiB) of the proxy once its cache writes are done and its fd count stopped
    moving over SETTLE_SECONDS (answers go out before their entries are written, and pooled
    connections close a moment after the load stops)."""

    def still() -> tuple[int, float] | None:
        if get_json(proxy.url + "/health")["cache"]["in_flight"]:
            return None
        fds = proc_fds(pid)
        time.sleep(SETTLE_SECONDS)
        return (fds, proc_rss_mib(pid)) if proc_fds(pid) == fds else None

    return wait_until(still, "the proxy's cache writes to finish and its fd count to settle")


def test_proxy_under_load_and_faults(tmp_path: Path, sim: RestartableSim) -> None:
    load_run(tmp_path, sim, REQUESTS)


@pytest.mark.slow
def test_proxy_under_load_10000(tmp_path: Path, sim: RestartableSim) -> None:
    load_run(tmp_path, sim, max(REQUESTS, 10_000))


async def faulted_load(proxy_url: str, sim: RestartableSim, total: int, tally: Tally) -> int:
    """The load with the fault schedule beside it; upstream faults fired."""
    schedule = FaultSchedule(sim, total, lambda: tally.requests)
    stop = asyncio.Event()
    faults = asyncio.ensure_future(schedule.run(stop))
    try:
        await drive(proxy_url, total, CONNS, tally, seed=2, serial_start=WARMUP_REQUESTS)
    finally:
        stop.set()
        await faults
    fired = await asyncio.to_thread(schedule.total_fired)
    assert sim.sim is not None
    await asyncio.to_thread(sim.sim.clear_faults)
    return fired


def load_run(tmp_path: Path, sim: RestartableSim, total: int) -> None:
    proxy = start_proxy(tmp_path, sim)
    try:
        assert proxy.process is not None
        pid = proxy.process.pid
        warm = Tally()
        asyncio.run(drive(proxy.url, WARMUP_REQUESTS, CONNS, warm, seed=1))
        assert warm.bad == [] and warm.ok > WARMUP_REQUESTS // 2, warm.bad[:5]
        fds_before, rss_before = settled(proxy, pid)

        started = time.monotonic()
        tally = Tally()
        tally.contents.update(warm.contents)
        fired = asyncio.run(faulted_load(proxy.url, sim, total, tally))
        seconds = time.monotonic() - started

        # Faults cleared, upstream back: the proxy must serve everything again.
        recovered = Tally()
        asyncio.run(drive(proxy.url, RECOVERY_REQUESTS, 16, recovered, seed=9, serial_start=10**7))
        fds_after, rss_after = settled(proxy, pid)
        health = get_json(proxy.url + "/health")
        debug = get_json(proxy.url + "/debug/cache")
        assert proxy.process.poll() is None, "the proxy died under load"
        assert proxy.stop() == 0, "the proxy did not stop cleanly"
        audit = audit_cache(proxy.cache_path, tally.contents)
        log = proxy.log_text()
    finally:
        proxy.close()

    restarts = sim.restarts + sim.vllm_deaths
    print(
        f"\nproxy-load: requests={tally.requests} conns={CONNS} hits={tally.hits} "
        f"misses={tally.misses} streams={tally.streams} disconnects={tally.disconnects} "
        f"upstream_faults={fired} restarts={restarts} proxy_500={tally.proxy_500} "
        f"bad_errors={tally.bad_errors} fds={fds_before}->{fds_after} "
        f"rss_mib={rss_before:.1f}->{rss_after:.1f}"
    )
    print(
        f"proxy-load: seconds={seconds:.1f} rps={tally.requests / seconds:.0f} "
        f"statuses={dict(sorted(tally.statuses.items()))} ok={tally.ok} "
        f"stream_errors={tally.stream_errors} internal={tally.internal} "
        f"sim_kills={sim.restarts} vllm_deaths={sim.vllm_deaths} "
        f"recovered={recovered.statuses} "
        f"evictions={debug['evictions']} cache_entries={audit.entries}/{MAX_ENTRIES} "
        f"cache_bytes={audit.bytes}/{MAX_BYTES} files={audit.files}"
    )
    check_run(tally, total, fired, sim, audit, debug)
    assert recovered.bad == [] and set(recovered.statuses) == {200}, recovered.statuses
    assert health["status"] == "ok"
    events = log_events(log)
    print(f"proxy-load: proxy log events {events}")
    assert errors_logged(events) == {}, log[-3000:]
    assert fds_after <= fds_before + FD_SLACK, f"fds {fds_before} -> {fds_after}"
    rss_slack = max(RSS_SLACK_MIB, rss_before * RSS_SLACK_RATIO)
    assert rss_after <= rss_before + rss_slack, f"RSS {rss_before:.1f} -> {rss_after:.1f} MiB"


def check_run(
    tally: Tally,
    total: int,
    fired: int,
    sim: RestartableSim,
    audit: CacheAudit,
    debug: dict[str, object],
) -> None:
    assert tally.requests == total
    assert tally.proxy_500 == 0, "the proxy answered 500 itself"
    assert tally.bad == [], tally.bad[:10]
    assert tally.internal == 0, "the proxy hit an unexpected exception (proxy_error)"
    assert tally.client_errors == 0
    # The run must have exercised what it claims to: hits, misses, hang-ups, faults.
    assert tally.hits > total // 10 and tally.misses > total // 10
    assert tally.disconnects > total // 50 and tally.streams > total // 5
    assert fired > 0 and sim.restarts >= 1 and sim.vllm_deaths >= 1
    failures = sum(n for status, n in tally.statuses.items() if status != 200)
    assert failures > 0, "no request failed: the faults did not reach the clients"
    # Outages (vLLM dead, simulator restarting: ~1 s each) fail every request sent meanwhile
    # (workers back off 0.2 s after a 5xx), and ~10% of upstream calls meet a fault.
    assert tally.ok > total // 2, "most requests should still be answered"
    assert audit.problems == [], audit.problems[:10]
    assert 0 < audit.entries <= MAX_ENTRIES and audit.bytes <= MAX_BYTES
    assert isinstance(debug["evictions"], int) and debug["evictions"] > 0, "no eviction happened"


# --- the cache directory breaks while serving ------------------------------------------------
def delete_dir(path: Path) -> Callable[[], None]:
    shutil.rmtree(path)
    return lambda: None


def _writes_blocked(path: Path) -> bool:
    probe = path / "entries" / ".probe"
    try:
        probe.write_bytes(b"x")
    except OSError:
        return True
    probe.unlink()
    return False


def make_read_only(path: Path) -> Callable[[], None]:
    """Make the cache dir unwritable; returns how to undo it.

    As root, chmod does not stop writes, so root uses `chattr -R +i` (immutable: no new
    files, no writes even through fds already open, no renames; ext4/xfs/btrfs support it).
    Without root, chmod -R a-w does. If neither took, the directory is replaced by a file.
    """
    undo = _chattr_immutable(path) if os.geteuid() == 0 else _chmod_read_only(path)
    if _writes_blocked(path):
        return undo
    undo()
    path.rename(path.with_name(path.name + ".aside"))
    path.write_text("not a directory")
    return lambda: None


def _chattr_immutable(path: Path) -> Callable[[], None]:
    def chattr(flag: str) -> None:
        subprocess.run(["chattr", "-R", flag, str(path)], capture_output=True, check=False)

    chattr("+i")
    return lambda: chattr("-i")


def _chmod_read_only(path: Path) -> Callable[[], None]:
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)

    def undo() -> None:
        for p, mode in modes.items():
            p.chmod(mode)

    return undo


@pytest.mark.parametrize("breakage", [delete_dir, make_read_only], ids=["deleted", "read_only"])
def test_cache_dir_broken_while_serving(
    tmp_path: Path, sim: RestartableSim, breakage: Callable[[Path], Callable[[], None]]
) -> None:
    proxy = start_proxy(tmp_path, sim)
    undo: Callable[[], None] = lambda: None  # noqa: E731
    try:
        before = Tally()
        asyncio.run(drive(proxy.url, 200, 16, before, seed=3))
        assert before.bad == [] and before.hits > 0, "the cache did not work to begin with"
        time.sleep(1.5)  # let the background sync run over the intact directory once
        undo = breakage(proxy.cache_path)
        after = Tally()
        asyncio.run(drive(proxy.url, 300, 16, after, seed=4, serial_start=1000))
        time.sleep(1.5)  # the background sync runs over the broken directory
        hot = Tally()  # only repeated bodies: hits from memory, whose use times sync writes
        asyncio.run(drive(proxy.url, 100, 16, hot, seed=6, hot_only=True))
        time.sleep(1.5)
        again = Tally()
        asyncio.run(drive(proxy.url, 100, 16, again, seed=5, serial_start=2000))
        health = get_json(proxy.url + "/health")
        assert proxy.process is not None and proxy.process.poll() is None, "the proxy died"
        log = proxy.log_text()
    finally:
        undo()
        proxy.close()
    print(
        f"\ncache-broken ({breakage.__name__}): "
        f"statuses={after.statuses}+{hot.statuses}+{again.statuses} "
        f"hits={after.hits + hot.hits + again.hits} "
        f"misses={after.misses + hot.misses + again.misses} "
        f"writable={health['cache']['writable']} log_events={log_events(log)}"
    )
    for tally in (after, hot, again):
        assert tally.bad == [], tally.bad[:5]
        assert set(tally.statuses) == {200}, tally.samples
        assert tally.ok + tally.disconnects == tally.requests
    assert health["status"] == "ok" and health["cache"]["writable"] is False
    assert errors_logged(log_events(log)) == {}, log[-3000:]


# --- a flight cancelled by its last client is not joined by the next one ---------------------
async def test_cancelled_flight_is_not_joined(tmp_path: Path) -> None:
    """Found by the load test: a client hanging up on a miss cancelled the upstream call, and a
    client with the same request arriving before that task had wound down joined it and got
    502 upstream_dropped. The flight must leave the coalescer's table the moment it is cancelled."""

    arrived = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # take the request, never answer
        arrived.set()
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cache = CacheStore(tmp_path / "cache", 100, 10**6, 10**6)
    client: Transport = UpstreamClient()
    coalescer = Coalescer(client, cache, ProxyMetrics(lambda: Snapshot(0, 0, None, False)))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    decision = decide("chat/completions", body, None, "all")
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        call = UpstreamCall("chat/completions", url, b"{}", {})
        flight = coalescer.start(call, decision, share=True)
        assert coalescer.get(decision.key) is flight
        coalescer.join(flight)
        await asyncio.wait_for(arrived.wait(), 60)  # the request is out, the answer pending
        coalescer.leave(flight)  # the only client hung up
        assert decision.key not in coalescer, "a cancelled flight is still open to joiners"
        await asyncio.wait([flight.task], timeout=60)
        assert flight.task.cancelled(), "the flight's task was not cancelled within 60 s"
        assert flight.state is FlightState.FAILED and len(coalescer) == 0
    finally:
        await client.close()
        server.close()
