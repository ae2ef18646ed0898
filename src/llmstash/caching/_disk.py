"""Persistent cache storage on one SQLite file: ``Cache(type="disk", disk_cache_dir=...)``.

The database is in WAL mode, so readers never wait for a writer, and any number of threads and
processes may share it. Nothing is pickled: values are the cache's own bytes in a BLOB column.
Two threads per backend own one connection each and run every query, so SQLite never blocks an
event loop: a reader answers lookups, a writer runs stores, deletes, evictions and counters.
Each thread drains its queue in batches: concurrent lookups cost one thread wake-up, and
concurrent writes share one transaction (one commit). Answers go back to each caller's event
loop with one wake-up per batch and loop.

The size bound is shared by every process: running totals of entries and bytes are kept by
triggers in the database itself, and the writer evicts the least recently used entries (after
the expired ones) inside the transaction that went over the bound. Recency is kept cheaply: a
hit notes the key in memory, and the reader hands the writer those notes in batches (at most
one touch per entry per ``touch_interval`` seconds), never one write per hit.

A process killed in the middle of a write leaves a database that opens and serves: SQLite's
journal rolls back the unfinished transaction; with ``synchronous=NORMAL`` nothing committed is
lost to a crashed process (only, in the worst case, the last commits to a power failure).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import secrets
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from .. import _sync
from ..exceptions import CacheBackendError

__all__ = ["DEFAULT_DISK_MAX_BYTES", "DiskBackend", "default_cache_dir"]

logger = logging.getLogger("llmstash")

DEFAULT_DISK_MAX_BYTES: Final = 1024 * 1024 * 1024
"""Bytes of keys and values the disk cache keeps before evicting (1 GiB)."""
FILE_NAME: Final = "llmstash-cache-v1.sqlite3"
"""The database's file name in the cache directory (the schema version is part of it)."""
_SCHEMA_VERSION: Final = 1
_BUSY_TIMEOUT: Final = 5.0
"""Seconds SQLite itself waits for another connection's lock before answering SQLITE_BUSY."""
_BUSY_RETRY_FOR: Final = 30.0
"""Seconds a transaction is retried on SQLITE_BUSY beyond that, before its callers see an
error: writes are not lost under contention, however long another process holds the lock."""
_IN_CHUNK: Final = 500
"""Keys per ``IN (...)`` list (below SQLite's oldest limit of 999 parameters)."""
_EVICT_BATCH: Final = 256
_PURGE_EVERY: Final = 60.0
"""Seconds between the writer's sweeps of expired entries (besides evictions)."""
_TOUCH_FLUSH: Final = 1.0
"""Seconds the reader keeps its notes of hits before handing them to the writer."""
_TOUCH_BATCH: Final = 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    size INTEGER NOT NULL,
    expires_at REAL,
    accessed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_access ON entries (accessed_at);
