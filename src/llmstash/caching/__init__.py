"""The response cache: ``Cache`` in LiteLLM's shape over a :class:`CacheBackend`.

``Cache`` (in ``_cache.py``) owns what every backend shares: keys (``_keys.py``), the stored
format (``_codec.py``), the latency budget and circuit breaker (``_guard.py``), write-through
stores (``_writes.py``) and the Redis settings (``_settings.py``). Backends only move bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._backend import (
    CacheBackend,
    SupportsBudgetedLookup,
    SupportsCounters,
    SupportsLease,
    SupportsScan,
)
from ._cache import ALL_CALL_TYPES, Cache
from ._memory import MemoryBackend

if TYPE_CHECKING:
    from ._disk import DiskBackend
    from ._redis import RedisBackend

__all__ = [
    "ALL_CALL_TYPES",
    "Cache",
    "CacheBackend",
    "DiskBackend",
    "MemoryBackend",
    "RedisBackend",
    "SupportsBudgetedLookup",
    "SupportsCounters",
    "SupportsLease",
    "SupportsScan",
]


def __getattr__(name: str) -> Any:
    # RedisBackend is importable from here without importing redis with the package.
    if name == "RedisBackend":
        from ._redis import RedisBackend

        return RedisBackend
    if name == "DiskBackend":
        from ._disk import DiskBackend

        return DiskBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
