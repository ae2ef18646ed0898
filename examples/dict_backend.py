"""A third-party cache backend in a few lines: a dict behind an ``asyncio.Lock``, with expiry.

It implements :class:`llmstash.caching.CacheBackend` (nothing more), passes the contract suite
(``tests/contract/test_example_backend.py`` runs ``llmstash.testing.backend_contract`` on it)
and plugs into ``Cache(backend=...)``. Run it: ``python examples/dict_backend.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

import llmstash
from llmstash.caching import Cache


class DictBackend:
    """Entries in a dict of ``key -> (value, deadline or None)``; expired ones read as absent."""

    is_local = True  # answers at once: the cache asks it with no latency budget or breaker

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lock = asyncio.Lock()

    def _live(self, key: str, now: float) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, deadline = item
        if deadline is not None and deadline <= now:
            del self._data[key]
            return None
        return value

    async def get(self, key: str) -> bytes | None:
        async with self._lock:
            return self._live(key, time.monotonic())

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        async with self._lock:
            now = time.monotonic()
            return [self._live(key, now) for key in keys]

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        await self.set_many({key: value}, ttl=ttl)

    async def set_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        async with self._lock:
            if ttl is not None and ttl <= 0:  # the contract: ttl <= 0 deletes
                for key in items:
                    self._data.pop(key, None)
                return
            deadline = None if ttl is None else time.monotonic() + ttl
            for key, value in items.items():
                self._data[key] = (bytes(value), deadline)

    async def delete(self, *keys: str) -> int:
        async with self._lock:
            now = time.monotonic()
            live = [key for key in keys if self._live(key, now) is not None]
            for key in live:
                del self._data[key]
            return len(live)

    async def clear(self, prefix: str) -> int:
        async with self._lock:
            now = time.monotonic()
            doomed = [k for k in list(self._data) if k.startswith(prefix)]
            live = sum(self._live(k, now) is not None for k in doomed)
            for key in doomed:
                self._data.pop(key, None)
            return live

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


async def main() -> None:
    backend = DictBackend()
    async with Cache(backend=backend) as cache:  # the cache never closes a backend= you pass
        llmstash.cache = cache
        for _ in range(2):
            r = await llmstash.acompletion(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": "Hello"}],
                mock_response="Hi there!",
            )
            print(r.choices[0].message.content, "cache hit:", r._hidden_params["cache_hit"])
    await backend.aclose()


if __name__ == "__main__":
    asyncio.run(main())
