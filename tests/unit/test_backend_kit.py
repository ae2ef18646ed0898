"""The backend contract as the facade uses it: ``is_local`` honoured for any backend (no budget,
no breaker), ``backend_factory=`` called once per event loop and closed by the cache, a
``backend=`` never closed, and ``llmstash.testing`` importable without pytest."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence

import pytest

from llmstash.caching import Cache
from llmstash.exceptions import InvalidRequestError


class SlowBackend:
    """Answers after ``delay`` seconds; counts closes."""

    def __init__(self, *, is_local: bool, delay: float = 0.0) -> None:
        self.is_local = is_local
        self.delay = delay
        self.data: dict[str, bytes] = {}
        self.closed = 0
        self.loop = asyncio.get_running_loop()

    async def get(self, key: str) -> bytes | None:
        await asyncio.sleep(self.delay)
        return self.data.get(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        await asyncio.sleep(self.delay)
        return [self.data.get(k) for k in keys]

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self.data[key] = value

    async def set_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        self.data.update(items)

    async def delete(self, *keys: str) -> int:
        return sum(self.data.pop(k, None) is not None for k in keys)

    async def clear(self, prefix: str) -> int:
        return 0

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self.closed += 1


@pytest.mark.parametrize(("is_local", "hits"), [(True, True), (False, False)])
async def test_is_local_decides_whether_a_lookup_has_a_budget(is_local: bool, hits: bool) -> None:
    backend = SlowBackend(is_local=is_local, delay=0.05)
    cache = Cache(backend=backend, lookup_timeout=0.01, write_timeout=1.0)
    await cache.astore({"k": b"raw"}, None)
    assert backend.data == {"k": b"raw"}
    got = await cache._guarded_get(["k"])
    assert (got == [b"raw"]) is hits
    await cache.aclose()
    assert backend.closed == 0  # a backend= passed in stays open


async def test_a_local_backend_is_never_paused_by_the_breaker() -> None:
    backend = SlowBackend(is_local=True)
    cache = Cache(backend=backend, breaker_threshold=1, breaker_reset=60)
    cache._guard.fail("test", None)
    assert cache._guard.breaker.is_open
    backend.data["k"] = b"v"
    assert await cache._guarded_get(["k"]) == [b"v"]


async def test_backend_factory_is_called_once_per_loop_and_closed_by_the_cache() -> None:
    made: list[SlowBackend] = []

    def factory() -> SlowBackend:
        made.append(SlowBackend(is_local=False))
        return made[-1]

    cache = Cache(backend_factory=factory)
    assert made == []  # called on first use, inside the loop
    assert cache.backend is cache.backend
    assert len(made) == 1 and made[0].loop is asyncio.get_running_loop()

    def other_loop() -> None:
        async def use() -> None:
            assert cache.backend is not made[0]
            await cache.aclose()

        asyncio.run(use())

    thread = threading.Thread(target=other_loop)
    thread.start()
    await asyncio.to_thread(thread.join)
    assert len(made) == 2 and made[1].closed >= 1  # aclose is idempotent
    await cache.aclose()
    assert made[0].closed == 1


async def test_a_factory_returning_something_else_is_a_miss_not_an_error() -> None:
    cache = Cache(backend_factory=lambda: object())  # type: ignore[arg-type,return-value]
    assert await cache._guarded_get(["k"]) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backend_factory": 3},
        {"backend": object()},
        {"backend_factory": lambda: None, "backend": "x"},
    ],
)
def test_bad_backend_arguments_fail_at_once(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError):
        Cache(**kwargs)  # type: ignore[arg-type]


def test_llmstash_testing_does_not_import_pytest() -> None:
    code = (
        "import sys, llmstash.testing; assert 'pytest' not in sys.modules; "
        "import llmstash.testing.backend_contract; assert 'pytest' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
