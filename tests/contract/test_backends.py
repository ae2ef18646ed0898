"""The backend contract kit (``llmstash.testing.backend_contract``) run for every backend of
llmstash: memory, one Redis server, a private Redis Cluster, a private Sentinel-managed master
and the disk cache. Behaviour that only Redis or only memory has comes after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from llmstash.caching._backend import CacheBackend
from llmstash.caching._disk import DiskBackend
from llmstash.caching._memory import MemoryBackend
from llmstash.caching._redis import RedisBackend
from llmstash.testing.backend_contract import BackendContract
from tests._fixtures_redis import eventually

REDIS_KINDS = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=[pytest.mark.redis, pytest.mark.cluster]),
    pytest.param("sentinel", marks=pytest.mark.redis),
]
KINDS = ["memory", *REDIS_KINDS]
EXPIRY_GRACE = 3.0
"""Seconds past its ttl that Redis may take before an expired key reads as gone."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Subject:
    """A backend under test, a factory for more of its kind, and the key prefix of this test."""

    kind: str
    backend: CacheBackend
    make: Callable[[], CacheBackend]
    prefix: str = field(default_factory=lambda: f"llmstash-test:{uuid.uuid4().hex}:")
    clock: FakeClock | None = None

    def key(self, name: str) -> str:
        return self.prefix + name

    async def elapse(self, seconds: float) -> None:
        """Let time pass: the fake clock for memory, real time for Redis."""
        if self.clock is not None:
            self.clock.now += seconds
        else:
            await anyio.sleep(seconds)

    async def assert_expires(self, keys: list[str], ttl: float) -> None:
        """Once ``ttl`` has passed, ``keys`` read as gone (for Redis, within a grace period)."""
        await self.elapse(ttl)

        async def gone() -> bool:
            return await self.backend.get_many(keys) == [None] * len(keys)

        await eventually(gone, EXPIRY_GRACE)


def backend_factory(kind: str, request: pytest.FixtureRequest) -> Callable[[], CacheBackend]:
    """Backends of ``kind``, each owning its client; the servers start on first use."""
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        return lambda: RedisBackend.from_url(url)
    if kind == "cluster":
        nodes = request.getfixturevalue("redis_cluster").startup_nodes
        return lambda: RedisBackend.from_cluster(nodes)
    if kind == "sentinel":
        s = request.getfixturevalue("redis_sentinel")
        return lambda: RedisBackend.from_sentinel(
            s.sentinel_nodes,
            s.service_name,
            password=s.password,
            sentinel_password=s.sentinel_password,
        )
    raise AssertionError(kind)


@pytest.fixture(params=KINDS)
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    kind: str = request.param
    if kind == "memory":
        clock = FakeClock()
        yield Subject(
            kind, MemoryBackend(clock=clock), lambda: MemoryBackend(clock=clock), clock=clock
        )
        return
    make = backend_factory(kind, request)
    subject = Subject(kind, make(), make)
    try:
        yield subject
    finally:
        await subject.backend.aclose()
        # A fresh backend cleans up, since the test may have closed its own.
        cleaner = make()
        try:
            await cleaner.clear(subject.prefix)
        finally:
            await cleaner.aclose()


# -- the contract kit, run for every backend of llmstash ----------------------------------------


class TestMemoryContract(BackendContract):
    expect_local = True

    @pytest.fixture
    def make_backend(self) -> Callable[[], CacheBackend]:
        self.clock = FakeClock()
        clock = self.clock
        return lambda: MemoryBackend(clock=clock)

    async def elapse(self, seconds: float) -> None:
        self.clock.now += seconds


@pytest.mark.redis
class TestRedisContract(BackendContract):
    expect_local = False

    @pytest.fixture
    def make_backend(self, request: pytest.FixtureRequest) -> Callable[[], CacheBackend]:
        return backend_factory("redis", request)


@pytest.mark.redis
@pytest.mark.cluster
class TestClusterContract(BackendContract):
    expect_local = False

    @pytest.fixture
    def make_backend(self, request: pytest.FixtureRequest) -> Callable[[], CacheBackend]:
        return backend_factory("cluster", request)


@pytest.mark.redis
class TestSentinelContract(BackendContract):
    expect_local = False

    @pytest.fixture
    def make_backend(self, request: pytest.FixtureRequest) -> Callable[[], CacheBackend]:
        return backend_factory("sentinel", request)


class TestDiskContract(BackendContract):
    expect_local = False

    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> Callable[[], CacheBackend]:
        return lambda: DiskBackend(tmp_path)


# -- Redis only ---------------------------------------------------------------------------------


@pytest.mark.parametrize("subject", REDIS_KINDS, indirect=True)
async def test_lease_is_shared_between_backends(subject: Subject) -> None:
    mine, theirs = subject.backend, subject.make()
    assert isinstance(mine, RedisBackend) and isinstance(theirs, RedisBackend)
    lease = subject.key("lease")
    try:
        assert await mine.acquire_lease(lease, 5.0) is True
        assert await theirs.acquire_lease(lease, 5.0) is False
        await theirs.release_lease(lease)
        assert await theirs.acquire_lease(lease, 5.0) is False
        await mine.release_lease(lease)
        assert await theirs.acquire_lease(lease, 0.1) is True
    finally:
        await theirs.aclose()


