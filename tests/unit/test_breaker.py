"""The cache's circuit breaker, through ``Cache.alookup`` and ``Cache.stats`` over a backend
that fails on demand and counts every call it gets."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import anyio
import pytest

from llmstash.caching import Cache, CacheBackend
from llmstash.caching._codec import encode_chat
from llmstash.exceptions import CacheBackendError
from llmstash.types import ModelResponse

THRESHOLD = 3
RESET = 0.2


class FlakyBackend:
    """A remote-looking backend (``is_local = False``, so lookups are budgeted and guarded)
    that raises while ``failing`` is set, or never answers while ``hanging`` is set; each
    call first takes ``delay`` seconds."""

    is_local = False

    def __init__(self) -> None:
        self.failing = False
        self.hanging = False
        self.delay = 0.0
        self.calls: list[str] = []
        self.data: dict[str, bytes] = {}

    async def _enter(self, name: str) -> None:
        self.calls.append(name)
        if self.delay:
            await anyio.sleep(self.delay)
        if self.hanging:
            await anyio.sleep_forever()
        if self.failing:
            raise CacheBackendError(f"{name}: backend down (injected)")

    async def get(self, key: str) -> bytes | None:
        await self._enter("get")
        return self.data.get(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        await self._enter("get_many")
        return [self.data.get(k) for k in keys]

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        await self._enter("set")
        self.data[key] = value

    async def set_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        await self._enter("set_many")
        self.data.update(items)

    async def delete(self, *keys: str) -> int:
        await self._enter("delete")
        return sum(self.data.pop(k, None) is not None for k in keys)

    async def clear(self, prefix: str) -> int:
        await self._enter("clear")
        gone = [k for k in self.data if k.startswith(prefix)]
        for k in gone:
            del self.data[k]
        return len(gone)

    async def ping(self) -> bool:
        await self._enter("ping")
        return True

    async def aclose(self) -> None:
        pass


@pytest.fixture
def backend() -> FlakyBackend:
    return FlakyBackend()


@pytest.fixture
def cache(backend: FlakyBackend) -> Cache:
    assert isinstance(backend, CacheBackend)
    return Cache(
        backend=backend, breaker_threshold=THRESHOLD, breaker_reset=RESET, lookup_timeout=0.05
    )


async def test_one_failure_does_not_open_the_breaker(cache: Cache, backend: FlakyBackend) -> None:
    backend.failing = True
    assert await cache.alookup("k") is None  # a failure is a miss, never an exception
    assert len(backend.calls) == 1
    assert cache.stats()["breaker_open"] is False
    assert cache.stats()["consecutive_failures"] == 1
    backend.failing = False
    assert await cache.alookup("k") is None
    assert len(backend.calls) == 2  # still asked
    assert cache.stats()["consecutive_failures"] == 0  # a success resets the count


async def test_failures_must_be_consecutive(cache: Cache, backend: FlakyBackend) -> None:
    for _ in range(3):
        backend.failing = True
        for _ in range(THRESHOLD - 1):
            await cache.alookup("k")
        backend.failing = False
        await cache.alookup("k")
    assert cache.stats()["breaker_open"] is False
    assert len(backend.calls) == 3 * THRESHOLD


async def test_threshold_failures_open_it_and_no_calls_while_open(
    cache: Cache, backend: FlakyBackend
) -> None:
    backend.failing = True
    for i in range(THRESHOLD):
        assert cache.stats()["breaker_open"] is False, f"open after {i} failures"
        assert await cache.alookup("k") is None
    assert cache.stats()["breaker_open"] is True
    assert len(backend.calls) == THRESHOLD

    backend.failing = False  # even a backend that is back is not asked before the reset
    for _ in range(20):
        assert await cache.alookup("k") is None
    assert await cache.alookup_many(["a", "b"]) == [None, None]
    await cache.astore({"k": b"x"}, None)  # writes are skipped while open too
    await cache.aflush_writes()
    assert len(backend.calls) == THRESHOLD
    assert cache.stats()["breaker_open"] is True


async def test_one_probe_per_reset_window_and_success_closes_it(
    cache: Cache, backend: FlakyBackend
) -> None:
    backend.failing = True
    for _ in range(THRESHOLD):
        await cache.alookup("k")
    assert cache.stats()["breaker_open"] is True
    calls = len(backend.calls)

    # After the reset, concurrent lookups let exactly one probe through (the others arrive
    # while it is in flight); it fails, so the breaker stays open.
    backend.delay = 0.01
    await anyio.sleep(RESET * 1.5)
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(cache.alookup, "k")
    assert len(backend.calls) == calls + 1
    assert cache.stats()["breaker_open"] is True
    await cache.alookup("k")
    assert len(backend.calls) == calls + 1  # the failed probe started a new window

    # The next probe succeeds: closed again, and every lookup reaches the backend.
    backend.failing = False
    await anyio.sleep(RESET * 1.5)
    assert await cache.alookup("k") is None
    assert len(backend.calls) == calls + 2
    assert cache.stats()["breaker_open"] is False
    assert cache.stats()["consecutive_failures"] == 0
    for _ in range(5):
        await cache.alookup("k")
    assert len(backend.calls) == calls + 7


async def test_a_backend_past_its_budget_counts_as_a_failure(
    cache: Cache, backend: FlakyBackend
) -> None:
    backend.hanging = True
    for _ in range(THRESHOLD):
        with anyio.fail_after(2):  # each lookup gives up after its 50 ms budget
            assert await cache.alookup("k") is None
    assert cache.stats()["breaker_open"] is True
    assert len(backend.calls) == THRESHOLD
    with anyio.fail_after(2):
        assert await cache.alookup("k") is None
    assert len(backend.calls) == THRESHOLD  # not asked (and not waited for) while open


async def test_a_hit_after_recovery(cache: Cache, backend: FlakyBackend) -> None:
    backend.failing = True
    for _ in range(THRESHOLD):
        await cache.alookup("k")
    backend.failing = False
    backend.data["k"] = encode_chat(
        ModelResponse(id="r", choices=[], created=0, model="m"), time.time(), None
    )
    assert await cache.alookup("k") is None  # open: not asked, so no hit yet
    await anyio.sleep(RESET * 1.5)
    entry = await cache.alookup("k")
    assert entry is not None  # the probe reads the backend again
