"""The proxy's cache: an in-memory LRU index over `CacheDB`, with hot bodies kept in memory.

A hit is a dict lookup plus serving bytes: the index (key -> size, expiry, in recency order)
lives in memory, and the most recently used bodies up to `cache_memory_bytes` too. Disk
work never runs on the event loop: index writes go through one dedicated thread (SQLite
connections are single-threaded), file reads through a small pool.

Other processes sharing the directory are noticed through SQLite's `data_version` on each
`sync()` (about once a second): the index is then reloaded, so their entries become hits
and their evictions stop being served from here.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from podmgr.logs import get_logger
from podmgr.proxy.cache.db import CacheDB, IndexRow
from podmgr.proxy.cache.entry import CachedAnswer, decode, encode

__all__ = ["CacheStore"]

log = get_logger("proxy.cache")
_T = TypeVar("_T")


@dataclass(slots=True)
class _Indexed:
    size: int
    expires_at: float | None


class CacheStore:
    """Bounded LRU cache of complete answers, shared on disk, indexed in memory."""

    def __init__(
        self, root: Path, max_entries: int, max_bytes: int, memory_bytes: int = 64 << 20
    ) -> None:
        self.root = root
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.memory_bytes = memory_bytes
        self.evictions = 0
        self._index: OrderedDict[str, _Indexed] = OrderedDict()
        self._bytes = 0
        self._hot: OrderedDict[str, CachedAnswer] = OrderedDict()
        self._hot_bytes = 0
        self._touches: dict[str, float] = {}
        self._db: CacheDB | None = None
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="cache-db")
        self._readers = ThreadPoolExecutor(4, thread_name_prefix="cache-read")
        self._version = 0
        self.writable = False

    # --- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        try:
            self._db = await self._in_db(CacheDB, self.root)
            rows = await self._in_db(self._db.rows)
            self._version = await self._in_db(self._db.data_version)
            self.writable = await self._in_db(self._db.writable)
        except (OSError, sqlite3.Error) as error:
            # The proxy still forwards without a cache; /health shows writable: false.
            log.warning("cache_unavailable", path=str(self.root), error=str(error))
            self._db = None
            return
        self._load(rows)

    async def close(self) -> None:
        if self._db is not None:
            await self.sync()
            await self._in_db(self._db.close)
            self._db = None
        self._db_thread.shutdown(wait=False)
        self._readers.shutdown(wait=False)

    async def _in_db(self, func: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, func, *args)

    def _load(self, rows: list[IndexRow]) -> None:
        self._index = OrderedDict((row.key, _Indexed(row.size, row.expires_at)) for row in rows)
        self._bytes = sum(item.size for item in self._index.values())
        for key in [key for key in self._hot if key not in self._index]:
            self._drop_hot(key)

    # --- reads ---------------------------------------------------------------------------
    @property
    def entries(self) -> int:
        return len(self._index)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get_hot(self, key: str) -> CachedAnswer | None:
        """The answer if it is indexed, fresh and in memory (no I/O); counts as a use."""
        answer = self._hot.get(key)
        if answer is None:
            return None
        if answer.expires_at is not None and answer.expires_at <= time.time():
            return None
        self._hot.move_to_end(key)
        self._use(key)
        return answer

    def __contains__(self, key: str) -> bool:
        item = self._index.get(key)
        return item is not None and (item.expires_at is None or item.expires_at > time.time())

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer for `key`, from memory or disk; damaged or missing files are misses."""
        answer = self.get_hot(key)
        if answer is not None or key not in self or self._db is None:
            return answer
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self._readers, self._db.read, key)
        answer = decode(data) if data is not None else None
        if answer is None or key not in self._index:
            if key in self._index:
                await self.forget(key)
            return None
        self._use(key)
        self._remember_hot(key, answer)
        return answer

    def debug_view(self, recent: int = 20) -> dict[str, object]:
        """Internals for /debug/cache: sizes, the hot set, the most recently used keys."""
        return {
            "entries": self.entries,
            "bytes": self.bytes,
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
            "hot_entries": len(self._hot),
            "hot_bytes": self._hot_bytes,
            "memory_bytes": self.memory_bytes,
            "pending_touches": len(self._touches),
            "evictions": self.evictions,
            "most_recent": list(reversed(list(self._index)[-recent:])),
        }

    def _use(self, key: str) -> None:
        if key in self._index:
            self._index.move_to_end(key)
            self._touches[key] = time.time()

    # --- writes --------------------------------------------------------------------------
    async def put(self, key: str, answer: CachedAnswer) -> list[str]:
        """Store a complete answer; returns the keys evicted to make room."""
        if self._db is None or self.max_entries <= 0:
            return []
        data = encode(answer)
        if len(data) > self.max_bytes:
            return []
        touches, self._touches = self._touches, {}
        try:
            evicted: list[str] = await self._in_db(
                self._db.put,
                key,
                data,
                answer.expires_at,
                time.time(),
                (self.max_entries, self.max_bytes),
                touches,
            )
        except Exception as error:  # OSError, sqlite3.Error: a cache never fails a request
            self.writable = False
            log.warning("cache_store_failed", error=str(error)[:200])
            return []
        self.writable = True
        self._set_index(key, _Indexed(len(data), answer.expires_at))
        self._remember_hot(key, answer)
        for old in evicted:
            self._remove(old)
        self.evictions += len(evicted)
        return evicted

    async def forget(self, key: str) -> None:
        """Drop a damaged or missing entry; a failure here only leaves a row to retry."""
        self._remove(key)
        if self._db is not None:
            try:
                await self._in_db(self._db.forget, key)
            except (OSError, sqlite3.Error) as error:
                log.warning("cache_forget_failed", error=str(error)[:200])

    async def sync(self) -> None:
        """Write pending hit times, and reload the index if another process changed it."""
        if self._db is None:
            return
        touches, self._touches = self._touches, {}
        if touches:
            try:
                await self._in_db(self._db.touch, touches)
            except (OSError, sqlite3.Error) as error:
                # A read-only or vanished directory: hit times are lost, serving goes on.
                log.warning("cache_touch_failed", error=str(error)[:200])
        version = await self._in_db(self._db.data_version)
        if version != self._version:
            self._version = version
            self._load(await self._in_db(self._db.rows))
        self.writable = await self._in_db(self._db.writable)

    def _set_index(self, key: str, item: _Indexed) -> None:
        old = self._index.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._index[key] = item
        self._bytes += item.size

    def _remove(self, key: str) -> None:
        old = self._index.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._drop_hot(key)
        self._touches.pop(key, None)

    def _remember_hot(self, key: str, answer: CachedAnswer) -> None:
        if answer.size > self.memory_bytes:
            return
        self._drop_hot(key)
        self._hot[key] = answer
        self._hot_bytes += answer.size
        while self._hot_bytes > self.memory_bytes and self._hot:
            _, old = self._hot.popitem(last=False)
            self._hot_bytes -= old.size

    def _drop_hot(self, key: str) -> None:
        old = self._hot.pop(key, None)
        if old is not None:
            self._hot_bytes -= old.size
