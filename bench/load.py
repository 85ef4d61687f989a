"""Load generation: `wrk` when installed (far better than a Python client on 2 cores), else
an aiohttp client (its figures are then lower for every row, and the table says so).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "generator_name", "run_load"]

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class LoadResult:
    rps: float
    p50_ms: float
    non_2xx: int


def generator_name() -> str:
    return "wrk" if shutil.which("wrk") else "aiohttp client (wrk missing: apt-get install -y wrk)"


def _lua(bodies: list[str], headers: dict[str, str]) -> str:
    quoted = ", ".join("[==[" + body + "]==]" for body in bodies)
    lines = [f"local bodies = {{{quoted}}}", "local i = 0", 'wrk.method = "POST"']
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    lines += [
        "request = function()",
        "  i = i % #bodies + 1",
        "  return wrk.format(nil, nil, nil, bodies[i])",
        "end",
    ]
    return "\n".join(lines) + "\n"


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"cannot read wrk time {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _wrk(url: str, connections: int, seconds: float, bodies: list[str] | None) -> LoadResult:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    with tempfile.TemporaryDirectory() as directory:
        if bodies:
            script = Path(directory) / "post.lua"
            script.write_text(_lua(bodies, {"Content-Type": "application/json"}))
            args += ["-s", str(script)]
        output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _seconds(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return LoadResult(rps, p50 * 1000, int(bad.group(1)) if bad else 0)


async def _aiohttp(
    url: str, connections: int, seconds: float, bodies: list[str] | None
) -> LoadResult:
    import aiohttp

    latencies: list[float] = []
    bad = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession, offset: int) -> None:
        nonlocal bad
        index = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if bodies:
                body = bodies[index % len(bodies)]
                index += 1
                response = await session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                )
            else:
                response = await session.get(url)
            await response.read()
            bad += response.status >= 400
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, i) for i in range(connections)))
    latencies.sort()
    return LoadResult(len(latencies) / seconds, latencies[len(latencies) // 2] * 1000, bad)


def run_load(
    url: str, connections: int, seconds: float, bodies: list[str] | None = None
) -> LoadResult:
    """Requests per second and p50 latency of `url` (POSTing `bodies` in turn, else GET)."""
    if shutil.which("wrk"):
        return _wrk(url, connections, seconds, bodies)
    return asyncio.run(_aiohttp(url, connections, seconds, bodies))
