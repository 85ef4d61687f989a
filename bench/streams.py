"""Stream relay timing: time to first byte, and how late each chunk arrives after the
upstream sent it, directly vs through the proxy.

The upstream sends 20 SSE chunks `bench_delay` apart, each stamped with its send time.
The client notes, per chunk, arrival minus stamp (same machine, same clock), directly and
through the proxy, alternating requests; the difference of the medians per chunk index is
what the proxy adds to each chunk. Time to first byte is compared the same way.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass

import aiohttp

__all__ = ["StreamTiming", "measure_streams"]


@dataclass(frozen=True)
class StreamTiming:
    added_ttfb_ms: float
    added_chunk_p50_ms: float
    added_chunk_max_ms: float
    chunks: int


async def _arrivals(session: aiohttp.ClientSession, url: str, delay: float) -> list[float]:
    """[time to first byte, then each chunk's arrival minus its `sent_at`], in seconds."""
    body = {
        "model": "bench-model",
        "messages": [{"role": "user", "content": uuid.uuid4().hex}],
        "stream": True,
        "bench_delay": delay,
    }
    started = time.perf_counter()
    times: list[float] = []
    buffer = b""
    async with session.post(url + "/v1/chat/completions", json=body) as response:
        async for piece in response.content.iter_any():
            now = time.time()
            if not times:
                times.append(time.perf_counter() - started)
            buffer += piece
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                if event.startswith(b"data: {"):
                    times.append(now - json.loads(event[6:])["sent_at"])
    return times


async def _median_arrivals(urls: list[str], runs: int, delay: float) -> list[list[float]]:
    """Per URL, the median arrival time of each chunk; requests alternate between URLs so
    that machine noise falls on both alike."""
    samples: list[list[list[float]]] = [[] for _ in urls]
    async with aiohttp.ClientSession() as session:
        for url in urls:
            await _arrivals(session, url, delay)  # warm the connections
        for _ in range(runs):
            for index, url in enumerate(urls):
                samples[index].append(await _arrivals(session, url, delay))
    result = []
    for runs_of_url in samples:
        count = min(len(s) for s in runs_of_url)
        result.append([statistics.median(s[i] for s in runs_of_url) for i in range(count)])
    return result


def measure_streams(
    direct_url: str, proxy_url: str, runs: int = 15, delay: float = 0.01
) -> StreamTiming:
    direct, proxied = asyncio.run(_median_arrivals([direct_url, proxy_url], runs, delay))
    count = min(len(direct), len(proxied))
    added = [(proxied[i] - direct[i]) * 1000 for i in range(count)]
    return StreamTiming(
        added_ttfb_ms=added[0],
        added_chunk_p50_ms=statistics.median(added[1:]),
        added_chunk_max_ms=max(added[1:]),
        chunks=count - 1,
    )
