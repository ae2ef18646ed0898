"""The contract every cache backend keeps, as a pytest suite you run against your own.

Subclass :class:`BackendContract` in a test module and override one fixture,
``make_backend``, returning a callable that makes a new backend (each owning its
connections)::

    import pytest
    from llmstash.testing.backend_contract import BackendContract

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def make_backend(self):
            return lambda: MyBackend("memcached://127.0.0.1:11211")

The suite is async and runs on anyio's pytest plugin (installed with anyio; no other plugin
needed). Each test uses keys under a prefix of its own and clears it afterwards, so a shared
server is fine. What it checks is the contract written in
:class:`~llmstash.caching.CacheBackend`: values are arbitrary bytes and come back as ``bytes``;
``get_many`` keeps order and answers ``None`` for gaps; ``ttl=None`` never expires and
storing again without a ttl removes an earlier expiry; ``ttl <= 0`` stores nothing and
removes what was there; a positive ttl, however small, stores and then expires; ``delete``
and ``clear`` count what they removed; ``clear(prefix)`` removes exactly the keys starting
with ``prefix``, glob characters included literally; ``aclose`` is idempotent. Optional
capabilities are checked when the backend has them (:class:`~llmstash.caching.SupportsLease`,
:class:`~llmstash.caching.SupportsBudgetedLookup`, :class:`~llmstash.caching.SupportsScan`,
:class:`~llmstash.caching.SupportsCounters`) and skipped otherwise.

Override :meth:`BackendContract.elapse` to move a fake clock instead of sleeping, and
:attr:`BackendContract.expiry_grace` for a store that expires keys lazily.

This module imports pytest; ``import llmstash.testing`` alone does not.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from llmstash.caching._backend import (
    CacheBackend,
    SupportsBudgetedLookup,
    SupportsCounters,
    SupportsLease,
    SupportsScan,
)

__all__ = ["BackendContract"]


async def _eventually(check: Callable[[], Awaitable[bool]], within: float) -> None:
    with anyio.fail_after(within + 5.0):
        while not await check():  # noqa: ASYNC110 -- polling a store, not an event
            await anyio.sleep(0.02)


class BackendContract:
    """The shared behaviour of every :class:`~llmstash.caching.CacheBackend`, as tests.

    Subclass it (the subclass's name must start with ``Test``) and override the
    ``make_backend`` fixture. Tests get ``backend`` (made for the test, closed after it) and
    build keys with :meth:`key`."""

    pytestmark = pytest.mark.anyio

    expiry_grace: float = 3.0
    """Seconds past its ttl that the store may take before an expired key reads as gone."""
    expect_local: bool | None = None
    """What ``is_local`` must be, when the subclass knows (``None``: any bool)."""

    prefix: str = ""

    @pytest.fixture
    def make_backend(self) -> Callable[[], CacheBackend]:
        """Override: a callable making a new backend of the kind under test."""
        raise NotImplementedError("override the make_backend fixture of BackendContract")

    @pytest.fixture
    async def backend(self, make_backend: Callable[[], CacheBackend]) -> AsyncIterator[Any]:
        self.prefix = f"llmstash-contract:{uuid.uuid4().hex}:"
        self.make = make_backend
        backend = make_backend()
        try:
            yield backend
        finally:
            await backend.aclose()
            cleaner = make_backend()  # the test may have closed its own
            try:
                await cleaner.clear(self.prefix)
            finally:
                await cleaner.aclose()

    def key(self, name: str) -> str:
        """A key of this test (under its own prefix)."""
        return self.prefix + name

    async def elapse(self, seconds: float) -> None:
        """Let ``seconds`` pass (real time by default; override for a fake clock)."""
        await anyio.sleep(seconds)

    async def assert_expires(self, backend: CacheBackend, keys: list[str], ttl: float) -> None:
        """Once ``ttl`` has passed, ``keys`` read as gone (within :attr:`expiry_grace`)."""
        await self.elapse(ttl)

        async def gone() -> bool:
            return await backend.get_many(keys) == [None] * len(keys)

        await _eventually(gone, self.expiry_grace)

    # -- the protocol ---------------------------------------------------------------------------

    async def test_is_a_cache_backend(self, backend: CacheBackend) -> None:
        assert isinstance(backend, CacheBackend)
        assert isinstance(backend.is_local, bool)
        if self.expect_local is not None:
            assert backend.is_local is self.expect_local

    @pytest.mark.parametrize(
        "value",
        [b"", b"\x00", b"\xff\xfe\x80 not utf-8", bytes(range(256)), "héllo ✓".encode()]
        + [b"x" * 200_000],
        ids=["empty", "nul", "not-utf8", "all-bytes", "utf8", "200kB"],
    )
    async def test_roundtrip_of_arbitrary_bytes(self, backend: CacheBackend, value: bytes) -> None:
        key = self.key("v")
        await backend.set(key, value)
        got = await backend.get(key)
        assert type(got) is bytes
        assert got == value

    async def test_keys_may_hold_any_text(self, backend: CacheBackend) -> None:
        keys = [self.key(name) for name in ("spaces and : colons", "ünïcödé ✓", "{braces}", "")]
        await backend.set_many({k: k.encode() for k in keys})
        assert await backend.get_many(keys) == [k.encode() for k in keys]

    async def test_missing_key_is_none(self, backend: CacheBackend) -> None:
        assert await backend.get(self.key("absent")) is None

    async def test_set_overwrites(self, backend: CacheBackend) -> None:
        key = self.key("k")
        await backend.set(key, b"one")
        await backend.set(key, b"two")
        assert await backend.get(key) == b"two"

    async def test_get_many_keeps_order_with_gaps(self, backend: CacheBackend) -> None:
        a, b, c = self.key("a"), self.key("b"), self.key("c")
        await backend.set_many({a: b"A", c: b""})
        assert await backend.get_many([a, b, c, a]) == [b"A", None, b"", b"A"]
        assert await backend.get_many([b]) == [None]
        assert await backend.get_many([]) == []

    async def test_set_many_with_ttl_expires(self, backend: CacheBackend) -> None:
        keys = [self.key(f"t{i}") for i in range(5)]
        await backend.set_many({k: k.encode() for k in keys}, ttl=0.2)
        assert await backend.get_many(keys) == [k.encode() for k in keys]
        await self.assert_expires(backend, keys, 0.2)

    async def test_set_with_ttl_expires(self, backend: CacheBackend) -> None:
        key = self.key("t")
        await backend.set(key, b"v", ttl=0.2)
        assert await backend.get(key) == b"v"
        await self.assert_expires(backend, [key], 0.2)

    async def test_a_ttl_below_a_millisecond_is_kept_briefly(self, backend: CacheBackend) -> None:
        key = self.key("t")
        await backend.set(key, b"v", ttl=0.0001)
        await self.assert_expires(backend, [key], 0.0001)

    async def test_ttl_none_never_expires(self, backend: CacheBackend) -> None:
        one, many = self.key("one"), self.key("many")
        await backend.set(one, b"short", ttl=0.1)
        await backend.set_many({many: b"short"}, ttl=0.1)
        # Storing again without a ttl removes the earlier expiry.
        await backend.set(one, b"forever")
        await backend.set_many({many: b"forever"}, ttl=None)
        await self.elapse(0.3)
        assert await backend.get_many([one, many]) == [b"forever", b"forever"]

    @pytest.mark.parametrize("ttl", [0, -1.5])
    async def test_ttl_zero_or_less_is_not_stored(self, backend: CacheBackend, ttl: float) -> None:
        fresh, old, many, x = self.key("fresh"), self.key("old"), self.key("many"), self.key("x")
        await backend.set_many({old: b"old", many: b"old"})
        await backend.set(fresh, b"v", ttl=ttl)
        await backend.set(old, b"new", ttl=ttl)
        await backend.set_many({many: b"new", x: b"x"}, ttl=ttl)
        assert await backend.get_many([fresh, old, many, x]) == [None] * 4

    async def test_delete_returns_how_many_existed(self, backend: CacheBackend) -> None:
        a, b = self.key("a"), self.key("b")
        await backend.set_many({a: b"1", b: b"2"})
        assert await backend.delete(a, b, self.key("absent")) == 2
        assert await backend.get_many([a, b]) == [None, None]
        assert await backend.delete(a) == 0
        assert await backend.delete() == 0

    async def test_clear_removes_only_its_prefix(self, backend: CacheBackend) -> None:
        inside = {self.key(f"ns:{i}"): b"v" for i in range(1200)}
        near = {self.key("nsx"): b"n", self.key("other:1"): b"o", self.key("n"): b"n"}
        await backend.set_many({**inside, **near})
        assert await backend.clear(self.key("ns:")) == len(inside)
        assert await backend.get_many(list(inside)) == [None] * len(inside)
        assert await backend.get_many(list(near)) == list(near.values())
        assert await backend.clear(self.key("nothing-here:")) == 0

    @pytest.mark.parametrize(
        ("special", "decoy"), [("?", "z"), ("*", "zz"), ("[s]", "s"), ("\\", "*"), ("%", "x")]
    )
    async def test_clear_takes_glob_characters_literally(
        self, backend: CacheBackend, special: str, decoy: str
    ) -> None:
        target, other = self.key(f"g{special}1"), self.key(f"g{decoy}1")
        await backend.set_many({target: b"t", other: b"o"})
        assert await backend.clear(self.key(f"g{special}")) == 1
        assert await backend.get_many([target, other]) == [None, b"o"]

    async def test_ping(self, backend: CacheBackend) -> None:
        assert await backend.ping() is True

    async def test_aclose_is_idempotent(self, backend: CacheBackend) -> None:
        await backend.set(self.key("k"), b"v")
        await backend.aclose()
        await backend.aclose()

    async def test_two_backends_of_one_store_share_entries(self, backend: CacheBackend) -> None:
        other = self.make()
        try:
            await backend.set(self.key("shared"), b"v")
            got = await other.get(self.key("shared"))
            # A store private to each backend (in-process) answers None; a shared one b"v".
            assert got in (None, b"v")
        finally:
            await other.aclose()

    # -- optional capabilities ----------------------------------------------------------------

    async def test_budgeted_lookup(self, backend: CacheBackend) -> None:
        if not isinstance(backend, SupportsBudgetedLookup):
            pytest.skip("not a SupportsBudgetedLookup")
        a, b = self.key("a"), self.key("b")
        await backend.set(a, b"A")
        assert await backend.lookup([a], 5.0) == [b"A"]
        assert await backend.lookup([a, b, a], 5.0) == [b"A", None, b"A"]

    async def test_lease_is_exclusive_until_released(self, backend: CacheBackend) -> None:
        if not isinstance(backend, SupportsLease):
            pytest.skip("not a SupportsLease")
        lease = self.key("lease")
        assert await backend.lease_held(lease) is False
        assert await backend.acquire_lease(lease, 5.0) is True
        assert await backend.lease_held(lease) is True
        assert await backend.acquire_lease(lease, 5.0) is False
        await backend.release_lease(lease)
        assert await backend.lease_held(lease) is False
        assert await backend.acquire_lease(lease, 5.0) is True
        await backend.release_lease(lease)
        await backend.release_lease(lease)

    async def test_lease_expires(self, backend: CacheBackend) -> None:
        if not isinstance(backend, SupportsLease):
            pytest.skip("not a SupportsLease")
        lease = self.key("lease")
        assert await backend.acquire_lease(lease, 0.1) is True
        await self.elapse(0.1)
        await _eventually(lambda: backend.acquire_lease(lease, 5.0), self.expiry_grace)
        await backend.release_lease(lease)

    async def test_scan_lists_live_keys_of_a_prefix(self, backend: CacheBackend) -> None:
        if not isinstance(backend, SupportsScan):
            pytest.skip("not a SupportsScan")
        inside = {self.key(f"s:{i:04d}") for i in range(1100)}
        await backend.set_many(dict.fromkeys(inside, b"v"))
        await backend.set_many({self.key("sx"): b"v", self.key("s"): b"v"})
        await backend.set(self.key("s:gone"), b"v", ttl=0.05)
        await self.elapse(0.05)

        async def listed() -> bool:
            seen: set[str] = set()
            async for batch in backend.scan(self.key("s:"), batch=300):
                assert isinstance(batch, list)
                seen.update(batch)
            return seen == inside

        await _eventually(listed, self.expiry_grace)

    async def test_counters_add_up_per_bucket(self, backend: CacheBackend) -> None:
        if not isinstance(backend, SupportsCounters):
            pytest.skip("not a SupportsCounters")
        one, two, absent = self.key("c1"), self.key("c2"), self.key("c3")
        await backend.add_counters(one, {"hits": 2, "misses": 1}, 60)
        await backend.add_counters(one, {"hits": 3, "bytes": 0.5}, 60)
        await backend.add_counters(two, {"hits": 1}, 60)
        assert await backend.read_counters([one, absent, two]) == [
            {"hits": 5, "misses": 1, "bytes": 0.5},
            {},
            {"hits": 1},
        ]
        assert await backend.read_counters([]) == []

    async def test_counters_expire(self, backend: CacheBackend) -> None:
        if not isinstance(backend, SupportsCounters):
            pytest.skip("not a SupportsCounters")
        bucket = self.key("c")
        await backend.add_counters(bucket, {"hits": 1}, 0.2)
        await self.elapse(0.2)

        async def gone() -> bool:
            return await backend.read_counters([bucket]) == [{}]

        await _eventually(gone, self.expiry_grace)
