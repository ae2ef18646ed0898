"""Who closes what: a Cache closes what it made (also when dropped), never what it was given;
connections counted on a private Redis with CLIENT LIST."""

from __future__ import annotations

import gc

import pytest
import redis.asyncio

from llmstash.caching import Cache, MemoryBackend, RedisBackend
from llmstash.exceptions import InvalidRequestError
from tests._fixtures_redis import RedisServer, eventually, sync_client

pytestmark = pytest.mark.redis


def clients(server: RedisServer) -> int:
    """Connections to ``server``, less the one asking."""
    with sync_client(server.port) as probe:
        return len(probe.client_list()) - 1


async def test_caches_made_per_request_and_dropped_leave_no_connection(
    private_redis: RedisServer,
) -> None:
    for i in range(100):
        cache = Cache(type="redis", host=private_redis.host, port=private_redis.port)
        assert await cache.alookup(f"k{i}") is None
        await cache.astore({f"k{i}": b"v"}, 60)
        del cache
    gc.collect()

    async def settled() -> bool:
        gc.collect()
        return clients(private_redis) == 0

    await eventually(settled)


async def test_backend_of_a_callers_client_closes_its_own_reader(
    private_redis: RedisServer,
) -> None:
    client = redis.asyncio.Redis(host=private_redis.host, port=private_redis.port)
    try:
        backend = RedisBackend(client)
        await backend.lookup(["x"], 1.0)  # opens the pipelined lookup connection
        await client.ping()
        before = clients(private_redis)
        await backend.aclose()

        async def reader_closed() -> bool:
            return clients(private_redis) == before - 1

        await eventually(reader_closed)
        assert await client.ping()  # the caller's client is still the caller's, and open
    finally:
        await client.aclose()


async def test_aclose_leaves_a_backend_passed_in_open() -> None:
    class Tracking(MemoryBackend):
        closed = False

        async def aclose(self) -> None:
            type(self).closed = True

    backend = Tracking()
    async with Cache(backend=backend) as cache:
        await cache.astore({"k": b"v"}, None)
    assert Tracking.closed is False

    made = Cache(type="redis", host="127.0.0.1", port=1)  # never connects: nothing is asked
    await made.aclose()


async def test_async_with_closes_what_the_cache_made(private_redis: RedisServer) -> None:
    async with Cache(type="redis", host=private_redis.host, port=private_redis.port) as cache:
        await cache.astore({"k": b"v"}, 60)
        assert await cache.alookup("k") is None  # bytes that are not an entry: a miss
        assert clients(private_redis) >= 1

    async def closed() -> bool:
        return clients(private_redis) == 0

    await eventually(closed)


def test_positional_arguments_bind_as_in_litellm() -> None:
    # LiteLLM's order: type, mode, host, port, password, namespace, ttl, ...
    cache = Cache("redis", "default_off", "127.0.0.1", "6390", "secret", "ns", 30)
    assert cache.type == "redis" and cache.mode == "default_off"
    assert cache.namespace == "ns" and cache.ttl == 30
    with pytest.raises(TypeError):
        Cache("local", "default_on", None, None, None, None, None, None, None, None, None, 1)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_size": "10"}, "max_size"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"lookup_timeout": -1}, "lookup_timeout"),
        ({"write_timeout": float("nan")}, "write_timeout"),
        ({"breaker_threshold": 0}, "breaker_threshold"),
        ({"breaker_threshold": 2.5}, "breaker_threshold"),
        ({"ttl": float("inf")}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
        ({"ttl": 1e16}, "ttl"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": True}, "ttl"),
        ({"lease": float("inf")}, "lease"),
        ({"namespace": 3}, "namespace"),
        ({"backend": object()}, "backend"),
    ],
)
def test_bad_constructor_arguments_are_named(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidRequestError, match=named):
        Cache(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": 5},
        {"redis_startup_nodes": [{"h": 1}]},
        {"sentinel_nodes": [("a",)], "service_name": "m"},
        {"url": "redis://:hunter2-secret@h:notaport/0"},
    ],
)
def test_bad_connection_settings_are_named_without_secrets(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError, match="connection settings") as raised:
        Cache(type="redis", **kwargs)  # type: ignore[arg-type]
    assert "hunter2" not in str(raised.value)
    assert raised.value.__cause__ is None
