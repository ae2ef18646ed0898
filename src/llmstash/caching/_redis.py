"""Redis storage for the cache, on ``redis.asyncio``: one server, a cluster, or through Sentinel.

The only module of llmstash that imports ``redis``; it is imported when a Redis cache is made.
"""

from __future__ import annotations

import math
import secrets
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, cast

import anyio
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from llmstash.exceptions import CacheBackendError

from ._resp import PipelinedReader

__all__ = ["RedisBackend"]

_GLOB_ESCAPES = str.maketrans({c: "\\" + c for c in "\\*?[]"})
_SCAN_COUNT = 1000
_UNLINK_BATCH = 500
# RedisClusterException is not a RedisError.
_ERRORS = (RedisError, RedisClusterException)
_RELEASE_LEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def _px(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


def _retry_once(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"retry": Retry(NoBackoff(), 1), **kwargs}


def _failed(command: str, exc: Exception) -> CacheBackendError:
    return CacheBackendError(f"Redis {command} failed: {type(exc).__name__}: {exc}")


class RedisBackend:
    """A :class:`~llmstash.caching._backend.CacheBackend` on Redis: bytes in, bytes out.

    Works with one server, a Sentinel-managed master and a Redis Cluster. On a cluster, the
    multi-key operations are split by hash slot and pipelined, so keys in different slots never
    fail with ``CROSSSLOT``. Redis errors surface as
    :class:`~llmstash.exceptions.CacheBackendError`.

    ``RedisBackend(client)`` uses a client you made and leaves it open on :meth:`aclose`; the
    ``from_*`` constructors make a client that :meth:`aclose` closes. No constructor does I/O:
    connections open on first use. Extra keyword arguments of the ``from_*`` constructors go to
    the ``redis.asyncio`` client (``socket_timeout``, ``socket_connect_timeout``, ``retry``,
    ``max_connections``, ...). Unless ``retry`` is given, a command that fails on a broken
    connection is retried once, at once, on a new one (enough for a Redis that restarted; on a
    cluster, after reloading the slot map); redis-py's defaults retry with backoff for seconds,
    which a cache lookup cannot use. Responses must stay bytes, so ``decode_responses=True`` is
    refused.
    """

    __slots__ = ("__weakref__", "_client", "_leases", "_owned", "_reader")

    is_local: bool = False
    """Lookups wait on the network."""

    def __init__(self, client: Redis | RedisCluster) -> None:
        if client.get_encoder().decode_responses:
            raise ValueError("RedisBackend needs a client with decode_responses=False")
        self._client = client
        self._owned: list[Redis | RedisCluster | Sentinel] = []
        self._leases: dict[str, str] = {}
        self._reader = _fast_reader(client)
        if self._reader is not None:
            # The lookup connection is this backend's own, whoever owns the client: a backend
            # dropped without aclose() (a Cache made per request) must not leave it open.
            weakref.finalize(self, self._reader.close)

    @classmethod
    def from_params(
        cls,
        host: str = "localhost",
        port: int | str = 6379,
        password: str | None = None,
        db: int = 0,
        username: str | None = None,
        ssl: bool = False,
        **kwargs: Any,
    ) -> RedisBackend:
        """A backend on one server, owning its connection pool. ``port`` may be a string."""
        client = Redis(
            host=host,
            port=int(port),
            password=password,
            db=db,
            username=username,
            ssl=ssl,
            **_retry_once(kwargs),
        )
        return cls._owning(client)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisBackend:
        """A backend on the server at ``url`` (``redis://``, ``rediss://`` or ``unix://``),
        owning its connection pool."""
        return cls._owning(Redis.from_url(url, **_retry_once(kwargs)))

    @classmethod
    def from_cluster(
        cls,
        startup_nodes: Sequence[Mapping[str, Any]],
        password: str | None = None,
        **kwargs: Any,
    ) -> RedisBackend:
        """A backend on a Redis Cluster found through ``startup_nodes``
        (``[{"host": ..., "port": ...}, ...]``; ports may be strings)."""
        nodes = [ClusterNode(str(node["host"]), int(node["port"])) for node in startup_nodes]
        cluster = RedisCluster(startup_nodes=nodes, password=password, **_retry_once(kwargs))
        return cls._owning(cluster)

    @classmethod
    def from_sentinel(
        cls,
        sentinel_nodes: Sequence[tuple[str, int | str]],
        service_name: str,
        password: str | None = None,
        sentinel_password: str | None = None,
        **kwargs: Any,
    ) -> RedisBackend:
        """A backend on the master that the Sentinels at ``sentinel_nodes`` name for
        ``service_name``; after a failover, new connections go to the new master.

        ``password`` and ``kwargs`` are for the master; the Sentinels get ``sentinel_password``
        and the ``socket_*`` and ``retry`` options of ``kwargs``.
        """
        kwargs = _retry_once(kwargs)
        sentinel_kwargs = {
            k: v for k, v in kwargs.items() if k.startswith("socket_") or k == "retry"
        }
        if sentinel_password is not None:
            sentinel_kwargs["password"] = sentinel_password
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [(host, int(port)) for host, port in sentinel_nodes], sentinel_kwargs=sentinel_kwargs
        )
        client = cast(Redis, sentinel.master_for(service_name, password=password, **kwargs))
        return cls._owning(client, sentinel)

    @classmethod
    def _owning(cls, client: Redis | RedisCluster, *others: Sentinel) -> RedisBackend:
        backend = cls(client)
        backend._owned = [client, *others]
        return backend

    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None``: one GET."""
        if self._reader is not None:
            return await self._reader.get(key)
        try:
            return cast("bytes | None", await self._client.get(key))
        except _ERRORS as exc:
            raise _failed("GET", exc) from exc

    async def lookup(self, keys: Sequence[str], budget: float) -> list[bytes | None]:
        """The values for ``keys`` in one round trip that gives up after ``budget`` seconds
        (raising :class:`CacheBackendError`). On a plain TCP server this goes over one
        pipelined connection of its own, with no lock and no task per command."""
        reader = self._reader
        if reader is not None:
            if len(keys) == 1:
                return [await reader.get(keys[0], budget)]
            return await reader.get_many(keys, budget) if keys else []
        with anyio.move_on_after(budget) as scope:
            if len(keys) == 1:
                return [await self.get(keys[0])]
            return await self.get_many(keys)
        assert scope.cancelled_caught
        raise CacheBackendError(f"Redis did not answer within {budget:g}s")

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values for ``keys``, in order, ``None`` where absent: one MGET, or on a cluster
        one MGET per hash slot, pipelined."""
        if not keys:
            return []
        if self._reader is not None:
            return await self._reader.get_many(keys)
        client = self._client
        try:
            if isinstance(client, RedisCluster):
                values = await client.mget_nonatomic(keys)
            else:
                values = await client.mget(keys)
        except _ERRORS as exc:
            raise _failed("MGET", exc) from exc
        return cast("list[bytes | None]", values)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds (``None``: no expiry), rounded up to whole
        milliseconds. With ``ttl <= 0`` the value expires at once: nothing is stored and an older
        value under ``key`` is removed."""
        try:
            if ttl is None:
                await self._client.set(key, value)
            elif ttl > 0:
                await self._client.set(key, value, px=_px(ttl))
            else:
                await self._client.unlink(key)
        except _ERRORS as exc:
            raise _failed("SET", exc) from exc

    async def set_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        """Store every item with the same ``ttl``, as :meth:`set` does: one pipeline of SETs
        (not a transaction), which a cluster splits by node."""
        if not items:
            return
        if ttl is not None and ttl <= 0:
            await self.delete(*items)
            return
        px = None if ttl is None else _px(ttl)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, px=px)
                await pipe.execute()
        except _ERRORS as exc:
            raise _failed("SET", exc) from exc

    async def delete(self, *keys: str) -> int:
        """Remove ``keys`` with UNLINK (split by hash slot on a cluster); return how many
        existed."""
        if not keys:
            return 0
        try:
            return await self._client.unlink(*keys)
        except _ERRORS as exc:
            raise _failed("UNLINK", exc) from exc

    async def clear(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``; return how many.

        Walks the keyspace with ``SCAN MATCH`` (every primary of a cluster) and removes what it
        finds with UNLINK, in batches. Glob characters in ``prefix`` match only themselves. An
        empty prefix removes every key of the database.
        """
        client = self._client
        pattern = prefix.translate(_GLOB_ESCAPES) + "*"
        removed = 0
        batch: list[bytes] = []
        try:
            async for key in client.scan_iter(match=pattern, count=_SCAN_COUNT):
                batch.append(key)
                if len(batch) >= _UNLINK_BATCH:
                    removed += await client.unlink(*batch)
                    batch = []
            if batch:
                removed += await client.unlink(*batch)
        except _ERRORS as exc:
            raise _failed("SCAN/UNLINK", exc) from exc
        return removed

    async def scan(self, prefix: str, *, batch: int = 500) -> AsyncIterator[list[str]]:
        """Batches of keys starting with ``prefix``: ``SCAN MATCH`` (on a cluster, on every
        primary), never ``KEYS``. Glob characters in ``prefix`` match only themselves."""
        pattern = prefix.translate(_GLOB_ESCAPES) + "*"
        found: list[str] = []
        try:
            async for key in self._client.scan_iter(match=pattern, count=max(batch, 10)):
                found.append(key.decode("utf-8", "replace") if isinstance(key, bytes) else key)
                if len(found) >= batch:
                    yield found
                    found = []
        except _ERRORS as exc:
            raise _failed("SCAN", exc) from exc
        if found:
            yield found

    async def add_counters(self, bucket: str, counts: Mapping[str, float], ttl: float) -> None:
        """Add ``counts`` to the hash ``bucket`` (HINCRBY, HINCRBYFLOAT for fractions) and
        make it expire ``ttl`` seconds from now: one pipeline, one key (so one cluster slot)."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                _queue_counters(pipe, bucket, counts, ttl)
                await pipe.execute()
        except _ERRORS as exc:
            raise _failed("HINCRBY", exc) from exc

    async def read_counters(self, buckets: Sequence[str]) -> list[dict[str, float]]:
        """Every field of each bucket: one pipeline of HGETALLs (split by node on a
        cluster)."""
        if not buckets:
            return []
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for bucket in buckets:
                    pipe.hgetall(bucket)
                replies = await pipe.execute()
        except _ERRORS as exc:
            raise _failed("HGETALL", exc) from exc
        out: list[dict[str, float]] = []
        for reply in replies:
            fields: dict[str, float] = {}
            for name, value in (reply or {}).items():
                text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
                try:
                    fields[text] = float(value)
                except (TypeError, ValueError):
                    continue
            out.append(fields)
        return out

    async def set_with_counters(
        self,
        items: Mapping[str, bytes],
        ttl: float | None,
        bucket: str,
        counts: Mapping[str, float],
        counters_ttl: float,
    ) -> None:
        """:meth:`set_many` and :meth:`add_counters` in one pipeline: the counters cost the
        write path no extra round trip."""
        if ttl is not None and ttl <= 0:
            await self.delete(*items)
            await self.add_counters(bucket, counts, counters_ttl)
            return
        px = None if ttl is None else _px(ttl)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, px=px)
                _queue_counters(pipe, bucket, counts, counters_ttl)
                await pipe.execute()
        except _ERRORS as exc:
            raise _failed("SET", exc) from exc

    async def ping(self) -> bool:
        """True when Redis answers PING; false when it cannot be reached or refuses."""
        try:
            return bool(await self._client.ping())
        except _ERRORS:
            return False

    async def aclose(self) -> None:
        """Close this backend's lookup connection, and the client (and Sentinel connections)
        made by a ``from_*`` constructor. Idempotent; a client passed to
        ``RedisBackend(client)`` is left open."""
        owned, self._owned = self._owned, []
        if self._reader is not None:
            self._reader.close()
        for resource in owned:
            await resource.aclose()

    async def acquire_lease(self, key: str, ttl: float) -> bool:
        """Take the lease ``key`` for ``ttl`` seconds unless anyone holds it; True if taken.

        SET NX PX with a random token, so that :meth:`release_lease` never removes a lease that
        expired and was taken by another process. Across processes, the lease is as reliable as
        Redis itself (one server; no Redlock).
        """
        token = secrets.token_hex(8)
        try:
            taken = await self._client.set(key, token, nx=True, px=_px(ttl))
        except _ERRORS as exc:
            raise _failed("SET NX", exc) from exc
        if taken:
            self._leases[key] = token
        return bool(taken)

    async def release_lease(self, key: str) -> None:
        """Give back the lease ``key`` taken by this backend, if it still holds it."""
        token = self._leases.pop(key, None)
        if token is None:
            return
        try:
            await self._client.eval(_RELEASE_LEASE, 1, key, token)
        except _ERRORS as exc:
            raise _failed("EVAL", exc) from exc

    async def lease_held(self, key: str) -> bool:
        """Whether anyone holds the lease ``key`` now: one EXISTS."""
        try:
            return bool(await self._client.exists(key))
        except _ERRORS as exc:
            raise _failed("EXISTS", exc) from exc


def _queue_counters(pipe: Any, bucket: str, counts: Mapping[str, float], ttl: float) -> None:
    for name, value in counts.items():
        if float(value).is_integer():
            pipe.hincrby(bucket, name, int(value))
        else:
            pipe.hincrbyfloat(bucket, name, float(value))
    pipe.pexpire(bucket, _px(ttl))


def _fast_reader(client: Redis | RedisCluster) -> PipelinedReader | None:
    """A pipelined lookup connection for a plain TCP server, or ``None`` where redis-py's
    own connection setup matters (TLS, Unix sockets, Sentinel, clusters, custom credentials)."""
    if isinstance(client, RedisCluster):
        return None
    pool = client.connection_pool
    if pool.connection_class is not Connection:
        return None
    params = pool.connection_kwargs
    if params.get("credential_provider") is not None or "host" not in params:
        return None
    connect_timeout = params.get("socket_connect_timeout")
    socket_timeout = params.get("socket_timeout")
    return PipelinedReader(
        str(params["host"]),
        int(params.get("port", 6379)),
        username=params.get("username"),
        password=params.get("password"),
        db=int(params.get("db") or 0),
        connect_timeout=float(connect_timeout) if connect_timeout is not None else 5.0,
        socket_timeout=float(socket_timeout) if socket_timeout is not None else None,
    )
