"""The cache directory on disk: one file per answer plus a shared SQLite index.

The index (`index.sqlite3`, WAL mode) records each entry's size, last use and expiry, and
keeps running totals in a trigger-maintained row, so the LRU bounds (`max_cache_size`
entries, `max_cache_bytes` bytes) are enforced exactly, in one transaction, even when
several proxy processes share the directory. Everything here blocks: the proxy calls it
from one dedicated thread (`CacheStore`), the `podmgr cache` command calls it directly.

Why files for the bodies: a damaged or deleted file only costs its own entry (a miss),
and `rm -r` on the directory is always a valid way to empty the cache.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CacheDB", "CacheTotals", "IndexRow"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, size INTEGER NOT NULL, last_used REAL NOT NULL, expires_at REAL
);
CREATE INDEX IF NOT EXISTS entries_lru ON entries (last_used);
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0), entries INTEGER NOT NULL, bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS entries_added AFTER INSERT ON entries BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_removed AFTER DELETE ON entries BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 0;
END;
"""
_EVICT_BATCH = 64


@dataclass(frozen=True, slots=True)
class IndexRow:
    key: str
    size: int
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class CacheTotals:
    entries: int
    bytes: int


class CacheDB:
    """Blocking access to one cache directory; not thread-safe (use from one thread)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.entries_dir = self.root / "entries"
        self.entries_dir.mkdir(parents=True, exist_ok=True)
        self.index_path = self.root / "index.sqlite3"
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError:
            # A damaged index only loses the cache: set it aside and start empty.
            aside = self.index_path.with_name(f"index.corrupt-{int(time.time())}.sqlite3")
            with contextlib.suppress(OSError):
                os.replace(self.index_path, aside)
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.index_path, timeout=30, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(_SCHEMA)
        return conn

    def close(self) -> None:
        self._conn.close()

    def path_for(self, key: str) -> Path:
        return self.entries_dir / key[:2] / key

    # --- reads ---------------------------------------------------------------------------
    def rows(self) -> list[IndexRow]:
        """Every entry, least recently used first."""
        cursor = self._conn.execute(
            "SELECT key, size, expires_at FROM entries ORDER BY last_used, key"
        )
        return [IndexRow(key, size, expires) for key, size, expires in cursor]

    def totals(self) -> CacheTotals:
        entries, size = self._conn.execute(
            "SELECT entries, bytes FROM totals WHERE id = 0"
        ).fetchone()
        return CacheTotals(int(entries), int(size))

    def data_version(self) -> int:
        """Changes when another connection (another process) commits."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def read(self, key: str) -> bytes | None:
        try:
            return self.path_for(key).read_bytes()
        except OSError:
            return None

    def writable(self) -> bool:
        return os.access(self.entries_dir, os.W_OK) and os.access(self.root, os.W_OK)

    # --- writes --------------------------------------------------------------------------
    def put(
        self,
        key: str,
        data: bytes,
        expires_at: float | None,
        now: float,
        limits: tuple[int, int],
        touches: Mapping[str, float] | None = None,
    ) -> list[str]:
        """Store one entry and evict least recently used ones past `limits`; the evicted keys.

        `touches` (key -> time of last hit) are applied first, so eviction order is exact
        for this process's hits.
        """
        max_entries, max_bytes = limits
        self._write_file(key, data)
        evicted: list[str] = []
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if touches:
                self._apply_touches(touches.items())
            conn.execute("DELETE FROM entries WHERE key = ?", (key,))
            conn.execute(
                "INSERT INTO entries (key, size, last_used, expires_at) VALUES (?, ?, ?, ?)",
                (key, len(data), now, expires_at),
            )
            evicted = self._evict(max_entries, max_bytes, keep=key)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._unlink(key)
            raise
        for old in evicted:
            self._unlink(old)
        return evicted

    def _evict(self, max_entries: int, max_bytes: int, keep: str) -> list[str]:
        totals = self.totals()
        entries, size = totals.entries, totals.bytes
        evicted: list[str] = []
        while entries > max_entries or size > max_bytes:
            batch = self._conn.execute(
                "SELECT key, size FROM entries WHERE key != ? ORDER BY last_used, key LIMIT ?",
                (keep, _EVICT_BATCH),
            ).fetchall()
            if not batch:
                break
            for old, old_size in batch:
                if entries <= max_entries and size <= max_bytes:
                    break
                self._conn.execute("DELETE FROM entries WHERE key = ?", (old,))
                evicted.append(old)
                entries -= 1
                size -= old_size
        return evicted

    def touch(self, touches: Mapping[str, float]) -> None:
        """Record hits (key -> time) so that eviction follows real use."""
        if touches:
            with self._conn:
                self._apply_touches(touches.items())

    def _apply_touches(self, items: Iterable[tuple[str, float]]) -> None:
        self._conn.executemany(
            "UPDATE entries SET last_used = ? WHERE key = ? AND last_used < ?",
            [(when, key, when) for key, when in items],
        )

    def forget(self, key: str) -> None:
        """Drop one entry (damaged or expired)."""
        with self._conn:
            self._conn.execute("DELETE FROM entries WHERE key = ?", (key,))
        self._unlink(key)

    def clear(self) -> CacheTotals:
        """Remove every entry; what was removed."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            before = self.totals()
            keys = [row[0] for row in self._conn.execute("SELECT key FROM entries")]
            self._conn.execute("DELETE FROM entries")
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        for key in keys:
            self._unlink(key)
        return before

    def _write_file(self, key: str, data: bytes) -> None:
        target = self.path_for(key)
        target.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _unlink(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self.path_for(key).unlink()
