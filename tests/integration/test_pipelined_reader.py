"""The pipelined lookup connection: replies matched to requests in order, whatever happens."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from llmstash.caching._redis import RedisBackend
from llmstash.caching._resp import PipelinedReader, pack
from llmstash.exceptions import CacheBackendError

pytestmark = pytest.mark.redis


def test_pack_is_resp():
    assert pack(b"GET", b"k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    assert pack(b"MGET", b"a", b"") == b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$0\r\n\r\n"


async def test_concurrent_lookups_share_one_connection(private_redis):
    client = aioredis.Redis(host=private_redis.host, port=private_redis.port)
    reader = PipelinedReader(private_redis.host, private_redis.port)
    try:
        await client.mset({f"k{i}": f"v{i}".encode() for i in range(1000)})
        values = await asyncio.gather(*[reader.get(f"k{i}") for i in range(1000)])
        assert values == [f"v{i}".encode() for i in range(1000)]
        many = await reader.get_many(["k5", "missing", "k7"])
        assert many == [b"v5", None, b"v7"]
        clients = await client.client_list()
        assert len(clients) == 2  # the checking client and the one pipelined connection
    finally:
        reader.close()
        await client.aclose()


async def test_a_timed_out_reply_is_skipped_in_turn(redis_server_factory):
    server = redis_server_factory("--enable-debug-command", "yes")
    client = aioredis.Redis(host=server.host, port=server.port)
    reader = PipelinedReader(server.host, server.port)
    try:
        await client.set("a", b"1")
        await client.set("b", b"2")
        assert await reader.get("a") == b"1"
        sleeper = asyncio.ensure_future(client.execute_command("DEBUG", "SLEEP", "0.3"))
        await asyncio.sleep(0.05)
        with pytest.raises(CacheBackendError, match="Timeout"):
            await reader.get("a", 0.05)
        await sleeper
        # The late reply to "a" arrives first and must not be taken for "b".
        assert await reader.get("b", 1.0) == b"2"
    finally:
        reader.close()
        await client.aclose()


async def test_a_refused_command_fails_alone(private_redis):
    client = aioredis.Redis(host=private_redis.host, port=private_redis.port)
    reader = PipelinedReader(private_redis.host, private_redis.port)
    try:
        await client.rpush("a-list", b"x")
        await client.set("s", b"ok")
        bad, good = await asyncio.gather(
            reader.get("a-list"), reader.get("s"), return_exceptions=True
        )
        assert isinstance(bad, CacheBackendError) and "WRONGTYPE" in str(bad)
        assert good == b"ok"
    finally:
        reader.close()
        await client.aclose()


async def test_auth_and_database(redis_server_factory):
    server = redis_server_factory("--requirepass", "pw with space")
    client = aioredis.Redis(host=server.host, port=server.port, password="pw with space", db=3)
    try:
        await client.set("k", b"in db 3")
        backend = RedisBackend.from_params(
            host=server.host, port=server.port, password="pw with space", db=3
        )
        assert await backend.get("k") == b"in db 3"
        assert await backend.lookup(["k", "nope"], 1.0) == [b"in db 3", None]
        await backend.aclose()
        wrong = PipelinedReader(server.host, server.port, password="wrong")
        with pytest.raises(CacheBackendError, match="WRONGPASS"):
            await wrong.get("k")
        wrong.close()
    finally:
        await client.aclose()


async def test_a_silent_server_fails_each_lookup_within_its_budget():
    import socket
    import time

    with socket.socket() as listener:  # accepts connections, never answers (not even AUTH)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        reader = PipelinedReader("127.0.0.1", port, password="pw")
        try:
            t0 = time.perf_counter()
            results = await asyncio.gather(
                *[reader.get("k", 0.05) for _ in range(4)], return_exceptions=True
            )
            waited = time.perf_counter() - t0
        finally:
            reader.close()
    assert all(isinstance(r, CacheBackendError) for r in results)
    assert waited < 1.0  # each waits its own 50 ms budget, not a connect timeout in turn


async def test_a_connection_that_stops_answering_is_replaced(redis_server_factory):
    server = redis_server_factory("--enable-debug-command", "yes")
    client = aioredis.Redis(host=server.host, port=server.port)
    reader = PipelinedReader(server.host, server.port)
    try:
        await client.set("b", b"2")
        assert await reader.get("b") == b"2"
        first = reader._proto
        sleeper = asyncio.ensure_future(client.execute_command("DEBUG", "SLEEP", "0.3"))
        await asyncio.sleep(0.05)
        with pytest.raises(CacheBackendError, match="Timeout"):
            await reader.get("b", 0.05)
        await sleeper
        assert await reader.get("b", 1.0) == b"2"
        assert reader._proto is not first  # given up after silence, a new one opened
    finally:
        reader.close()
        await client.aclose()
