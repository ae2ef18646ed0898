"""In-process cache storage: an LRU dictionary bounded by entries and bytes, with per-entry TTL."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence

from llmstash._config import DEFAULT_MEMORY_MAX_BYTES, DEFAULT_MEMORY_MAX_SIZE

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """A :class:`~llmstash.caching._backend.CacheBackend` that keeps entries in this process.

    Entries live in an ``OrderedDict`` in least-recently-used order: a hit moves its entry to the
    end, and a store evicts from the front until at most ``max_size`` entries and ``max_bytes``
    bytes remain. The size of an entry is ``len(value) + len(key)`` (bytes of the value plus
    characters of the key); an entry larger than ``max_bytes`` on its own is not stored, and
    storing it removes any older value under the same key. Python's per-object overhead is not
    counted, so real memory use is somewhat above ``max_bytes``.

    Expired entries are misses and are removed when next looked up (or evicted as the least
    recently used); there is no background task. ``clock`` gives the time in seconds and may be
    replaced in tests.

    Thread-safe: sync calls (on llmstash's own loop thread) and async calls may share it.
    """

    __slots__ = (
        "_bytes",
        "_clock",
        "_counters",
        "_data",
        "_evictions",
        "_lock",
        "_expired",
        "_hits",
        "_leases",
        "_max_bytes",
        "_max_size",
        "_misses",
        "last_expired",
    )

    is_local: bool = True
    """Lookups never wait on I/O."""

    def __init__(
        self,
        max_size: int = DEFAULT_MEMORY_MAX_SIZE,
        max_bytes: int = DEFAULT_MEMORY_MAX_BYTES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 1 or max_bytes < 1:
            raise ValueError("max_size and max_bytes must be positive")
        self._max_size = max_size
        self._max_bytes = max_bytes
        self._clock = clock
        # key -> value, or (value, deadline) for an entry that expires: a bare bytes object
        # saves a tuple per entry in the common no-TTL case.
        self._data: OrderedDict[str, bytes | tuple[bytes, float]] = OrderedDict()
        self._leases: dict[str, float] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expired = 0
        self._counters: dict[str, tuple[dict[str, float], float]] = {}
        self.last_expired: str | None = None
        """The key last found expired (and dropped): a miss on it was an expiry."""
        # Sync calls run on llmstash's own loop thread, async calls on the caller's: both may
        # share one in-memory cache. Uncontended, the lock costs about 0.1 µs.
        self._lock = threading.Lock()

    def get_nowait(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None``; synchronous, for the cache's hot path."""
        with self._lock:
            return self._get(key)

    def _get(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is not None:
            if isinstance(entry, bytes):
                self._data.move_to_end(key)
                self._hits += 1
                return entry
            value, deadline = entry
            if deadline > self._clock():
                self._data.move_to_end(key)
                self._hits += 1
                return value
            del self._data[key]
            self._bytes -= len(value) + len(key)
            self._expired += 1
            self.last_expired = key
        self._misses += 1
        return None

    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None``."""
        return self.get_nowait(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values for ``keys``, in order, ``None`` where absent."""
        with self._lock:
            get = self._get
            return [get(key) for key in keys]

    def set_nowait(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds (``None``: no expiry); synchronous.

        With ``ttl <= 0`` the value expires at once: nothing is stored and an older value under
        ``key`` is removed.
        """
        self._put(((key, value),), ttl)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds, as :meth:`set_nowait` does."""
        self._put(((key, value),), ttl)

    async def set_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        """Store every item with the same ``ttl``, as :meth:`set_nowait` does."""
        self._put(items.items(), ttl)

    async def delete(self, *keys: str) -> int:
        """Remove ``keys``; return how many held a live (unexpired) entry."""
        now = self._clock()
        removed = 0
        with self._lock:
            for key in keys:
                entry = self._pop(key)
                if entry is not None and (isinstance(entry, bytes) or entry[1] > now):
                    removed += 1
        return removed

    async def clear(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` (all keys for ``""``); return how many
        were live."""
        with self._lock:
            keys = [key for key in self._data if key.startswith(prefix)]
        return await self.delete(*keys)

    async def ping(self) -> bool:
        """Always true: there is nothing to reach."""
        return True

    async def aclose(self) -> None:
        """Nothing to release; entries stay usable, since the store belongs to no event loop."""

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        """Take the lease ``key`` for ``ttl`` seconds unless a live one is held; True if taken.

        Leases are kept apart from cached entries and do not count towards the bounds.
        """
        now = self._clock()
        deadline = self._leases.get(key)
        if deadline is not None and deadline > now:
            return False
        self._leases[key] = now + ttl
        return True

    async def release_lease(self, key: str) -> None:
        """Give the lease ``key`` back (a no-op if it is not held)."""
        self._leases.pop(key, None)

    async def lease_held(self, key: str) -> bool:
        """Whether a live lease ``key`` is held."""
        deadline = self._leases.get(key)
        return deadline is not None and deadline > self._clock()

    async def scan(self, prefix: str, *, batch: int = 500) -> AsyncIterator[list[str]]:
        """Batches of the live keys that start with ``prefix`` (a snapshot of this moment)."""
        now = self._clock()
        with self._lock:
            keys = [
                key
                for key, entry in self._data.items()
                if key.startswith(prefix) and (isinstance(entry, bytes) or entry[1] > now)
            ]
        for i in range(0, len(keys), max(1, batch)):
            yield keys[i : i + batch]

    async def add_counters(self, bucket: str, counts: Mapping[str, float], ttl: float) -> None:
        """Add ``counts`` to the fields of ``bucket``, which expires ``ttl`` s from now."""
        now = self._clock()
        with self._lock:
            fields, deadline = self._counters.get(bucket, ({}, 0.0))
            if deadline <= now:
                fields = {}
            for name, value in counts.items():
                fields[name] = fields.get(name, 0) + value
            self._counters[bucket] = (fields, now + ttl)
            for name in [b for b, (_, d) in self._counters.items() if d <= now]:
                del self._counters[name]

    async def read_counters(self, buckets: Sequence[str]) -> list[dict[str, float]]:
        """The fields of each bucket (empty for an absent or expired one)."""
        now = self._clock()
        with self._lock:
            out = []
            for bucket in buckets:
                fields, deadline = self._counters.get(bucket, ({}, 0.0))
                out.append(dict(fields) if deadline > now else {})
            return out

    def stats(self) -> dict[str, int]:
        """Counters since creation: ``entries``, ``bytes`` (as bounded by ``max_bytes``),
        ``hits``, ``misses``, ``evictions`` (by the LRU bounds) and ``expired`` (found expired)."""
        return {
            "entries": len(self._data),
            "bytes": self._bytes,
            "hits": self._hits,
            "misses": self._misses,
            "evictions": self._evictions,
            "expired": self._expired,
        }

    def _put(self, items: Iterable[tuple[str, bytes]], ttl: float | None) -> None:
        with self._lock:
            self._put_locked(items, ttl)

    def _put_locked(self, items: Iterable[tuple[str, bytes]], ttl: float | None) -> None:
        if ttl is not None and ttl <= 0:
            for key, _ in items:
                self._pop(key)
            return
        deadline = None if ttl is None else self._clock() + ttl
        data = self._data
        for key, value in items:
            self._pop(key)
            size = len(value) + len(key)
            if size > self._max_bytes:
                continue
            data[key] = value if deadline is None else (value, deadline)
            self._bytes += size
            while data and (len(data) > self._max_size or self._bytes > self._max_bytes):
                old_key, old = data.popitem(last=False)
                self._bytes -= _size(old) + len(old_key)
                self._evictions += 1

    def _pop(self, key: str) -> bytes | tuple[bytes, float] | None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._bytes -= _size(entry) + len(key)
        return entry


def _size(entry: bytes | tuple[bytes, float]) -> int:
    return len(entry) if isinstance(entry, bytes) else len(entry[0])
