"""Fill a cache directory with N entries quickly (bulk rows, plain file writes), for the
"hit latency with 100k entries" benchmark."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.apps import ANSWER
from podmgr.proxy.cache.db import CacheDB
from podmgr.proxy.cache.entry import CachedAnswer, encode
from podmgr.proxy.cache.key import cache_key

__all__ = ["bench_body", "fill_cache"]


def bench_body(index: int) -> dict[str, Any]:
    return {"model": "bench-model", "messages": [{"role": "user", "content": f"question {index}"}]}


def fill_cache(root: Path, count: int) -> None:
    data = encode(CachedAnswer(ANSWER))
    db = CacheDB(root)
    now = time.time()
    rows = []
    for index in range(count):
        key = cache_key("chat/completions", bench_body(index))
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
