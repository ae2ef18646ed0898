"""RedisBackend against real topologies: passwords, URLs, a cluster with keys in every slot
range, Sentinel, and servers that are down, silent or restarted."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, ResponseError

from llmstash.caching._redis import RedisBackend
from llmstash.exceptions import CacheBackendError
from tests._fixtures_redis import ClusterServers, RedisServer, SentinelServers, sync_client

pytestmark = pytest.mark.redis

PASSWORD = "s3cret with spaces"
FAILURE_BOUND = 3.0
"""Seconds within which a command to an unusable server must fail, given short socket timeouts."""
SHORT_TIMEOUTS: dict[str, Any] = {"socket_timeout": 0.3, "socket_connect_timeout": 0.3}


@pytest.fixture
def locked_redis(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_server_factory("--requirepass", PASSWORD)


async def roundtrip(backend: RedisBackend) -> bytes | None:
    try:
        await backend.set("k", b"v")
        return await backend.get("k")
    finally:
        await backend.aclose()


async def test_from_params_with_password_and_port_as_string(locked_redis: RedisServer) -> None:
    backend = RedisBackend.from_params(
        host=locked_redis.host, port=str(locked_redis.port), password=PASSWORD
    )
    assert await roundtrip(backend) == b"v"


async def test_from_params_with_username_and_db(locked_redis: RedisServer) -> None:
    backend = RedisBackend.from_params(
        host=locked_redis.host, port=locked_redis.port, username="default", password=PASSWORD, db=3
    )
    assert await roundtrip(backend) == b"v"
    with sync_client(locked_redis.port, password=PASSWORD, db=3) as client:
        assert client.get("k") == b"v"
    with sync_client(locked_redis.port, password=PASSWORD, db=0) as client:
        assert client.get("k") is None


@pytest.mark.parametrize("password", [None, "wrong"])
async def test_a_missing_or_wrong_password_is_a_backend_error(
    locked_redis: RedisServer, password: str | None
) -> None:
    backend = RedisBackend.from_params(
        host=locked_redis.host, port=locked_redis.port, password=password
    )
    refusal = "NOAUTH" if password is None else "WRONGPASS"
    try:
        with pytest.raises(CacheBackendError, match=refusal):
            await backend.get("k")
        assert await backend.ping() is False
    finally:
        await backend.aclose()


async def test_from_url_with_password(locked_redis: RedisServer) -> None:
    url = f"redis://:s3cret%20with%20spaces@{locked_redis.host}:{locked_redis.port}/2"
    assert await roundtrip(RedisBackend.from_url(url)) == b"v"
    with sync_client(locked_redis.port, password=PASSWORD, db=2) as client:
        assert client.get("k") == b"v"


async def test_from_url_over_a_unix_socket(
    redis_server_factory: Callable[..., RedisServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("sock") / "redis.sock"
    redis_server_factory("--unixsocket", str(path))
    assert await roundtrip(RedisBackend.from_url(f"unix://{path}")) == b"v"


async def test_kwargs_reach_the_client(private_redis: RedisServer) -> None:
    backend = RedisBackend.from_params(
        host=private_redis.host, port=private_redis.port, client_name="llmstash-kwargs"
    )
    try:
        assert await backend.ping()
        with sync_client(private_redis.port) as client:
            assert "llmstash-kwargs" in [c["name"] for c in client.client_list()]
    finally:
        await backend.aclose()


# -- cluster ------------------------------------------------------------------------------------


@pytest.fixture
async def cluster_backend(redis_cluster: ClusterServers) -> AsyncIterator[RedisBackend]:
    backend = RedisBackend.from_cluster(
        [{"host": n["host"], "port": str(n["port"])} for n in redis_cluster.startup_nodes]
    )
    try:
        yield backend
    finally:
        await backend.aclose()


def count_on_each_node(redis_cluster: ClusterServers, prefix: str) -> list[int]:
    counts = []
    for server in redis_cluster.servers:
        with sync_client(server.port) as client:
            counts.append(sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=1000)))
    return counts


@pytest.mark.cluster
async def test_cluster_multi_key_operations_span_every_node(
    redis_cluster: ClusterServers, cluster_backend: RedisBackend
) -> None:
    prefix = f"llmstash-test:{uuid.uuid4().hex}:"
    keys = [f"{prefix}{i}" for i in range(300)]
    values = {k: k.encode() for k in keys}

    # The keys are spread over many slots, so plain multi-key commands cannot serve them.
    raw = RedisCluster(startup_nodes=[ClusterNode(s.host, s.port) for s in redis_cluster.servers])
    try:
        assert len({raw.keyslot(k) for k in keys}) > 100
        with pytest.raises((RedisClusterException, ResponseError)):
            await raw.mget(keys)
        with pytest.raises((RedisClusterException, ResponseError)):
            await raw.execute_command("UNLINK", *keys[:50])
    finally:
        await raw.aclose()

    await cluster_backend.set_many(values, ttl=60)
    counts = count_on_each_node(redis_cluster, prefix)
    assert sum(counts) == len(keys) and all(counts), counts

    missing = f"{prefix}missing"
    assert await cluster_backend.get_many([*keys, missing]) == [*values.values(), None]
    assert await cluster_backend.delete(*keys[:100], missing) == 100
    assert await cluster_backend.get_many(keys[:100]) == [None] * 100
    assert await cluster_backend.clear(prefix) == 200
    assert count_on_each_node(redis_cluster, prefix) == [0, 0, 0]


@pytest.mark.cluster
async def test_cluster_lease_uses_the_keys_node(cluster_backend: RedisBackend) -> None:
    leases = [f"llmstash-test:{uuid.uuid4().hex}:lease:{i}" for i in range(10)]
    for lease in leases:
        assert await cluster_backend.acquire_lease(lease, 5.0)
    for lease in leases:
        await cluster_backend.release_lease(lease)
        assert await cluster_backend.acquire_lease(lease, 0.1)
    assert await cluster_backend.delete(*leases) == len(leases)


# -- sentinel -----------------------------------------------------------------------------------


async def test_sentinel_resolves_the_master(redis_sentinel: SentinelServers) -> None:
    backend = RedisBackend.from_sentinel(
        [(h, str(p)) for h, p in redis_sentinel.sentinel_nodes],
        redis_sentinel.service_name,
        password=redis_sentinel.password,
        sentinel_password=redis_sentinel.sentinel_password,
    )
    key = f"llmstash-test:{uuid.uuid4().hex}"
    try:
        await backend.set(key, b"through sentinel")
    finally:
        await backend.aclose()
    with sync_client(redis_sentinel.master.port, password=redis_sentinel.password) as master:
        assert master.get(key) == b"through sentinel"
        master.delete(key)


@pytest.mark.parametrize("wrong", ["password", "sentinel_password"])
async def test_sentinel_passwords_go_where_they_belong(
    redis_sentinel: SentinelServers, wrong: str
) -> None:
    passwords = {
        "password": redis_sentinel.password,
        "sentinel_password": redis_sentinel.sentinel_password,
        wrong: "wrong",
    }
    backend = RedisBackend.from_sentinel(
        redis_sentinel.sentinel_nodes, redis_sentinel.service_name, **passwords
    )
    # A wrong master password is refused by the master; a wrong Sentinel password leaves
    # the Sentinel unable to name the master.
    expected = "AuthenticationError" if wrong == "password" else "MasterNotFound"
    try:
        with pytest.raises(CacheBackendError, match=expected):
            await backend.get("k")
    finally:
        await backend.aclose()


async def test_sentinel_with_an_unknown_service_is_a_backend_error(
    redis_sentinel: SentinelServers,
) -> None:
    backend = RedisBackend.from_sentinel(
        redis_sentinel.sentinel_nodes,
        "no-such-service",
        sentinel_password=redis_sentinel.sentinel_password,
    )
    try:
        with pytest.raises(CacheBackendError, match="MasterNotFound"):
            await backend.get("k")
    finally:
        await backend.aclose()


# -- servers that are down, silent or restarted ---------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def unusable_backend(kind: str, port: int) -> RedisBackend:
    if kind == "params":
        return RedisBackend.from_params(host="127.0.0.1", port=port, **SHORT_TIMEOUTS)
    if kind == "url":
        return RedisBackend.from_url(f"redis://127.0.0.1:{port}/0", **SHORT_TIMEOUTS)
    if kind == "cluster":
        return RedisBackend.from_cluster([{"host": "127.0.0.1", "port": port}], **SHORT_TIMEOUTS)
    return RedisBackend.from_sentinel([("127.0.0.1", port)], "mymaster", **SHORT_TIMEOUTS)


KINDS = ["params", "url", "cluster", "sentinel"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_dead_port_fails_fast(kind: str, free_tcp_port: int) -> None:
    backend = unusable_backend(kind, free_tcp_port)
    try:
        with anyio.fail_after(FAILURE_BOUND), pytest.raises(CacheBackendError):
            await backend.get("k")
        with anyio.fail_after(FAILURE_BOUND), pytest.raises(CacheBackendError):
            await backend.get_many(["a", "b"])
        with anyio.fail_after(FAILURE_BOUND):
            assert await backend.ping() is False
    finally:
        await backend.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_silent_server_fails_within_the_socket_timeout(kind: str, silent_port: int) -> None:
    backend = unusable_backend(kind, silent_port)
    try:
        with anyio.fail_after(FAILURE_BOUND), pytest.raises(CacheBackendError, match="Timeout"):
            await backend.get("k")
    finally:
        await backend.aclose()


async def test_the_first_call_after_a_restart_succeeds(
    private_redis: RedisServer,
) -> None:
    backend = RedisBackend.from_params(
        host=private_redis.host, port=private_redis.port, **SHORT_TIMEOUTS
    )
    try:
        await backend.set("k", b"before")
        private_redis.stop()
        with anyio.fail_after(FAILURE_BOUND), pytest.raises(CacheBackendError):
            await backend.get("k")
        private_redis.start()
        assert await backend.get("k") is None
        await backend.set("k", b"after")
        private_redis.restart()
        # The pooled connection is dead; the one retry reconnects.
        assert await backend.get("k") is None
    finally:
        await backend.aclose()
