"""The proxy under load and faults: a load driver, a fault schedule and the checks.

`run_load` sends `total` requests through the proxy at `conns` concurrent connections
(aiohttp, one connection per worker): repeated bodies (cache hits), fresh bodies
(misses), `stream: true` requests, and clients that hang up after the first SSE chunk.
Every answer is judged as it arrives (`Tally.judge`): a non-2xx body must be an OpenAI
error object, a 200 must be a whole answer (JSON with choices, or a stream ending in
`[DONE]` whose error events, if any, are OpenAI-shaped), and a 500 is counted as the
proxy's own unless it carries the simulated upstream's own error (the proxy maps upstream
5xx to 502/503/504, so in practice every 500 is the proxy's).

`FaultSchedule` runs beside the driver against a `RestartableSim` (the project's simulator
on a fixed port with a fixed seed, so a restarted simulator re-creates the same pod id at
the same URL and the proxy's state file stays valid): probabilistic upstream 500s, drops
and stalls, and at set points of the run a vLLM death (kill-vllm, then stop + resume) or
a SIGKILL of the whole simulator process and a restart on the same port.

`audit_cache` reads the cache directory with the project's own reader (`CacheDB`,
`cache.entry.decode`) and returns every problem found; `proc_fds` / `proc_rss_mib` read
/proc for the fd and RSS figures.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from simkit import start_pod

from podmgr.proxy.cache.db import CacheDB
from podmgr.proxy.cache.entry import decode
from podmgr.sim.process import SimProcess

MODEL = "sim-model"
MAX_TOKENS = 12
SIM_ERROR_MESSAGE = "Simulated upstream error"  # podmgr/sim/edge.py's upstream_error body
REQUEST_TIMEOUT = 30.0
HOT_BODIES = 16
BACKOFF_SECONDS = 0.2


# --- the simulator, restartable on its port ------------------------------------------------
class RestartableSim:
    """`podmgr sim` on a fixed port and seed with one serving pod that needs `vllm_key`."""

    def __init__(self, port: int, vllm_key: str, token_delay: float, seed: int = 7) -> None:
        self.port = port
        self.vllm_key = vllm_key
        self.token_delay = token_delay
        self.seed = seed
        self.sim: SimProcess | None = None
        self.pod_id = ""
        self.pod_url = ""
        self.restarts = 0
        self.vllm_deaths = 0

    def start(self) -> RestartableSim:
        sim = SimProcess(
            pull_seconds=0.05,
            load_seconds=0.05,
            token_delay=self.token_delay,
            # 3 s, not 1 s: an ordinary answer delayed by a loaded machine must not meet it
            # (the broken-cache test wants only 200s); the long stall below still passes it.
            edge_timeout_seconds=3.0,
            extra_args=["--port", str(self.port), "--seed", str(self.seed)],
        )
        sim.start()
        self.sim = sim
        pod = start_pod(sim, api_key=self.vllm_key, model=MODEL)
        if self.pod_id and pod.pod_id != self.pod_id:
            raise RuntimeError(f"restarted simulator made pod {pod.pod_id}, not {self.pod_id}")
        self.pod_id, self.pod_url = pod.pod_id, pod.url
        return self

    def kill_and_restart(self, down_seconds: float) -> None:
        """SIGKILL the simulator (connections reset mid-answer), wait, start it again."""
        sim = self.sim
        assert sim is not None and sim.pid is not None
        os.kill(sim.pid, signal.SIGKILL)
        sim.stop()
        time.sleep(down_seconds)
        self.start()
        self.restarts += 1

    def vllm_death(self, dead_seconds: float) -> None:
        """The pod's vLLM dies (edge 502s), then the pod is stopped and resumed (fresh vLLM)."""
        sim = self.sim
        assert sim is not None
        sim.kill_vllm(self.pod_id)
        time.sleep(dead_seconds)
        sim.graphql(
            "mutation S($input: PodStopInput!) { podStop(input: $input) { id } }",
            {"input": {"podId": self.pod_id}},
        )
        sim.graphql(
            "mutation R($input: PodResumeInput!) { podResume(input: $input) { id } }",
            {"input": {"podId": self.pod_id, "gpuCount": 1}},
        )
        sim.wait_serving(self.pod_id)
        self.vllm_deaths += 1

    def fired(self) -> int:
        """Upstream faults fired since the simulator last started."""
        return sum(int(f["fired"]) for f in self.sim.faults()) if self.sim else 0

    def stop(self) -> None:
        if self.sim is not None:
            self.sim.stop()
            self.sim = None