@pytest.mark.parametrize("subject", REDIS_KINDS, indirect=True)
async def test_release_leaves_a_lease_taken_over_by_another(subject: Subject) -> None:
    mine, theirs = subject.backend, subject.make()
    assert isinstance(mine, RedisBackend) and isinstance(theirs, RedisBackend)
    lease = subject.key("lease")
    try:
        assert await mine.acquire_lease(lease, 0.05) is True
        await eventually(lambda: theirs.acquire_lease(lease, 5.0), EXPIRY_GRACE)
        await mine.release_lease(lease)
        assert await mine.acquire_lease(lease, 5.0) is False
    finally:
        await theirs.release_lease(lease)
        await theirs.aclose()


@pytest.mark.parametrize("kind", REDIS_KINDS)
async def test_a_client_passed_in_is_not_closed(kind: str, request: pytest.FixtureRequest) -> None:
    key = f"llmstash-test:{uuid.uuid4().hex}:k"
    sentinel: Sentinel | None = None
    client: Redis | RedisCluster
    if kind == "redis":
        client = Redis.from_url(request.getfixturevalue("redis_url"))
    elif kind == "cluster":
        nodes = request.getfixturevalue("redis_cluster").startup_nodes
        client = RedisCluster(startup_nodes=[ClusterNode(n["host"], n["port"]) for n in nodes])
    else:
        s = request.getfixturevalue("redis_sentinel")
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            s.sentinel_nodes, sentinel_kwargs={"password": s.sentinel_password}
        )
        client = sentinel.master_for(s.service_name, password=s.password)
    try:
        backend = RedisBackend(client)
        await backend.set(key, b"v")
        await backend.aclose()
        await backend.aclose()
        assert await client.ping()
        assert await client.get(key) == b"v"
    finally:
        await client.delete(key)
        await client.aclose()
        if sentinel is not None:
            await sentinel.aclose()


async def test_a_client_decoding_responses_is_refused() -> None:
    client = Redis(decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisBackend(client)
    await client.aclose()


# -- memory only --------------------------------------------------------------------------------


def test_memory_evicts_least_recently_used_by_count() -> None:
    backend = MemoryBackend(max_size=3)
    for key in "abc":
        backend.set_nowait(key, key.encode())
    assert backend.get_nowait("a") == b"a"
    backend.set_nowait("d", b"d")
    assert [backend.get_nowait(k) for k in "abcd"] == [b"a", None, b"c", b"d"]
    backend.set_nowait("c", b"C")
    backend.set_nowait("e", b"e")
    assert [backend.get_nowait(k) for k in "acde"] == [None, b"C", b"d", b"e"]
    assert backend.stats()["evictions"] == 2


def test_memory_evicts_least_recently_used_by_bytes() -> None:
    # An entry's size is its key's length plus its value's: 10 here.
    backend = MemoryBackend(max_bytes=30)
    for key in ("k1", "k2", "k3"):
        backend.set_nowait(key, b"x" * 8)
    assert backend.stats()["bytes"] == 30
    assert backend.get_nowait("k1") is not None
    backend.set_nowait("k4", b"x" * 8)
    assert backend.get_nowait("k2") is None
    backend.set_nowait("k5", b"x" * 18)
    assert [backend.get_nowait(k) is not None for k in ("k1", "k3", "k4", "k5")] == [
        False,
        False,
        True,
        True,
    ]
    assert backend.stats()["bytes"] == 30
    assert backend.stats()["evictions"] == 3


def test_memory_rejects_an_entry_larger_than_max_bytes() -> None:
    backend = MemoryBackend(max_bytes=20)
    backend.set_nowait("other", b"12345")
    backend.set_nowait("k", b"small")
    backend.set_nowait("k", b"x" * 20)
    assert backend.get_nowait("k") is None
    assert backend.get_nowait("other") == b"12345"
    assert backend.stats()["bytes"] == 10


def test_memory_stats() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    assert backend.stats() == {
        "entries": 0,
        "bytes": 0,
        "hits": 0,
        "misses": 0,
        "evictions": 0,
        "expired": 0,
    }
    backend.set_nowait("a", b"123")
    backend.set_nowait("b", b"4567", ttl=1)
    backend.get_nowait("a")
    backend.get_nowait("a")
    backend.get_nowait("absent")
    clock.now += 1
    backend.get_nowait("b")
    assert backend.stats() == {
        "entries": 1,
        "bytes": 4,
        "hits": 2,
        "misses": 2,
        "evictions": 0,
        "expired": 1,
    }


async def test_memory_expiry_follows_the_clock() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    await backend.set("t", b"v", ttl=10)
    backend.set_nowait("forever", b"v")
    clock.now += 9.999
    assert await backend.get("t") == b"v"
    clock.now += 0.001
    assert await backend.get("t") is None
    clock.now += 1e9
    assert await backend.get("forever") == b"v"


async def test_memory_delete_and_clear_count_only_live_entries() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    await backend.set_many({"p:a": b"1", "p:b": b"2"}, ttl=1)
    await backend.set_many({"p:c": b"3", "q:d": b"4"})
    clock.now += 1
    assert await backend.delete("p:a") == 0
    assert await backend.clear("p:") == 1
    assert backend.stats()["entries"] == 1
    assert await backend.clear("") == 1
    assert backend.stats()["bytes"] == 0


@pytest.mark.parametrize("bounds", [{"max_size": 0}, {"max_bytes": 0}])
def test_memory_bounds_must_be_positive(bounds: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryBackend(**bounds)
