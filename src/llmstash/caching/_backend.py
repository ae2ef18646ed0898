"""The storage protocol under the cache: bytes in, bytes out, nothing about LLMs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

__all__ = [
    "CacheBackend",
    "SupportsBudgetedLookup",
    "SupportsCounters",
    "SupportsLease",
    "SupportsScan",
]


@runtime_checkable
class CacheBackend(Protocol):
    """Async key-value storage for cached responses.

    Implement it to plug in your own store. Keys arrive fully formed (namespace included);
    values are opaque bytes. ``ttl`` is seconds (float), ``None`` for "never expires".
    Errors may be raised freely: the cache facade above turns every failure into a miss.

    ``is_local`` tells the facade whether lookups can block on I/O: a local backend is asked
    without a latency budget or circuit breaker, since it answers immediately.
    """

    is_local: bool

    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None``."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values for ``keys``, in order, ``None`` where absent; one round trip."""
        ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (``None``: no expiry)."""
        ...

    async def set_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        """Store every item with the same ``ttl``; one round trip."""
        ...

    async def delete(self, *keys: str) -> int:
        """Remove ``keys``; return how many existed."""
        ...

    async def clear(self, prefix: str) -> int:
        """Remove every key that starts with ``prefix``; return how many."""
        ...

    async def ping(self) -> bool:
        """True when the backend answers."""
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
        ...


@runtime_checkable
class SupportsBudgetedLookup(Protocol):
    """A backend that bounds a lookup's round trip itself, cheaper than a cancel scope
    around :meth:`CacheBackend.get_many` (the Redis backend's pipelined reader does)."""

    async def lookup(self, keys: Sequence[str], budget: float) -> list[bytes | None]:
        """The values for ``keys`` in order; raise if no answer came within ``budget`` s."""
        ...


@runtime_checkable
class SupportsLease(Protocol):
    """A backend that can hold short cross-process leases (``Cache(lease=s)``): the first
    process to miss a key takes its lease and calls the provider; the others wait for its
    entry, or for the lease to be released, instead of calling too."""

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        """Take the lease ``key`` for ``ttl`` seconds unless anyone holds it; True if taken."""
        ...

    async def release_lease(self, key: str) -> None:
        """Give back a lease this backend took (a no-op otherwise)."""
        ...

    async def lease_held(self, key: str) -> bool:
        """Whether anyone holds the lease ``key`` now."""
        ...


@runtime_checkable
class SupportsScan(Protocol):
    """A backend whose keys can be listed, for operators' tools (``llmstash cache ls``)."""

    def scan(self, prefix: str, *, batch: int = 500) -> AsyncIterator[list[str]]:
        """Batches of keys that start with ``prefix``, without blocking the store (Redis:
        ``SCAN``, never ``KEYS``). A key may appear twice; every key present throughout the
        scan appears at least once."""
        ...


@runtime_checkable
class SupportsCounters(Protocol):
    """A backend that keeps shared counters, so that every process using the same store adds
    to one set of statistics (``await cache.astats(fleet=True)``).

    Counters live in buckets (one per time slice, named by the caller); each bucket is a map
    of field name to number and expires ``ttl`` seconds after its last update."""

    async def add_counters(self, bucket: str, counts: Mapping[str, float], ttl: float) -> None:
        """Add each of ``counts`` to its field in ``bucket`` (created as needed)."""
        ...

    async def read_counters(self, buckets: Sequence[str]) -> list[dict[str, float]]:
        """The fields of each bucket, in order (an empty map for a bucket that is absent)."""
        ...