# --- the fault schedule ----------------------------------------------------------------------
PROBABILISTIC_FAULTS: list[dict[str, Any]] = [
    {"fault": "upstream_error", "status": 500, "probability": 0.04},
    {"fault": "upstream_error", "status": 503, "probability": 0.01},
    {"fault": "upstream_drop", "probability": 0.04},
    {"fault": "upstream_stall", "seconds": 0.3, "probability": 0.02},
    {"fault": "upstream_stall", "seconds": 4.0, "probability": 0.005},  # past the 3 s edge: 524
]


class FaultSchedule:
    """Faults in force during the run, plus restarts at fractions of the run's progress."""

    def __init__(self, sim: RestartableSim, total: int, done: Callable[[], int]) -> None:
        self.sim = sim
        self.total = total
        self.done = done
        self.fired = 0  # faults fired by simulators already killed
        # Alternate a vLLM death and a simulator SIGKILL + restart; at least one of each.
        events = max(2, total // 2500)
        self.points = [(index + 1) / (events + 1) for index in range(events)]

    def arm(self) -> None:
        assert self.sim.sim is not None
        for fault in PROBABILISTIC_FAULTS:
            params = {k: v for k, v in fault.items() if k not in ("fault", "probability")}
            self.sim.sim.set_fault(fault["fault"], probability=fault["probability"], **params)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self.arm)
        for index, point in enumerate(self.points):
            while self.done() < point * self.total and not stop.is_set():
                await asyncio.sleep(0.05)
            if stop.is_set():
                return
            if index % 2 == 0:
                await asyncio.to_thread(self.sim.vllm_death, 0.3)
            else:
                self.fired += await asyncio.to_thread(self.sim.fired)
                await asyncio.to_thread(self.sim.kill_and_restart, 0.3)
                await asyncio.to_thread(self.arm)

    def total_fired(self) -> int:
        return self.fired + self.sim.fired()


# --- judging answers -------------------------------------------------------------------------
def openai_error_shaped(data: Any) -> bool:
    error = data.get("error") if isinstance(data, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and isinstance(error.get("type"), str)
    )


def sse_events(body: bytes) -> list[bytes]:
    return [line[5:].strip() for line in body.split(b"\n") if line.startswith(b"data:")]