CREATE INDEX IF NOT EXISTS entries_by_expiry ON entries (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    entries INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS entries_insert AFTER INSERT ON entries BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_delete AFTER DELETE ON entries BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_update AFTER UPDATE OF size ON entries BEGIN
    UPDATE totals SET bytes = bytes + NEW.size - OLD.size WHERE id = 0;
END;
CREATE TABLE IF NOT EXISTS counters (
    bucket TEXT NOT NULL,
    field TEXT NOT NULL,
    value REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (bucket, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""

_GET = "SELECT value, expires_at, accessed_at FROM entries WHERE key = ?"
_UPSERT = (
    "INSERT INTO entries (key, value, size, expires_at, accessed_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size, "
    "expires_at = excluded.expires_at, accessed_at = excluded.accessed_at"
)
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


def default_cache_dir() -> Path:
    """Where ``Cache(type="disk")`` keeps its database when no ``disk_cache_dir`` is given:
    ``$XDG_CACHE_HOME/llmstash``, else ``~/.cache/llmstash`` (on Windows,
    ``%LOCALAPPDATA%\\llmstash\\cache``; on macOS, ``~/Library/Caches/llmstash``)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "llmstash"
    if os.name == "nt":
        local = os.environ.get("LOCALAPPDATA")
        if local:
            return Path(local) / "llmstash" / "cache"
    elif sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "llmstash"
    return Path.home() / ".cache" / "llmstash"


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    text = str(exc)
    return "locked" in text or "busy" in text


def _prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """``(low, high)`` such that exactly the strings starting with ``prefix`` are ``>= low``
    and ``< high`` (``high`` is ``None`` when no string bounds them above)."""
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return prefix, None
    return prefix, stem[:-1] + chr(ord(stem[-1]) + 1)


# -- the threads ----------------------------------------------------------------------------------

_Job = tuple[
    Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any] | None", "asyncio.AbstractEventLoop"
]


_Outcome = tuple["asyncio.Future[Any]", "asyncio.AbstractEventLoop", Any, "BaseException | None"]


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, exc in outcomes:
        if future.done():
            continue  # its caller stopped waiting
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


def _deliver(outcomes: list[_Outcome]) -> None:
    """Hand results back, one wake-up per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for future, loop, result, exc in outcomes:
        by_loop.setdefault(loop, []).append((future, result, exc))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # that loop is closed: nobody waits any more
            pass


_STOP: Final = object()


class _Worker:
    """A thread owning one SQLite connection, running the jobs it is given in batches."""

    def __init__(self, name: str, backend: DiskBackend, *, writer: bool) -> None:
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.backend = backend
        self.writer = writer
        self.conn: sqlite3.Connection | None = None
        self.peer: _Worker | None = None
        """The reader's writer, which takes its notes of use."""
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def submit(self, job: Any) -> None:
        self.jobs.put(job)

    def _serve(self) -> None:
        backend = self.backend
        jobs = self.jobs
        while True:
            try:
                first = jobs.get(timeout=_TOUCH_FLUSH)
            except queue.Empty:
                if not self.writer:
                    backend._flush_touches(self.peer, force=True)
                continue
            batch = [first]
            try:
                while len(batch) < 4096:
                    batch.append(jobs.get_nowait())
            except queue.Empty:
                pass
            stop = any(job is _STOP for job in batch)
            work = [job for job in batch if job is not _STOP]
            if work:
                if self.writer:
                    self._run_writes(work)
                else:
                    self._run_reads(work)
            if stop:
                if not self.writer:
                    backend._flush_touches(self.peer, force=True)
                self._close()
                return

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            self.conn = self.backend._connect()
        return self.conn

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - nothing more to do
                pass

    def _fail_connection(self) -> None:
        """Drop the connection after an error that may have left it unusable."""
        self._close()

    def _read_one(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        return fn(self._connection(), *args)

    def _run_reads(self, work: list[_Job]) -> None:
        outcomes: list[_Outcome] = []
        for fn, args, future, loop in work:
            exc: BaseException | None = None
            try:
                result = _with_retries(self._read_one, fn, args)
            except Exception as error:
                result, exc = None, _wrap(error)
                if isinstance(error, sqlite3.DatabaseError):
                    self._fail_connection()
            if future is not None:
                outcomes.append((future, loop, result, exc))
        if outcomes:
            _deliver(outcomes)
        self.backend._flush_touches(self.peer, force=False)

    def _run_writes(self, work: list[_Job]) -> None:
        """Every job in one transaction; if one fails, each again in its own, so that one bad
        job fails alone."""
        outcomes: list[_Outcome]
        try:
            results = _with_retries(self._transaction, work)
            outcomes = [
                (future, loop, result, None)
                for (_, _, future, loop), result in zip(work, results, strict=True)
                if future is not None
            ]
        except Exception as error:
            if len(work) == 1:
                if isinstance(error, sqlite3.DatabaseError):
                    self._fail_connection()
                _, _, future, loop = work[0]
                outcomes = [] if future is None else [(future, loop, None, _wrap(error))]
            else:
                outcomes = []
                for job in work:
                    exc: BaseException | None = None
                    try:
                        (result,) = _with_retries(self._transaction, [job])
                    except Exception as single:
                        result, exc = None, _wrap(single)
                        if isinstance(single, sqlite3.DatabaseError):
                            self._fail_connection()
                    if job[2] is not None:
                        outcomes.append((job[2], job[3], result, exc))
        if outcomes:
            _deliver(outcomes)

    def _transaction(self, work: list[_Job]) -> list[Any]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = [fn(conn, *args) for fn, args, _, _ in work]
            self.backend._keep_bounds(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self._fail_connection()
            raise
        return results


def _with_retries(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn()``, retried with backoff while SQLite answers SQLITE_BUSY (another process holds
    a lock longer than the busy timeout), for at most :data:`_BUSY_RETRY_FOR` seconds."""
    deadline = time.monotonic() + _BUSY_RETRY_FOR
    delay = 0.001
    while True:
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _wrap(exc: Exception) -> Exception:
    if isinstance(exc, sqlite3.Error):
        return CacheBackendError(f"SQLite failed: {type(exc).__name__}: {exc}")
    return exc


# -- the backend ----------------------------------------------------------------------------------

_backends: weakref.WeakSet[DiskBackend] = weakref.WeakSet()


def _forget_after_fork() -> None:
    for backend in list(_backends):
        backend._forget()


def _close_at_exit() -> None:
    for backend in list(_backends):
        backend.close_sync(timeout=2.0)


_sync.on_fork(_forget_after_fork)
atexit.register(_close_at_exit)


class DiskBackend:
    """A :class:`~llmstash.caching.CacheBackend` on one SQLite database file, shared by the
    threads and processes that open the same ``directory``.

    ``max_bytes`` bounds the stored keys and values (counted as ``len(key) + len(value)``;
    SQLite's own overhead comes on top), ``max_size`` the number of entries (``None``: no
    bound); beyond them the least recently used entries are evicted, expired ones first. An
    entry larger than ``max_bytes`` on its own is not stored. Times are wall-clock seconds, so
    every process agrees on expiry; TTLs are kept as given (no rounding), and ``ttl <= 0``
    deletes. ``touch_interval`` is how stale an entry's recorded last use may get before a hit
    records it again (seconds; recency is exact to within it).

    Nothing happens on disk until first use: then the directory is created (mode 0700) if
    needed and the database opened. Works from any event loop and thread; a forked child
    opens its own connections on first use and never touches its parent's. :meth:`aclose`
    closes the connections; using the backend afterwards opens them again.

    Also keeps cross-process leases (:class:`~llmstash.caching.SupportsLease`), lists keys
    (:class:`~llmstash.caching.SupportsScan`) and keeps shared counters
    (:class:`~llmstash.caching.SupportsCounters`).
    """

    is_local: bool = False
    """Lookups cross a thread and may wait on the disk or on another process's lock, so the
    cache gives them a latency budget and a circuit breaker."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int = DEFAULT_DISK_MAX_BYTES,
        max_size: int | None = None,
        touch_interval: float = 1.0,
    ) -> None:
        if directory is not None and not isinstance(directory, (str, os.PathLike)):
            raise ValueError(f"disk_cache_dir must be a path, got {directory!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1
        ):
            raise ValueError(f"max_size must be a positive integer or None, got {max_size!r}")
        if isinstance(touch_interval, bool) or not isinstance(touch_interval, (int, float)):
            raise ValueError(f"touch_interval must be seconds, got {touch_interval!r}")
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        """The directory holding the database."""
        self.path = self.directory / FILE_NAME
        """The database file."""
        self.max_bytes = max_bytes
        self.max_size = max_size
        self.touch_interval = float(touch_interval)
        self._lock = threading.Lock()
        self._reader: _Worker | None = None
        self._writer: _Worker | None = None
        self._touches: dict[str, float] = {}
        self._touches_since = time.monotonic()
        self._last_purge = 0.0
        self._leases: dict[str, str] = {}
        self._known = {"entries": 0, "bytes": 0}
        self._hits = 0
        self._misses = 0
        self._expired = 0
        self._evictions = 0
        _backends.add(self)

    def __repr__(self) -> str:
        return f"DiskBackend({str(self.directory)!r}, max_bytes={self.max_bytes})"

    # -- plumbing ---------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """A new connection in WAL mode, the schema in place (called on a worker thread)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=_BUSY_TIMEOUT,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=64,
        )
        try:
            _with_retries(_prepare, conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _workers(self) -> tuple[_Worker, _Worker]:
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            with self._lock:
                if self._reader is None or self._writer is None:
                    name = f"llmstash-disk-{id(self):x}"
                    self._writer = _Worker(f"{name}-write", self, writer=True)
                    self._reader = _Worker(f"{name}-read", self, writer=False)
                    self._reader.peer = self._writer
                reader, writer = self._reader, self._writer
        return reader, writer

    def _forget(self) -> None:
        """In a forked child: the threads did not survive, and the connections are the
        parent's; keep them untouched and open new ones on first use."""
        for worker in (self._reader, self._writer):
            if worker is not None and worker.conn is not None:
                _sync.inherit(worker.conn)
        self._lock = threading.Lock()
        self._reader = self._writer = None
        self._touches = {}
        self._leases = {}

    def _call(self, worker: _Worker, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        worker.submit((fn, args, future, loop))
        return future

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._call(self._workers()[0], fn, *args)

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        # Shielded: a caller that stops waiting does not take the write back, which the
        # thread finishes anyway (its outcome is then only logged, by the cache above).
        future = self._call(self._workers()[1], fn, *args)
        future.add_done_callback(_retrieve)
        return await asyncio.shield(future)

    # -- lookups (reader thread) --------------------------------------------------------------

    def _get_one(self, conn: sqlite3.Connection, key: str) -> bytes | None:
        row = conn.execute(_GET, (key,)).fetchone()
        now = time.time()
        return self._found(key, row, now)

    def _found(self, key: str, row: Any, now: float) -> bytes | None:
        if row is None:
            self._misses += 1
            return None
        value, expires_at, accessed_at = row
        if expires_at is not None and expires_at <= now:
            self._expired += 1
            self._misses += 1
            return None
        self._hits += 1
        if now - accessed_at >= self.touch_interval:
            self._touches[key] = now
        return bytes(value)

    def _get_list(self, conn: sqlite3.Connection, keys: Sequence[str]) -> list[bytes | None]:
        if len(keys) == 1:
            return [self._get_one(conn, keys[0])]
        rows: dict[str, Any] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, *rest in conn.execute(
                f"SELECT key, value, expires_at, accessed_at FROM entries WHERE key IN ({marks})",
                chunk,
            ):
                rows[key] = rest
        now = time.time()
        return [self._found(key, rows.get(key), now) for key in keys]

    def _flush_touches(self, writer: _Worker | None, *, force: bool) -> None:
        """Hand the writer the keys hit since the last flush (reader thread)."""
        touches = self._touches
        if not touches:
            return
        if not force and (
            len(touches) < _TOUCH_BATCH and time.monotonic() - self._touches_since < _TOUCH_FLUSH
        ):
            return
        self._touches = {}
        self._touches_since = time.monotonic()
        if writer is not None:
            writer.submit((_touch, (list(touches.items()),), None, None))

    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None`` (also when it has expired)."""
        return await self._read(self._get_one, key)  # type: ignore[no-any-return]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values for ``keys``, in order, ``None`` where absent; one query."""
        if not keys:
            return []
        return await self._read(self._get_list, list(keys))  # type: ignore[no-any-return]

    async def lookup(self, keys: Sequence[str], budget: float) -> list[bytes | None]:
        """:meth:`get_many` that gives up after ``budget`` seconds (raising
        :class:`~llmstash.exceptions.CacheBackendError`), with one timer rather than a
        cancel scope."""
        if not keys:
            return []
        future = self._call(self._workers()[0], self._get_list, list(keys))
        loop = asyncio.get_running_loop()
        timer = loop.call_later(budget, _time_out, future, budget)
        try:
            return await future  # type: ignore[no-any-return]
        finally:
            timer.cancel()

    # -- writes (writer thread) ---------------------------------------------------------------

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds (``None``: no expiry; ``<= 0``: delete)."""
        await self.set_many({key: value}, ttl=ttl)

    async def set_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        """Store every item with the same ``ttl``, in one transaction (shared with whatever
        other writes are waiting)."""
        if not items:
            return
        rows = []
        for key, value in items.items():
            if not isinstance(key, str):
                raise TypeError(f"cache keys are strings, got {type(key).__name__}")
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"cache values are bytes, got {type(value).__name__}")
            rows.append((key, bytes(value)))
        await self._write(self._put, rows, ttl)

    def _put(
        self, conn: sqlite3.Connection, rows: list[tuple[str, bytes]], ttl: float | None
    ) -> None:
        if ttl is not None and ttl <= 0:
            _delete_keys(conn, [key for key, _ in rows], time.time())
            return
        now = time.time()
        expires_at = None if ttl is None else now + ttl
        keep = []
        too_big = []
        for key, value in rows:
            size = len(key) + len(value)
            if size > self.max_bytes:
                too_big.append(key)
            else:
                keep.append((key, value, size, expires_at, now))
        if too_big:
            _delete_keys(conn, too_big, now)
        if keep:
            conn.executemany(_UPSERT, keep)

    def _keep_bounds(self, conn: sqlite3.Connection) -> None:
        """Within the writer's transaction: sweep expired entries now and then, and evict
        least recently used entries while over a bound."""
        entries, size = conn.execute("SELECT entries, bytes FROM totals").fetchone()
        max_size = self.max_size
        now = time.time()
        over = size > self.max_bytes or (max_size is not None and entries > max_size)
        if over or now - self._last_purge >= _PURGE_EVERY:
            self._last_purge = now
            swept = conn.execute(
                "DELETE FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            ).rowcount
            if swept > 0:
                self._expired += swept
                entries, size = conn.execute("SELECT entries, bytes FROM totals").fetchone()
            conn.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
            conn.execute("DELETE FROM counters WHERE expires_at <= ?", (now,))
        while size > self.max_bytes or (max_size is not None and entries > max_size):
            victims = []
            for key, victim_size in conn.execute(
                "SELECT key, size FROM entries ORDER BY accessed_at LIMIT ?", (_EVICT_BATCH,)
            ).fetchall():
                victims.append((key,))
                size -= victim_size
                entries -= 1
                if size <= self.max_bytes and (max_size is None or entries <= max_size):
                    break
            if not victims:
                break
            conn.executemany("DELETE FROM entries WHERE key = ?", victims)
            self._evictions += len(victims)
            entries, size = conn.execute("SELECT entries, bytes FROM totals").fetchone()
        self._known = {"entries": entries, "bytes": size}

    async def delete(self, *keys: str) -> int:
        """Remove ``keys``; return how many held a live (unexpired) entry."""
        if not keys:
            return 0
        return await self._write(_delete_keys_now, list(keys))  # type: ignore[no-any-return]

    async def clear(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` (all for ``""``); return how many were
        live. One indexed range delete."""
        return await self._write(_clear, prefix)  # type: ignore[no-any-return]

    async def ping(self) -> bool:
        """True when the database opens and answers a query."""
        try:
            return bool(await self._read(_ping))
        except Exception:
            return False

    async def aclose(self) -> None:
        """Finish queued work and close both connections (the threads end). Idempotent; the
        backend opens new ones if used again."""
        with self._lock:
            workers = [w for w in (self._reader, self._writer) if w is not None]
            self._reader = self._writer = None
        # The reader first: its last notes of use go to the writer before that stops.
        for worker in workers:
            worker.submit(_STOP)
            await asyncio.to_thread(worker.thread.join, 10.0)

    def close_sync(self, timeout: float = 10.0) -> None:
        """:meth:`aclose` for code without an event loop (and at interpreter exit)."""
        with self._lock:
            workers = [w for w in (self._reader, self._writer) if w is not None]
            self._reader = self._writer = None
        for worker in workers:
            worker.submit(_STOP)
            worker.thread.join(timeout)

    # -- leases ---------------------------------------------------------------------------------

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        """Take the lease ``key`` for ``ttl`` seconds unless any process holds it; True if
        taken. A random token makes :meth:`release_lease` leave a lease taken over by another
        process after this one's expired."""
        token = secrets.token_hex(8)
        taken = bool(await self._write(_acquire, key, token, ttl))
        if taken:
            self._leases[key] = token
        return taken

    async def release_lease(self, key: str) -> None:
        """Give back the lease ``key`` taken by this backend, if it still holds it."""
        token = self._leases.pop(key, None)
        if token is not None:
            await self._write(_release, key, token)

    async def lease_held(self, key: str) -> bool:
        """Whether any process holds the lease ``key`` now."""
        return bool(await self._read(_held, key))

    # -- operators' tools -----------------------------------------------------------------------

    async def scan(self, prefix: str, *, batch: int = 500) -> AsyncIterator[list[str]]:
        """Batches of live keys starting with ``prefix``, in key order (one indexed range
        query per batch; nothing is locked between batches)."""
        after: str | None = None
        while True:
            keys: list[str] = await self._read(_scan_page, prefix, after, batch)
            if keys:
                yield keys
            if len(keys) < batch:
                return
            after = keys[-1]

    async def add_counters(self, bucket: str, counts: Mapping[str, float], ttl: float) -> None:
        """Add each of ``counts`` to its field of ``bucket``, shared by every process using
        this database; the bucket expires ``ttl`` seconds after its last update."""
        if counts:
            await self._write(_add_counters, bucket, dict(counts), ttl)

    async def read_counters(self, buckets: Sequence[str]) -> list[dict[str, float]]:
        """The fields of each bucket, in order (an empty map for an absent or expired one)."""
        if not buckets:
            return []
        return await self._read(_read_counters, list(buckets))  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        """Counters of this process since creation (``hits``, ``misses``, ``expired``,
        ``evictions``) and the totals of the whole database as of this process's last write
        (``entries``, ``bytes``), with ``max_bytes`` and ``path``. :meth:`astats` reads the
        totals afresh."""
        return {
            **self._known,
            "max_bytes": self.max_bytes,
            "hits": self._hits,
            "misses": self._misses,
            "evictions": self._evictions,
            "expired": self._expired,
            "path": str(self.path),
        }

    async def astats(self) -> dict[str, Any]:
        """:meth:`stats` with the totals read now, plus ``file_bytes``: the database and its
        write-ahead log on disk."""
        entries, size = await self._read(_totals)
        self._known = {"entries": entries, "bytes": size}
        out = self.stats()
        out["file_bytes"] = sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(self.path.name + "-wal"))
            if p.exists()
        )
        return out


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _time_out(future: asyncio.Future[Any], budget: float) -> None:
    if not future.done():
        future.set_exception(CacheBackendError(f"the disk cache did not answer within {budget:g}s"))


def _prepare(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT * 1000)}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise CacheBackendError(f"the disk cache could not switch to WAL mode ({mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA journal_size_limit = 67108864")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == _SCHEMA_VERSION:
        return
    if version != 0:
        raise CacheBackendError(f"the disk cache has an unknown schema version {version}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            statement = ""
            for line in _SCHEMA.splitlines(keepends=True):
                statement += line
                if sqlite3.complete_statement(statement):
                    conn.execute(statement)
                    statement = ""
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _delete_keys(conn: sqlite3.Connection, keys: Sequence[str], now: float) -> int:
    live = 0
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), _IN_CHUNK):
        chunk = unique[start : start + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        live += conn.execute(
            f"SELECT count(*) FROM entries WHERE key IN ({marks}) AND {_LIVE}", (*chunk, now)
        ).fetchone()[0]
        conn.execute(f"DELETE FROM entries WHERE key IN ({marks})", chunk)
    return live


def _delete_keys_now(conn: sqlite3.Connection, keys: list[str]) -> int:
    return _delete_keys(conn, keys, time.time())


def _range(prefix: str) -> tuple[str, tuple[Any, ...]]:
    low, high = _prefix_bounds(prefix)
    if high is None:
        return "key >= ? AND substr(key, 1, ?) = ?", (low, len(prefix), prefix)
    return "key >= ? AND key < ?", (low, high)


def _clear(conn: sqlite3.Connection, prefix: str) -> int:
    where, args = _range(prefix)
    live: int = conn.execute(
        f"SELECT count(*) FROM entries WHERE {where} AND {_LIVE}", (*args, time.time())
    ).fetchone()[0]
    conn.execute(f"DELETE FROM entries WHERE {where}", args)
    return live


def _scan_page(conn: sqlite3.Connection, prefix: str, after: str | None, batch: int) -> list[str]:
    where, args = _range(prefix)
    if after is not None:
        where += " AND key > ?"
        args = (*args, after)
    rows = conn.execute(
        f"SELECT key FROM entries WHERE {where} AND {_LIVE} ORDER BY key LIMIT ?",
        (*args, time.time(), batch),
    ).fetchall()
    return [row[0] for row in rows]


def _touch(conn: sqlite3.Connection, touches: list[tuple[str, float]]) -> None:
    conn.executemany(
        "UPDATE entries SET accessed_at = ? WHERE key = ? AND accessed_at < ?",
        [(when, key, when) for key, when in touches],
    )


def _ping(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT 1").fetchone()[0] == 1)


def _totals(conn: sqlite3.Connection) -> tuple[int, int]:
    entries, size = conn.execute("SELECT entries, bytes FROM totals").fetchone()
    return int(entries), int(size)


def _acquire(conn: sqlite3.Connection, key: str, token: str, ttl: float) -> bool:
    now = time.time()
    conn.execute("DELETE FROM leases WHERE key = ? AND expires_at <= ?", (key, now))
    cursor = conn.execute(
        "INSERT OR IGNORE INTO leases (key, token, expires_at) VALUES (?, ?, ?)",
        (key, token, now + ttl),
    )
    return cursor.rowcount == 1


def _release(conn: sqlite3.Connection, key: str, token: str) -> None:
    conn.execute("DELETE FROM leases WHERE key = ? AND token = ?", (key, token))


def _held(conn: sqlite3.Connection, key: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM leases WHERE key = ? AND expires_at > ?", (key, time.time())
    ).fetchone()
    return row is not None


def _add_counters(
    conn: sqlite3.Connection, bucket: str, counts: dict[str, float], ttl: float
) -> None:
    expires_at = time.time() + ttl
    conn.execute("DELETE FROM counters WHERE bucket = ? AND expires_at <= ?", (bucket, time.time()))
    conn.executemany(
        "INSERT INTO counters (bucket, field, value, expires_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (bucket, field) DO UPDATE SET value = value + excluded.value",
        [(bucket, field, float(value), expires_at) for field, value in counts.items()],
    )
    conn.execute("UPDATE counters SET expires_at = ? WHERE bucket = ?", (expires_at, bucket))


def _read_counters(conn: sqlite3.Connection, buckets: list[str]) -> list[dict[str, float]]:
    now = time.time()
    out: dict[str, dict[str, float]] = {bucket: {} for bucket in buckets}
    unique = list(out)
    for start in range(0, len(unique), _IN_CHUNK):
        chunk = unique[start : start + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        for bucket, field, value in conn.execute(
            f"SELECT bucket, field, value FROM counters WHERE bucket IN ({marks}) "
            "AND expires_at > ?",
            (*chunk, now),
        ):
            out[bucket][field] = value
    return [dict(out[bucket]) for bucket in buckets]
