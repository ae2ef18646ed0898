"""The response cache: ``Cache`` in LiteLLM's shape over a :class:`CacheBackend`.

``Cache`` owns what every backend shares: keys, the stored format, per-call controls, the
latency budget, the circuit breaker and "an error is a miss". Backends only move bytes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio

from .._config import (
    DEFAULT_BREAKER_RESET,
    DEFAULT_BREAKER_THRESHOLD,
    DEFAULT_CACHE_LOOKUP_TIMEOUT,
    DEFAULT_CACHE_WRITE_TIMEOUT,
    DEFAULT_MEMORY_MAX_BYTES,
    DEFAULT_MEMORY_MAX_SIZE,
)
from ..exceptions import CacheDataError, InvalidRequestError
from ._backend import CacheBackend
from ._codec import Entry, decode, decode_expiry
from ._keys import make_input_keys, make_key
from ._memory import MemoryBackend

if TYPE_CHECKING:
    from ._redis import RedisBackend

__all__ = ["ALL_CALL_TYPES", "Cache", "CacheBackend", "MemoryBackend", "RedisBackend"]

logger = logging.getLogger("llmstash")

ALL_CALL_TYPES: Final = ("completion", "acompletion", "embedding", "aembedding")
# LiteLLM Cache arguments for its other cache types: accepted and ignored, as LiteLLM ignores
# them for a Redis cache, instead of reaching the Redis client as unknown arguments.
_LITELLM_ONLY: Final = (
    "similarity_threshold",
    "redis_semantic_",
    "qdrant_",
    "s3_",
    "gcs_",
    "azure_",
    "disk_",
)
_UNSUPPORTED_TYPES: Final = ("redis-semantic", "qdrant-semantic", "s3", "gcs", "azure-blob", "disk")


def __getattr__(name: str) -> Any:
    # RedisBackend is importable from here without importing redis with the package.
    if name == "RedisBackend":
        from ._redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Breaker:
    """Consecutive-failure circuit breaker: opens after ``threshold`` failures in a row, then
    lets one probe through every ``reset`` seconds until a call succeeds."""

    __slots__ = ("clock", "failures", "opened_at", "reset", "threshold")

    def __init__(self, threshold: int, reset: float, clock: Callable[[], float]) -> None:
        self.threshold = threshold
        self.reset = reset
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        now = self.clock()
        if now - self.opened_at >= self.reset:
            self.opened_at = now  # one probe per reset window
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> bool:
        """Record a failure; True when this one opened the breaker."""
        self.failures += 1
        if self.failures >= self.threshold:
            was_closed = self.opened_at is None
            self.opened_at = self.clock()
            return was_closed
        return False


class Cache:
    """The response cache, configured as LiteLLM's ``litellm.caching.Cache`` is.

    ``Cache()`` is an in-memory LRU cache (bounded by ``max_size`` entries and ``max_bytes``);
    ``Cache(type="redis", host=..., port=..., password=...)`` (or ``url=``,
    ``redis_startup_nodes=`` for a cluster, ``sentinel_nodes=`` + ``service_name=``) keeps
    entries in Redis, which stays the source of truth: every lookup reads it, unless you opt in
    to a short-lived in-process tier with ``default_in_memory_ttl=seconds``. With no host given,
    ``REDIS_URL`` or ``REDIS_HOST`` / ``REDIS_PORT`` / ``REDIS_PASSWORD`` are used. Extra keyword
    arguments go to the ``redis.asyncio`` client. The constructor does no network I/O.

    ``ttl`` (seconds, ``None`` = never expire) is the default lifetime; ``namespace`` prefixes
    every key; ``mode="default_off"`` caches only calls that ask (``caching=True`` or
    ``cache={"use-cache": True}``); ``supported_call_types`` uses LiteLLM's names.

    A failing, slow or garbage-holding backend is a miss, never an error: each lookup has a
    latency budget (``lookup_timeout`` seconds), and after ``breaker_threshold`` consecutive
    failures the cache stops asking for ``breaker_reset`` seconds, then probes again.

    Concurrent identical misses in one process always share one provider call. ``lease=s``
    extends that across processes sharing a Redis: the first takes a lease (SET NX) for at most
    ``s`` seconds; the others poll for its answer for up to ``s`` seconds, then make their own.

    ``cache.get_cache_key(**call_kwargs)`` computes a key and may be replaced by assignment.
    """

    def __init__(
        self,
        type: str = "local",
        host: str | None = None,
        port: int | str | None = None,
        password: str | None = None,
        namespace: str | None = None,
        ttl: float | None = None,
        default_in_memory_ttl: float | None = None,
        default_in_redis_ttl: float | None = None,
        supported_call_types: Iterable[str] | None = None,
        mode: Any = "default_on",
        *,
        url: str | None = None,
        redis_startup_nodes: Sequence[Mapping[str, Any]] | None = None,
        sentinel_nodes: Sequence[tuple[str, int]] | None = None,
        service_name: str | None = None,
        sentinel_password: str | None = None,
        max_size: int | None = None,
        max_bytes: int | None = None,
        backend: CacheBackend | None = None,
        lookup_timeout: float = DEFAULT_CACHE_LOOKUP_TIMEOUT,
        write_timeout: float = DEFAULT_CACHE_WRITE_TIMEOUT,
        breaker_threshold: int = DEFAULT_BREAKER_THRESHOLD,
        breaker_reset: float = DEFAULT_BREAKER_RESET,
        redis_flush_size: int | None = None,
        lease: float | None = None,
        **kwargs: Any,
    ) -> None:
        cache_type = getattr(type, "value", type)
        if cache_type in _UNSUPPORTED_TYPES:
            raise InvalidRequestError(
                f"Cache(type={cache_type!r}) is not supported by llmstash; use 'local' or 'redis'"
            )
        if cache_type not in ("local", "redis"):
            raise InvalidRequestError(
                f"unknown cache type {cache_type!r}; expected 'local' or 'redis'"
            )
        mode_value = getattr(mode, "value", mode)
        if mode_value not in ("default_on", "default_off"):
            raise InvalidRequestError(
                f"unknown cache mode {mode!r}; expected 'default_on' or 'default_off'"
            )
        types = tuple(ALL_CALL_TYPES if supported_call_types is None else supported_call_types)
        unknown = [t for t in types if getattr(t, "value", t) not in ALL_CALL_TYPES]
        if unknown:
            raise InvalidRequestError(
                f"unknown call types {unknown!r}; supported: {', '.join(ALL_CALL_TYPES)}"
            )
        _check_ttl(ttl, "ttl")
        _check_ttl(default_in_memory_ttl, "default_in_memory_ttl")
        _check_ttl(lease, "lease")

        self.type: str = cache_type
        self.namespace = namespace
        self.ttl = ttl if ttl is not None else default_in_redis_ttl
        self.mode: Literal["default_on", "default_off"] = mode_value
        self.supported_call_types: frozenset[str] = frozenset(getattr(t, "value", t) for t in types)
        self.lookup_timeout = lookup_timeout
        self.write_timeout = write_timeout
        self.redis_flush_size = redis_flush_size
        self.lease = lease or None
        self._breaker = _Breaker(breaker_threshold, breaker_reset, time.monotonic)
        self._failing = False
        self._pending_writes: dict[str, bytes] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._write_queues: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[tuple[dict[str, bytes], float | None]]
        ] = weakref.WeakKeyDictionary()
        self._tier: MemoryBackend | None = None
        self._shared: CacheBackend | None = None
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CacheBackend] = (
            weakref.WeakKeyDictionary()
        )
        self._factory: Callable[[], CacheBackend] | None = None
        self._spare: CacheBackend | None = None

        if backend is not None:
            self._shared = backend
        elif cache_type == "local":
            self._shared = _memory(max_size, max_bytes)
        else:
            kwargs = {k: v for k, v in kwargs.items() if not k.startswith(_LITELLM_ONLY)}
            self._factory = _redis_factory(
                host=host,
                port=port,
                password=password,
                url=url,
                startup_nodes=redis_startup_nodes,
                sentinel_nodes=sentinel_nodes,
                service_name=service_name,
                sentinel_password=sentinel_password,
                kwargs=kwargs,
            )
            try:
                # Made now (no I/O) so that bad settings fail here, not as silent misses later;
                # kept for the first event loop that uses this cache.
                self._spare = self._factory()
            except (TypeError, ValueError) as exc:
                raise InvalidRequestError(f"Cache(type='redis'): {exc}") from exc
            if default_in_memory_ttl:
                self._tier = _memory(max_size, max_bytes)
                self._tier_ttl: float = default_in_memory_ttl
        local = self._shared is not None and getattr(self._shared, "is_local", False)
        self._local_backend: MemoryBackend | None = (
            self._shared if local and isinstance(self._shared, MemoryBackend) else None
        )
        self._is_local = local

    def __repr__(self) -> str:
        return f"Cache(type={self.type!r}, namespace={self.namespace!r}, ttl={self.ttl!r})"

    def get_cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The key for a call given its keyword arguments (``model``, ``messages`` or
        ``input``, and provider parameters). Replace it with your own function by assignment:
        ``cache.get_cache_key = my_fn``; the returned string is then used as it is."""
        return make_key(kwargs, self._namespace(kwargs.get("cache")))

    def chat_cache_key(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        controls: Mapping[str, Any] | None,
    ) -> str:
        """``get_cache_key(model=..., messages=..., **params, cache=controls)``, without
        building keyword arguments twice unless ``get_cache_key`` has been replaced."""
        if "get_cache_key" in self.__dict__:
            return self.get_cache_key(model=model, messages=messages, **params, cache=controls)
        fields = {"model": model, "messages": messages}
        if params:
            fields.update(params)
        return make_key(fields, self._namespace(controls))

    def input_cache_keys(self, inputs: list[Any], **kwargs: Any) -> list[str]:
        """Keys for each embedding input: ``get_cache_key(**kwargs, input=x)`` for every
        ``x``, computed in one pass unless ``get_cache_key`` has been replaced."""
        if "get_cache_key" in self.__dict__:
            return [self.get_cache_key(**kwargs, input=x) for x in inputs]
        return make_input_keys(kwargs, inputs, self._namespace(kwargs.get("cache")))

    def _namespace(self, controls: object) -> str | None:
        """The call's ``cache={"namespace": ...}``, else this cache's namespace."""
        if isinstance(controls, Mapping) and controls.get("namespace"):
            return str(controls["namespace"])
        return self.namespace

    @property
    def backend(self) -> CacheBackend:
        """The backend serving the current event loop (Redis clients belong to one loop)."""
        if self._shared is not None:
            return self._shared
        loop = asyncio.get_running_loop()
        backend = self._per_loop.get(loop)
        if backend is None:
            assert self._factory is not None
            spare, self._spare = self._spare, None
            backend = self._per_loop[loop] = spare if spare is not None else self._factory()
        return backend

    def _ok(self) -> None:
        if self._failing:
            logger.warning("llmstash cache: backend answering again; caching resumed")
            self._failing = False
        self._breaker.success()

    def _fail(self, what: str, exc: BaseException | None) -> None:
        opened = self._breaker.failure()
        if not self._failing:
            self._failing = True
            logger.warning(
                "llmstash cache: %s failed (%s); treating as a miss until it recovers",
                what,
                _describe(exc),
            )
        if opened:
            logger.warning(
                "llmstash cache: %d consecutive failures; pausing cache use for %.1fs",
                self._breaker.failures,
                self._breaker.reset,
            )

    def _decode(self, key: str, raw: bytes | None, max_age: float | None) -> Entry | None:
        if raw is None:
            return None
        try:
            entry = decode(raw)
        except CacheDataError as exc:
            logger.warning("llmstash cache: ignoring unreadable entry %s (%s)", key, exc)
            return None
        if max_age is not None or entry.expires_at:
            now = time.time()
            if max_age is not None and now - entry.stored_at > max_age:
                return None
            if entry.expires_at and now > entry.expires_at:
                return None  # the backend should have dropped it already; never serve it
        return entry

    def lookup_nowait(self, key: str, max_age: float | None = None) -> Entry | None | bool:
        """In-memory fast path: the entry, ``None`` for a miss, or ``False`` when the lookup
        needs I/O (call :meth:`alookup`)."""
        if self._local_backend is not None:
            return self._decode(key, self._local_backend.get_nowait(key), max_age)
        raw = self._pending_writes.get(key)
        if raw is None and self._tier is not None:
            raw = self._tier.get_nowait(key)
        if raw is not None:
            return self._decode(key, raw, max_age)
        return False

    async def alookup(self, key: str, max_age: float | None = None) -> Entry | None:
        """The decoded entry under ``key``, or ``None``. Never raises for backend trouble."""
        fast = self.lookup_nowait(key, max_age)
        if fast is not False:
            return fast  # type: ignore[return-value]
        raw = await self._guarded_get([key])
        return self._decode(key, raw[0] if raw else None, max_age)

    async def alookup_many(
        self, keys: Sequence[str], max_age: float | None = None
    ) -> list[Entry | None]:
        """Entries for ``keys`` in one backend round trip; misses where anything fails."""
        if self._local_backend is not None:
            get = self._local_backend.get_nowait
            return [self._decode(k, get(k), max_age) for k in keys]
        raws: list[bytes | None] = [self._pending_writes.get(k) for k in keys]
        if self._tier is not None:
            raws = [
                r if r is not None else self._tier.get_nowait(k)
                for r, k in zip(raws, keys, strict=True)
            ]
        missing = [i for i, r in enumerate(raws) if r is None]
        if missing:
            fetched = await self._guarded_get([keys[i] for i in missing])
            if fetched:
                for i, raw in zip(missing, fetched, strict=True):
                    raws[i] = raw
        return [self._decode(k, r, max_age) for k, r in zip(keys, raws, strict=True)]

    async def _guarded_get(self, keys: list[str]) -> list[bytes | None] | None:
        if not self._breaker.allow():
            return None
        try:
            backend = self.backend
            # A backend that bounds its own round trip (RedisBackend.lookup) does it cheaper
            # than a cancel scope around it.
            lookup = getattr(backend, "lookup", None)
            if lookup is not None:
                result: list[bytes | None] = await lookup(keys, self.lookup_timeout)
            else:
                with anyio.move_on_after(self.lookup_timeout) as scope:
                    if len(keys) == 1:
                        result = [await backend.get(keys[0])]
                    else:
                        result = await backend.get_many(keys)
                if scope.cancelled_caught:
                    raise TimeoutError(f"no answer within {self.lookup_timeout}s")
        except Exception as exc:
            self._fail("lookup", exc)
            return None
        if not isinstance(result, list) or len(result) != len(keys):
            self._fail("lookup", TypeError("backend answered with the wrong number of values"))
            return None
        self._ok()
        if self._tier is not None:
            for k, raw in zip(keys, result, strict=True):
                if raw is not None:
                    self._tier_put(k, raw)
        return result

    def _tier_put(self, key: str, raw: bytes) -> None:
        """Keep an entry read from Redis in the in-process tier, never past its own expiry."""
        assert self._tier is not None
        ttl = self._tier_ttl
        try:
            expires_at = decode_expiry(raw)
        except CacheDataError:
            return
        if expires_at:
            ttl = min(ttl, expires_at - time.time())
        if ttl > 0:
            self._tier.set_nowait(key, raw, ttl=ttl)

    def store(self, items: Mapping[str, bytes], ttl: float | None) -> None:
        """Store entries. In memory this is immediate; for Redis the write runs in the
        background and the value is served from memory until it lands (read-your-writes)."""
        if ttl is not None and ttl <= 0:
            return
        if self._local_backend is not None:
            for key, value in items.items():
                self._local_backend.set_nowait(key, value, ttl=ttl)
            return
        if self._tier is not None:
            tier_ttl = self._tier_ttl if ttl is None else min(ttl, self._tier_ttl)
            for key, value in items.items():
                self._tier.set_nowait(key, value, ttl=tier_ttl)
        if not self._breaker.allow():
            return
        self._pending_writes.update(items)
        # Writes are queued per event loop and sent by one task, many per round trip: a burst
        # of misses becomes a few pipelines, not a connection per write.
        loop = asyncio.get_running_loop()
        queue = self._write_queues.get(loop)
        if queue is None:
            queue = self._write_queues[loop] = []
        queue.append((dict(items), ttl))
        if len(queue) == 1:
            task = loop.create_task(self._drain_writes(queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain_writes(self, queue: list[tuple[dict[str, bytes], float | None]]) -> None:
        try:
            while queue:
                batch = list(queue)
                by_ttl: dict[float | None, dict[str, bytes]] = {}
                for items, ttl in batch:
                    by_ttl.setdefault(ttl, {}).update(items)
                for ttl, items in by_ttl.items():
                    await self._write(items, ttl)
                del queue[: len(batch)]
        finally:
            # Cancelled (the loop is shutting down): what was not written is dropped, and the
            # next store() starts a fresh drain.
            for items, _ in queue:
                self._settle(items)
            queue.clear()

    async def _write(self, items: dict[str, bytes], ttl: float | None) -> None:
        try:
            backend = self.backend
            with anyio.move_on_after(self.write_timeout) as scope:
                if len(items) == 1:
                    ((key, value),) = items.items()
                    await backend.set(key, value, ttl=ttl)
                else:
                    await backend.set_many(items, ttl=ttl)
            if scope.cancelled_caught:
                self._fail("write", TimeoutError(f"no answer within {self.write_timeout}s"))
            else:
                self._ok()
        except Exception as exc:
            self._fail("write", exc)
        finally:
            self._settle(items)

    def _settle(self, items: Mapping[str, bytes]) -> None:
        """Stop serving ``items`` from memory, unless a newer write replaced them."""
        for key, value in items.items():
            if self._pending_writes.get(key) is value:
                del self._pending_writes[key]

    async def aflush_writes(self) -> None:
        """Wait until background writes started on this event loop have finished (or
        failed). Writes of other loops (sync calls run on their own) are theirs to flush."""
        loop = asyncio.get_running_loop()
        while mine := [t for t in self._tasks if t.get_loop() is loop]:
            await asyncio.gather(*mine, return_exceptions=True)

    async def aacquire_lease(self, key: str) -> bool:
        """Take the cross-process lease for ``key``; True also when leasing is off or fails
        (then every process makes its own call, as without a lease)."""
        if self.lease is None or not self._breaker.allow():
            return True
        try:
            acquire = getattr(self.backend, "acquire_lease", None)
            if acquire is None:
                return True
            # On the miss path a provider call follows, so the lease may take a write's budget.
            with anyio.move_on_after(self.write_timeout):
                return bool(await acquire(f"{key}:lease", self.lease))
        except Exception as exc:
            self._fail("lease", exc)
        return True

    async def arelease_lease(self, key: str) -> None:
        """Give back a lease taken by :meth:`aacquire_lease`; failures are logged only."""
        if self.lease is None:
            return
        try:
            release = getattr(self.backend, "release_lease", None)
            if release is None:
                return
            with anyio.move_on_after(self.write_timeout):
                await release(f"{key}:lease")
        except Exception as exc:
            self._fail("lease release", exc)

    async def await_entry(self, key: str) -> Entry | None:
        """Poll for ``key`` while another process holds its lease, up to ``lease`` seconds."""
        deadline = time.monotonic() + (self.lease or 0.0)
        delay = 0.01
        while time.monotonic() < deadline:
            await anyio.sleep(delay)
            entry = await self.alookup(key)
            if entry is not None:
                return entry
            delay = min(delay * 2, 0.1)
        return None

    async def adelete(self, *keys: str) -> int:
        """Delete entries by key (from the in-process tier too); returns how many existed."""
        for key in keys:
            self._pending_writes.pop(key, None)
        if self._tier is not None:
            await self._tier.delete(*keys)
        return await self.backend.delete(*keys)

    async def aclear(self, namespace: str | None = None) -> int:
        """Delete every llmstash entry in ``namespace`` (default: this cache's namespace)."""
        ns = namespace if namespace is not None else self.namespace
        prefix = f"{ns}:llmstash:" if ns else "llmstash:"
        self._pending_writes.clear()
        if self._tier is not None:
            await self._tier.clear(prefix)
        return await self.backend.clear(prefix)

    async def aping(self) -> bool:
        """True when the backend answers."""
        try:
            return await self.backend.ping()
        except Exception as exc:
            logger.warning("llmstash cache: ping failed (%s)", _describe(exc))
            return False

    def stats(self) -> dict[str, Any]:
        """Counters: breaker state, pending writes, and the memory backend's own stats."""
        out: dict[str, Any] = {
            "type": self.type,
            "breaker_open": self._breaker.is_open,
            "consecutive_failures": self._breaker.failures,
            "pending_writes": len(self._tasks),
        }
        if self._local_backend is not None:
            out.update(self._local_backend.stats())
        return out

    async def aclose(self) -> None:
        """Finish background writes and close the backend(s) this cache made. Idempotent."""
        await self.aflush_writes()
        if self._shared is not None:
            await self._shared.aclose()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - aclose is always awaited
            return
        backend = self._per_loop.pop(loop, None)
        if backend is not None:
            await backend.aclose()


def _memory(max_size: int | None, max_bytes: int | None) -> MemoryBackend:
    return MemoryBackend(
        max_size=DEFAULT_MEMORY_MAX_SIZE if max_size is None else max_size,
        max_bytes=DEFAULT_MEMORY_MAX_BYTES if max_bytes is None else max_bytes,
    )


def _check_ttl(value: float | None, name: str) -> None:
    if value is not None and (not isinstance(value, (int, float)) or value < 0):
        raise InvalidRequestError(f"{name} must be a number of seconds >= 0 or None")


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


def _redis_factory(
    *,
    host: str | None,
    port: int | str | None,
    password: str | None,
    url: str | None,
    startup_nodes: Sequence[Mapping[str, Any]] | None,
    sentinel_nodes: Sequence[tuple[str, int]] | None,
    service_name: str | None,
    sentinel_password: str | None,
    kwargs: dict[str, Any],
) -> Callable[[], CacheBackend]:
    """Settings for a Redis backend now (env read once here), the backend itself per loop."""
    if startup_nodes:
        nodes = [{"host": str(n["host"]), "port": int(n["port"])} for n in startup_nodes]

        def make_cluster() -> CacheBackend:
            from ._redis import RedisBackend

            return RedisBackend.from_cluster(nodes, password=password, **kwargs)

        return make_cluster
    if sentinel_nodes:
        if not service_name:
            raise InvalidRequestError("sentinel_nodes needs service_name (the master's name)")
        snodes = [(str(h), int(p)) for h, p in sentinel_nodes]
        name = service_name

        def make_sentinel() -> CacheBackend:
            from ._redis import RedisBackend

            return RedisBackend.from_sentinel(
                snodes, name, password=password, sentinel_password=sentinel_password, **kwargs
            )

        return make_sentinel
    if url is None and host is None:
        url = os.environ.get("REDIS_URL") or os.environ.get("REDIS_SSL_URL")
        if url is None:
            host = os.environ.get("REDIS_HOST")
            port = port if port is not None else os.environ.get("REDIS_PORT")
            password = password if password is not None else os.environ.get("REDIS_PASSWORD")
            if host is None:
                raise InvalidRequestError(
                    "Cache(type='redis') needs host= (or url=, redis_startup_nodes=, "
                    "sentinel_nodes=), or the REDIS_HOST / REDIS_URL environment variable"
                )
    if url is not None:
        the_url = url

        def make_url() -> CacheBackend:
            from ._redis import RedisBackend

            extra = dict(kwargs)
            if password is not None:
                extra.setdefault("password", password)
            return RedisBackend.from_url(the_url, **extra)

        return make_url
    try:
        port_num = int(port) if port is not None else 6379
    except (TypeError, ValueError):
        raise InvalidRequestError(f"Redis port must be a number, got {port!r}") from None
    the_host = str(host)

    def make_params() -> CacheBackend:
        from ._redis import RedisBackend

        return RedisBackend.from_params(host=the_host, port=port_num, password=password, **kwargs)

    return make_params