@dataclass
class Tally:
    requests: int = 0
    hits: int = 0
    misses: int = 0
    streams: int = 0
    disconnects: int = 0
    ok: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    stream_errors: int = 0  # 200 streams that ended in an (OpenAI-shaped) error event
    proxy_500: int = 0
    upstream_500: int = 0
    internal: int = 0  # the proxy's "proxy_error" answer: an unexpected exception inside it
    client_errors: int = 0  # the driver could not talk to the proxy at all
    bad: list[str] = field(default_factory=list)
    contents: dict[str, str] = field(default_factory=dict)  # cache key -> whole answer text
    samples: dict[int, str] = field(default_factory=dict)  # status -> the first body seen

    @property
    def bad_errors(self) -> int:
        return len(self.bad)

    def note_bad(self, what: str) -> None:
        if len(self.bad) < 1000:
            self.bad.append(what[:300])

    def judge(self, status: int, headers: Any, body: bytes, stream: bool) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        cache = headers.get("x-cache", "")
        self.hits += cache == "HIT"
        self.misses += cache == "MISS"
        if status == 200:
            self._judge_ok(headers, body, stream)
            return
        self.samples.setdefault(status, body[:200].decode(errors="replace"))
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.note_bad(f"{status} not JSON: {body[:120]!r}")
            return
        if not openai_error_shaped(data):
            self.note_bad(f"{status} not an OpenAI error: {body[:120]!r}")
            return
        if data["error"].get("code") == "proxy_error":
            self.internal += 1
        if status == 500:
            if data["error"]["message"] == SIM_ERROR_MESSAGE:
                self.upstream_500 += 1
            else:
                self.proxy_500 += 1

    def _judge_ok(self, headers: Any, body: bytes, stream: bool) -> None:
        key = headers.get("x-cache-key", "")
        if not stream:
            try:
                data = orjson.loads(body)
                text = data["choices"][0]["message"]["content"]
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                self.note_bad(f"200 JSON without an answer: {body[:120]!r}")
                return
            self._remember(key, text)
            self.ok += 1
            return
        events = sse_events(body)
        if not events or events[-1] != b"[DONE]":
            self.note_bad(f"200 stream without [DONE]: {body[-120:]!r}")
            return
        pieces: list[str] = []
        errored = False
        for event in events[:-1]:
            try:
                data = orjson.loads(event)
            except orjson.JSONDecodeError:
                self.note_bad(f"stream event not JSON: {event[:120]!r}")
                return
            if "error" in data:
                errored = True
                if not openai_error_shaped(data):
                    self.note_bad(f"stream error event not OpenAI-shaped: {event[:120]!r}")
                elif data["error"].get("code") == "proxy_error":
                    self.internal += 1
                continue
            for choice in data.get("choices") or []:
                pieces.append((choice.get("delta") or {}).get("content") or "")
        if errored:
            self.stream_errors += 1
            return
        self._remember(key, "".join(pieces))
        self.ok += 1

    def _remember(self, key: str, text: str) -> None:
        if not key:
            return
        seen = self.contents.setdefault(key, text)
        if seen != text:
            self.note_bad(f"two different whole answers for key {key[:16]}")


# --- the load driver -------------------------------------------------------------------------
@dataclass(frozen=True)
class Shot:
    """One request of the mix."""

    body: dict[str, Any]
    stream: bool
    hang_up: bool


def make_shot(rng: random.Random, serial: int, hot_only: bool = False) -> Shot:
    """~45% repeated bodies, ~55% fresh; ~40% streams; ~10% hang up after the first chunk."""
    if hot_only or rng.random() < 0.45:
        content = f"hot question {rng.randrange(HOT_BODIES)}"
    else:
        content = f"fresh question {serial} {rng.random():.6f}"
    roll = rng.random()
    hang_up = roll < 0.10
    stream = hang_up or roll < 0.40
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        body["stream"] = True
    return Shot(body, stream, hang_up)


