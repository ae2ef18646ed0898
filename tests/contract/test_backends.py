"""One behaviour suite for every cache backend: memory, one Redis server (the shared one, under a
unique prefix), a private Redis Cluster and a private Sentinel-managed master. Behaviour that
only Redis or only memory has comes after the shared suite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from llmstash.caching._backend import CacheBackend
from llmstash.caching._memory import MemoryBackend
from llmstash.caching._redis import RedisBackend
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


async def test_is_a_cache_backend(subject: Subject) -> None:
    assert isinstance(subject.backend, CacheBackend)
    assert subject.backend.is_local is (subject.kind == "memory")


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x00",
        b"\xff\xfe\x80 not utf-8",
        bytes(range(256)),
        "héllo ✓".encode(),
        b"x" * 200_000,
    ],
    ids=["empty", "nul", "not-utf8", "all-bytes", "utf8", "200kB"],
)
async def test_roundtrip_of_arbitrary_bytes(subject: Subject, value: bytes) -> None:
    key = subject.key("v")
    await subject.backend.set(key, value)
    got = await subject.backend.get(key)
    assert type(got) is bytes
    assert got == value


async def test_missing_key_is_none(subject: Subject) -> None:
    assert await subject.backend.get(subject.key("absent")) is None


async def test_set_overwrites(subject: Subject) -> None:
    key = subject.key("k")
    await subject.backend.set(key, b"one")
    await subject.backend.set(key, b"two")
    assert await subject.backend.get(key) == b"two"


async def test_get_many_keeps_order_with_gaps(subject: Subject) -> None:
    a, b, c = subject.key("a"), subject.key("b"), subject.key("c")
    await subject.backend.set_many({a: b"A", c: b""})
    assert await subject.backend.get_many([a, b, c, a]) == [b"A", None, b"", b"A"]
    assert await subject.backend.get_many([b]) == [None]
    assert await subject.backend.get_many([]) == []


async def test_set_many_with_ttl_expires(subject: Subject) -> None:
    keys = [subject.key(f"t{i}") for i in range(5)]
    await subject.backend.set_many({k: k.encode() for k in keys}, ttl=0.2)
    assert await subject.backend.get_many(keys) == [k.encode() for k in keys]
    await subject.assert_expires(keys, 0.2)


async def test_set_with_ttl_expires(subject: Subject) -> None:
    key = subject.key("t")
    await subject.backend.set(key, b"v", ttl=0.2)
    assert await subject.backend.get(key) == b"v"
    await subject.assert_expires([key], 0.2)


async def test_a_ttl_below_a_millisecond_is_kept_briefly(subject: Subject) -> None:
    key = subject.key("t")
    await subject.backend.set(key, b"v", ttl=0.0001)
    await subject.assert_expires([key], 0.0001)


async def test_ttl_none_never_expires(subject: Subject) -> None:
    one, many = subject.key("one"), subject.key("many")
    await subject.backend.set(one, b"short", ttl=0.1)
    await subject.backend.set_many({many: b"short"}, ttl=0.1)
    # Storing again without a ttl removes the earlier expiry.
    await subject.backend.set(one, b"forever")
    await subject.backend.set_many({many: b"forever"}, ttl=None)
    await subject.elapse(0.3)
    assert await subject.backend.get_many([one, many]) == [b"forever", b"forever"]


@pytest.mark.parametrize("ttl", [0, -1.5])
async def test_ttl_zero_or_less_is_not_stored(subject: Subject, ttl: float) -> None:
    fresh, old, many = subject.key("fresh"), subject.key("old"), subject.key("many")
    await subject.backend.set_many({old: b"old", many: b"old"})
    await subject.backend.set(fresh, b"v", ttl=ttl)
    await subject.backend.set(old, b"new", ttl=ttl)
    await subject.backend.set_many({many: b"new", subject.key("x"): b"x"}, ttl=ttl)
    assert await subject.backend.get_many([fresh, old, many, subject.key("x")]) == [None] * 4


async def test_delete_returns_how_many_existed(subject: Subject) -> None:
    a, b = subject.key("a"), subject.key("b")
    await subject.backend.set_many({a: b"1", b: b"2"})
    assert await subject.backend.delete(a, b, subject.key("absent")) == 2
    assert await subject.backend.get_many([a, b]) == [None, None]
    assert await subject.backend.delete(a) == 0
    assert await subject.backend.delete() == 0


async def test_clear_removes_only_its_prefix(subject: Subject) -> None:
    inside = {subject.key(f"ns:{i}"): b"v" for i in range(1200)}
    near = {subject.key("nsx"): b"n", subject.key("other:1"): b"o", subject.key("n"): b"n"}
    await subject.backend.set_many({**inside, **near})
    assert await subject.backend.clear(subject.key("ns:")) == len(inside)
    assert await subject.backend.get_many(list(inside)) == [None] * len(inside)
    assert await subject.backend.get_many(list(near)) == list(near.values())
    assert await subject.backend.clear(subject.key("nothing-here:")) == 0


@pytest.mark.parametrize(("special", "decoy"), [("?", "z"), ("*", "zz"), ("[s]", "s"), ("\\", "*")])
async def test_clear_takes_glob_characters_literally(
    subject: Subject, special: str, decoy: str
) -> None:
    target, other = subject.key(f"g{special}1"), subject.key(f"g{decoy}1")
    await subject.backend.set_many({target: b"t", other: b"o"})
    assert await subject.backend.clear(subject.key(f"g{special}")) == 1
    assert await subject.backend.get_many([target, other]) == [None, b"o"]


async def test_ping(subject: Subject) -> None:
    assert await subject.backend.ping() is True


async def test_aclose_is_idempotent(subject: Subject) -> None:
    await subject.backend.set(subject.key("k"), b"v")
    await subject.backend.aclose()
    await subject.backend.aclose()


async def test_lease_is_exclusive_until_released(subject: Subject) -> None:
    backend = subject.backend
    assert isinstance(backend, MemoryBackend | RedisBackend)
    lease = subject.key("lease")
    assert await backend.acquire_lease(lease, 5.0) is True
    assert await backend.acquire_lease(lease, 5.0) is False
    await backend.release_lease(lease)
    assert await backend.acquire_lease(lease, 5.0) is True
    await backend.release_lease(lease)
    await backend.release_lease(lease)


async def test_lease_expires(subject: Subject) -> None:
    backend = subject.backend
    assert isinstance(backend, MemoryBackend | RedisBackend)
    lease = subject.key("lease")
    assert await backend.acquire_lease(lease, 0.1) is True
    await subject.elapse(0.1)
    await eventually(lambda: backend.acquire_lease(lease, 5.0), EXPIRY_GRACE)
    await backend.release_lease(lease)


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
