"""Fill a cache directory with N entries quickly (bulk rows, plain file writes), for the
"hit latency with 100k entries" benchmark and the in-process profile.

The keys are the ones the proxy computes for `bench_body(i)` sent to an `upstream_url`
config: that URL is read as one upstream named "upstream" (config/upstreams.py), and a
key names who answers (`cache_scope`), so these entries are hits for such a proxy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.apps import ANSWER
from podmgr.proxy.cache.db import CacheDB
from podmgr.proxy.cache.entry import CachedAnswer, encode
from podmgr.proxy.cache.key import cache_key, cache_scope

__all__ = ["MODEL", "bench_body", "fill_cache"]

MODEL = "bench-model"


def bench_body(index: int) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": f"question {index}"}]}


def fill_cache(root: Path, count: int, upstream: str = "upstream") -> None:
    """`count` entries: the answers to `bench_body(0..count-1)` from `upstream`."""
    data = encode(CachedAnswer(ANSWER))
    scope = cache_scope(upstream, MODEL)
    db = CacheDB(root)
    now = time.time()
    rows = []
    for index in range(count):
        key = cache_key("chat/completions", bench_body(index), scope)
        path = db.path_for(key)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        rows.append((key, len(data), now + index * 1e-6, None))
    conn = db._conn
    with conn:
        conn.executemany(
            "INSERT INTO entries (key, size, last_used, expires_at) VALUES (?, ?, ?, ?)", rows
        )
    db.close()