async def one_request(session: aiohttp.ClientSession, url: str, shot: Shot, tally: Tally) -> int:
    """Send one shot and judge its answer; the status (0 when there was none)."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    try:
        async with session.post(
            url, data=orjson.dumps(shot.body), timeout=timeout,
            headers={"content-type": "application/json"},
        ) as response:  # fmt: skip
            if shot.hang_up and response.status == 200:
                await response.content.readany()
                response.close()  # drops the connection: the proxy sees a disconnect
                tally.disconnects += 1
                tally.statuses[200] = tally.statuses.get(200, 0) + 1
                return 200
            body = await response.read()
            tally.judge(response.status, response.headers, body, shot.stream)
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        tally.client_errors += 1
        tally.note_bad(f"client error: {type(error).__name__}: {error}")
        return 0
    finally:
        tally.requests += 1
        tally.streams += shot.stream


async def drive(
    proxy_url: str,
    total: int,
    conns: int,
    tally: Tally,
    seed: int,
    serial_start: int = 0,
    hot_only: bool = False,
    backoff: float = BACKOFF_SECONDS,
) -> None:
    """Send `total` requests over `conns` workers, each with its own connection pool slot.

    A worker whose request failed with 502/503/504 waits `backoff` before its next one, as
    an SDK client retrying would: during an outage (the simulator restarting takes ~1 s)
    64 workers would otherwise spend thousands of requests on instant 502s.
    """
    url = proxy_url + "/v1/chat/completions"
    rng = random.Random(seed)
    shots = [make_shot(rng, serial_start + index, hot_only) for index in range(total)]
    queue: asyncio.Queue[Shot] = asyncio.Queue()
    for shot in shots:
        queue.put_nowait(shot)
    connector = aiohttp.TCPConnector(limit=conns, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                status = await one_request(session, url, queue.get_nowait(), tally)
                if status in (502, 503, 504):
                    await asyncio.sleep(backoff)

        await asyncio.gather(*(worker() for _ in range(conns)))


# --- the cache and the process afterwards ----------------------------------------------------
@dataclass
class CacheAudit:
    entries: int
    bytes: int
    files: int
    problems: list[str]


def audit_cache(root: Path, contents: dict[str, str]) -> CacheAudit:
    """Every indexed entry must decode to a whole 200 answer (and match what clients got)."""
    db = CacheDB(root)
    problems: list[str] = []
    try:
        rows = db.rows()
        totals = db.totals()
        for row in rows:
            problems += _entry_problems(db, row.key, contents)
    finally:
        db.close()
    files = [p for p in (root / "entries").rglob("*") if p.is_file()]
    temps = [p.name for p in files if p.name.startswith(".tmp-")]
    if temps:
        problems.append(f"temporary files left: {temps[:3]}")
    indexed = {row.key for row in rows}
    strays = [p.name for p in files if p.name not in indexed and not p.name.startswith(".tmp-")]
    if strays:
        problems.append(f"{len(strays)} entry files not in the index, e.g. {strays[0][:16]}")
    if totals.entries != len(rows) or totals.bytes != sum(row.size for row in rows):
        problems.append(f"index totals {totals} disagree with its rows")
    return CacheAudit(len(rows), sum(row.size for row in rows), len(files), problems)


def _entry_problems(db: CacheDB, key: str, contents: dict[str, str]) -> list[str]:
    data = db.read(key)
    answer = decode(data) if data is not None else None
    if answer is None:
        return [f"entry {key[:16]} missing or damaged"]
    try:
        body = orjson.loads(answer.json)
        choices = body["choices"]
        text = choices[0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return [f"entry {key[:16]} is not a completion: {answer.json[:120]!r}"]
    problems = []
    if "error" in body:
        problems.append(f"entry {key[:16]} is an error")
    if any(choice.get("finish_reason") is None for choice in choices):
        problems.append(f"entry {key[:16]} has an unfinished choice (a cut answer)")
    if answer.sse is not None:
        events = sse_events(answer.sse)
        if not events or events[-1] != b"[DONE]":
            problems.append(f"entry {key[:16]} stream does not end with [DONE]")
        if any(b'"error"' in event for event in events):
            problems.append(f"entry {key[:16]} stream holds an error event")
    if key in contents and contents[key] != text:
        problems.append(f"entry {key[:16]} differs from the whole answer clients got")
    return problems


def log_events(text: str) -> dict[str, int]:
    """The proxy's JSON log lines counted by "level:event" (other lines as "raw")."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        try:
            record = orjson.loads(line)
            name = f"{record.get('level')}:{record.get('event')}"
        except (orjson.JSONDecodeError, AttributeError):
            name = "raw"
        counts[name] = counts.get(name, 0) + 1
    return counts


def errors_logged(counts: dict[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if not name.startswith(("info:", "warning:"))}


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS line")
