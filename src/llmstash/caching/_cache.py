"""``Cache``: the facade every call goes through — keys, lookups under a budget, write-through
stores, leases — over a :class:`CacheBackend` that only moves bytes."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import re
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
import msgspec

from .._config import (
    DEFAULT_BREAKER_RESET,
    DEFAULT_BREAKER_THRESHOLD,
    DEFAULT_CACHE_LOOKUP_TIMEOUT,
    DEFAULT_CACHE_WRITE_TIMEOUT,
    DEFAULT_MEMORY_MAX_BYTES,
    DEFAULT_MEMORY_MAX_SIZE,
)
from .._loops import at_shutdown
from ..exceptions import CacheDataError, InvalidRequestError, redact
from ._backend import CacheBackend, SupportsBudgetedLookup, SupportsCounters, SupportsLease
from ._codec import Entry, compress, decode, decode_expiry
from ._guard import Guard, describe
from ._keys import chat_key, make_input_keys, make_key
from ._memory import MemoryBackend
from ._settings import check_number, check_ttl, redis_factory
from ._stats import (
    ABSENT,
    BREAKER,
    BUCKET_TTL,
    BUDGET,
    ERROR,
    EXPIRED,
    FLUSH_INTERVAL,
    GARBAGE,
    TOO_OLD,
    CacheStats,
    Miss,
    Recorder,
    bucket_names,
    current_bucket,
    from_buckets,
)
from ._writes import BACKGROUND_WRITE_LIMIT, WritePath

if TYPE_CHECKING:
    from ._disk import DiskBackend

__all__ = ["ALL_CALL_TYPES", "NEEDS_IO", "Cache"]

logger = logging.getLogger("llmstash")

ALL_CALL_TYPES: Final = (
    "completion",
    "acompletion",
    "embedding",
    "aembedding",
    "responses",
    "aresponses",
    "text_completion",
    "atext_completion",
)
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
_UNSUPPORTED_TYPES: Final = ("redis-semantic", "qdrant-semantic", "s3", "gcs", "azure-blob")
_TYPES: Final = ("local", "redis", "disk")
_EXPLICIT_READ_TIMEOUT: Final = 1.0
"""Seconds ``get_cache`` / ``async_get_cache`` wait for the backend before a logged miss."""
_URL_USERINFO: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^@/\s]*@")
"""The user and password part of a URL, masked in error messages."""
_LEASE_POLL: Final = 0.05
"""Seconds between a lease waiter's looks for the entry and for the lease's release."""


class _NeedsIO(enum.Enum):
    NEEDS_IO = "NEEDS_IO"


NEEDS_IO: Final = _NeedsIO.NEEDS_IO
"""What :meth:`Cache.lookup_nowait` answers when the lookup has to wait on the backend."""
_PROCESS_FIELDS: Final = (
    "type",
    "breaker_open",
    "consecutive_failures",
    "pending_writes",
    "writes",
    "writes_given_up",
    "backend",
)
"""Keys of :meth:`Cache.stats` about this process alone (its backend and write queue), never
summed over a fleet."""


class Cache:
    """The response cache, configured as LiteLLM's ``litellm.caching.Cache`` is.

    ``Cache()`` is an in-memory LRU cache (bounded by ``max_size`` entries and ``max_bytes``);
    ``Cache(type="redis", host=..., port=..., password=...)`` (or ``url=``,
    ``redis_startup_nodes=`` for a cluster, ``sentinel_nodes=`` + ``service_name=``) keeps
    entries in Redis, which stays the source of truth: every lookup reads it, unless you opt in
    to a short-lived in-process tier with ``default_in_memory_ttl=seconds``. With no host given,
    ``REDIS_URL`` or ``REDIS_HOST`` / ``REDIS_PORT`` / ``REDIS_PASSWORD`` are used. Extra keyword
    arguments go to the ``redis.asyncio`` client. The constructor does no network I/O.

    The positional order is LiteLLM's (``type, mode, host, port, password, namespace, ttl,
    default_in_memory_ttl, default_in_redis_ttl, similarity_threshold,
    supported_call_types``); everything else is keyword-only.

    ``ttl`` (seconds, ``None`` = never expire, at most ten years) is the default lifetime;
    ``namespace`` prefixes every key; ``mode="default_off"`` caches only calls that ask
    (``caching=True`` or ``cache={"use-cache": True}``); ``supported_call_types`` uses LiteLLM's
    names.

    Writes are write-through: a call that missed returns once its entry is acknowledged by the
    backend, or once ``write_timeout`` seconds ran out (the write then finishes in the
    background and ``stats()["writes_given_up"]`` counts it). So a call made anywhere after the
    first one returned hits, and ``asyncio.run(acompletion(...))`` per call loses nothing.

    A failing, slow or garbage-holding backend is a miss, never an error: each lookup has a
    latency budget (``lookup_timeout`` seconds), and after ``breaker_threshold`` consecutive
    failures the cache stops asking for ``breaker_reset`` seconds, then probes again.

    Concurrent identical misses in one process always share one provider call. ``lease=s``
    extends that across processes sharing a backend: the first takes a lease for at most ``s``
    seconds; the others wait for its entry, and call the provider themselves as soon as the
    lease is released without one (an error, a cancelled call, ``no-store``) or expires.

    ``Cache(type="disk", disk_cache_dir=...)`` keeps entries in one SQLite file (default
    directory ``$XDG_CACHE_HOME/llmstash`` or ``~/.cache/llmstash``) that survives restarts
    and is shared by every thread and process opening the same directory; ``max_bytes``
    (default 1 GiB) and ``max_size`` bound it, evicting the least recently used entries.

    Your own store: ``backend=`` an object implementing
    :class:`~llmstash.caching.CacheBackend`, shared by every event loop, or
    ``backend_factory=`` a callable returning one, called once per event loop that uses the
    cache (for clients bound to one loop). A ``backend=`` you pass stays yours:
    :meth:`aclose` closes only what the cache made (from a factory included).
    ``async with Cache(...) as cache:`` closes it on exit.

    ``cache.get_cache_key(**call_kwargs)`` computes a key and may be replaced by assignment.

    ``cache.stats()`` counts this process's hits, misses (by reason), stores and savings;
    ``await cache.astats(fleet=True)`` sums every process sharing the backend, from counters
    the backend keeps (sent along with the writes). ``stats=False`` turns both off.
    """

    def __init__(
        self,
        type: str = "local",
        mode: Any = "default_on",
        host: str | None = None,
        port: int | str | None = None,
        password: str | None = None,
        namespace: str | None = None,
        ttl: float | None = None,
        default_in_memory_ttl: float | None = None,
        default_in_redis_ttl: float | None = None,
        similarity_threshold: float | None = None,
        supported_call_types: Iterable[str] | None = None,
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
        disk_cache_dir: str | os.PathLike[str] | None = None,
        backend_factory: Callable[[], CacheBackend] | None = None,
        stats: bool = True,
        **kwargs: Any,
    ) -> None:
        cache_type = getattr(type, "value", type)
        if cache_type in _UNSUPPORTED_TYPES:
            raise InvalidRequestError(
                f"Cache(type={cache_type!r}) is not supported by llmstash; "
                "use 'local', 'redis' or 'disk'"
            )
        if cache_type not in _TYPES:
            raise InvalidRequestError(
                f"unknown cache type {cache_type!r}; expected 'local', 'redis' or 'disk'"
            )
        mode_value = getattr(mode, "value", mode)
        if mode_value not in ("default_on", "default_off"):
            raise InvalidRequestError(
                f"unknown cache mode {mode!r}; expected 'default_on' or 'default_off'"
            )
        if isinstance(supported_call_types, str):
            supported_call_types = [supported_call_types]
        types = tuple(ALL_CALL_TYPES if supported_call_types is None else supported_call_types)
        unknown = [t for t in types if getattr(t, "value", t) not in ALL_CALL_TYPES]
        if unknown:
            raise InvalidRequestError(
                f"unknown call types {unknown!r}; supported: {', '.join(ALL_CALL_TYPES)}"
            )
        ttl = check_ttl(ttl, "ttl")
        default_in_redis_ttl = check_ttl(default_in_redis_ttl, "default_in_redis_ttl")
        default_in_memory_ttl = check_ttl(default_in_memory_ttl, "default_in_memory_ttl")
        lease = check_ttl(lease, "lease")
        check_number(max_size, "max_size", minimum=1, integer=True, allow_none=True)
        check_number(max_bytes, "max_bytes", minimum=1, integer=True, allow_none=True)
        check_number(lookup_timeout, "lookup_timeout", minimum=0)
        check_number(write_timeout, "write_timeout", minimum=0)
        check_number(breaker_threshold, "breaker_threshold", minimum=1, integer=True)
        check_number(breaker_reset, "breaker_reset", minimum=0)
        if namespace is not None and not isinstance(namespace, str):
            raise InvalidRequestError(f"namespace must be a string, got {namespace!r}")
        if backend is not None and not isinstance(backend, CacheBackend):
            raise InvalidRequestError("backend= must implement llmstash.caching.CacheBackend")
        if backend_factory is not None and not callable(backend_factory):
            raise InvalidRequestError("backend_factory= must be a callable returning a backend")
        if backend is not None and backend_factory is not None:
            raise InvalidRequestError("give backend= or backend_factory=, not both")
        if disk_cache_dir is not None and not isinstance(disk_cache_dir, (str, os.PathLike)):
            raise InvalidRequestError(
                f"disk_cache_dir must be a path (str or os.PathLike), got {disk_cache_dir!r}"
            )

        self.type: str = cache_type
        self.namespace = namespace
        self.ttl = ttl if ttl is not None else default_in_redis_ttl
        self.mode: Literal["default_on", "default_off"] = mode_value
        self.supported_call_types: frozenset[str] = frozenset(getattr(t, "value", t) for t in types)
        self.redis_flush_size = redis_flush_size
        self.lease = lease or None
        self._guard = Guard(lookup_timeout, write_timeout, breaker_threshold, breaker_reset)
        self._tier: MemoryBackend | None = None
        self._tier_ttl = 0.0
        self._backends = _Backends()
        self._owns_shared = backend is None
        self._disk: DiskBackend | None = None
        self._stats: Recorder | None = Recorder() if stats else None
        self._writes = WritePath(self._backends.current, self._guard, self._stats)
        self._backends.recorder = self._stats
        if self._stats is not None:
            self._stats.on_dirty = self._backends.schedule_send

        if backend is not None:
            self._backends.shared = backend
        elif backend_factory is not None:
            self._backends.factory = _checked(backend_factory)
            # Each loop's backend is the cache's: closed with it, or when the loop ends.
            weakref.finalize(self, self._backends.close_soon)
        elif cache_type == "disk":
            from ._disk import DEFAULT_DISK_MAX_BYTES, DiskBackend

            self._disk = DiskBackend(
                disk_cache_dir,
                max_bytes=DEFAULT_DISK_MAX_BYTES if max_bytes is None else max_bytes,
                max_size=max_size,
            )
            self._backends.shared = self._disk
            if default_in_memory_ttl:
                self._tier = _memory(None, None)
                self._tier_ttl = default_in_memory_ttl
        elif cache_type == "local":
            self._backends.shared = _memory(max_size, max_bytes)
        else:
            kwargs = {k: v for k, v in kwargs.items() if not k.startswith(_LITELLM_ONLY)}
            try:
                self._backends.factory = redis_factory(
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
                # Made now (no I/O) so that bad settings fail here, not as silent misses later;
                # kept for the first event loop that uses this cache.
                self._backends.spare = self._backends.factory()
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                if isinstance(exc, InvalidRequestError):
                    raise
                # Keep the library's words (they say what is wrong), never a URL's credentials
                # or the password.
                text = redact(_URL_USERINFO.sub(r"\1***@", describe(exc)), password)
                raise InvalidRequestError(
                    f"Cache(type='redis'): bad connection settings ({text})"
                ) from None
            # A cache dropped without aclose() (one made per request) closes its connections.
            weakref.finalize(self, self._backends.close_soon)
            if default_in_memory_ttl:
                self._tier = _memory(max_size, max_bytes)
                self._tier_ttl = default_in_memory_ttl
        shared = self._backends.shared
        self._is_local = shared is not None and shared.is_local is True
        # The synchronous fast path: only for the built-in memory store, whose get never waits.
        self._local_backend: MemoryBackend | None = (
            shared if self._is_local and isinstance(shared, MemoryBackend) else None
        )

    def __repr__(self) -> str:
        return f"Cache(type={self.type!r}, namespace={self.namespace!r}, ttl={self.ttl!r})"

    async def __aenter__(self) -> Cache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def lookup_timeout(self) -> float:
        """Seconds a lookup may take before the call goes on as a miss."""
        return self._guard.lookup_timeout

    @property
    def write_timeout(self) -> float:
        """Seconds a missed call waits for its entry's acknowledgement."""
        return self._guard.write_timeout

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
        return chat_key(model, messages, params, self._namespace(controls))

    def input_cache_keys(self, inputs: list[Any], **kwargs: Any) -> list[str]:
        """Keys for each embedding input: ``get_cache_key(**kwargs, input=x)`` for every
        ``x``, computed in one pass unless ``get_cache_key`` has been replaced."""
        if "get_cache_key" in self.__dict__:
            return [self.get_cache_key(**kwargs, input=x) for x in inputs]
        return make_input_keys(kwargs, inputs, self._namespace(kwargs.get("cache")))

    def _namespace(self, controls: object) -> str | None:
        """The call's ``cache={"namespace": ...}``, else this cache's namespace."""
        if controls and isinstance(controls, Mapping) and controls.get("namespace"):
            return str(controls["namespace"])
        return self.namespace

    @property
    def backend(self) -> CacheBackend:
        """The backend serving the current event loop (Redis clients belong to one loop)."""
        return self._backends.current()

    def _decode(self, key: str, raw: bytes | None, max_age: float | None) -> Entry | Miss:
        if raw is None:
            return self._absent(key)
        try:
            entry = decode(raw)
        except CacheDataError as exc:
            logger.warning("llmstash cache: ignoring unreadable entry %s (%s)", key, exc)
            return GARBAGE
        if max_age is not None or entry.expires_at:
            now = time.time()
            if max_age is not None and now - entry.stored_at > max_age:
                return TOO_OLD
            if entry.expires_at and now > entry.expires_at:
                return EXPIRED  # the backend should have dropped it already; never serve it
        return entry

    def _absent(self, key: str) -> Miss:
        """Why nothing was found: an in-memory store says whether it just dropped ``key`` as
        expired (Redis drops expired keys itself, so they are simply absent there)."""
        local = self._local_backend if self._local_backend is not None else self._tier
        if local is not None and local.last_expired == key:
            return EXPIRED
        return ABSENT

    def probe_nowait(self, key: str, max_age: float | None = None) -> Entry | Miss | _NeedsIO:
        """:meth:`lookup_nowait`, with a :class:`~llmstash.caching._stats.Miss` saying why
        instead of ``None``."""
        if self._local_backend is not None:
            return self._decode(key, self._local_backend.get_nowait(key), max_age)
        raw = self._writes.pending.get(key)
        if raw is None and self._tier is not None:
            raw = self._tier.get_nowait(key)
        if raw is not None:
            return self._decode(key, raw, max_age)
        return NEEDS_IO

    async def aprobe(self, key: str, max_age: float | None = None) -> Entry | Miss:
        """:meth:`alookup`, with a :class:`~llmstash.caching._stats.Miss` saying why instead
        of ``None``."""
        fast = self.probe_nowait(key, max_age)
        if fast is not NEEDS_IO:
            return fast
        raw = await self._guarded_get([key])
        if isinstance(raw, Miss):
            return raw
        return self._decode(key, raw[0], max_age)

    def lookup_nowait(self, key: str, max_age: float | None = None) -> Entry | None | _NeedsIO:
        """In-process fast path: the entry, ``None`` for a miss, or :data:`NEEDS_IO` when the
        lookup has to ask the backend (call :meth:`alookup`)."""
        found = self.probe_nowait(key, max_age)
        return None if isinstance(found, Miss) else found

    async def alookup(self, key: str, max_age: float | None = None) -> Entry | None:
        """The decoded entry under ``key``, or ``None``. Never raises for backend trouble."""
        found = await self.aprobe(key, max_age)
        return None if isinstance(found, Miss) else found

    async def alookup_many(
        self, keys: Sequence[str], max_age: float | None = None
    ) -> list[Entry | None]:
        """Entries for ``keys`` in one backend round trip; misses where anything fails."""
        return [None if isinstance(e, Miss) else e for e in await self.aprobe_many(keys, max_age)]

    async def aprobe_many(
        self, keys: Sequence[str], max_age: float | None = None
    ) -> list[Entry | Miss]:
        """:meth:`alookup_many`, with a :class:`~llmstash.caching._stats.Miss` per miss."""
        if self._local_backend is not None:
            get = self._local_backend.get_nowait
            return [self._decode(k, get(k), max_age) for k in keys]
        pending = self._writes.pending
        raws: list[bytes | None] = [pending.get(k) for k in keys]
        if self._tier is not None:
            raws = [
                r if r is not None else self._tier.get_nowait(k)
                for r, k in zip(raws, keys, strict=True)
            ]
        missing = [i for i, r in enumerate(raws) if r is None]
        failed: Miss | None = None
        if missing:
            fetched = await self._guarded_get([keys[i] for i in missing])
            if isinstance(fetched, Miss):
                failed = fetched
            else:
                for i, raw in zip(missing, fetched, strict=True):
                    raws[i] = raw
        return [
            failed if r is None and failed is not None else self._decode(k, r, max_age)
            for k, r in zip(keys, raws, strict=True)
        ]

    async def _guarded_get(self, keys: list[str]) -> list[bytes | None] | Miss:
        guard = self._guard
        try:
            backend = self.backend
            if backend.is_local is True:
                # A local backend answers at once: asked with no budget and no breaker (a
                # failure is still a miss, logged).
                if len(keys) == 1:
                    result: list[bytes | None] = [await backend.get(keys[0])]
                else:
                    result = await backend.get_many(keys)
                return self._got(keys, result)
        except Exception as exc:
            guard.fail("lookup", exc)
            return ERROR
        if not guard.allow():
            return BREAKER
        budget = guard.lookup_timeout
        try:
            if isinstance(backend, SupportsBudgetedLookup):
                result = await backend.lookup(keys, budget)
            else:
                with anyio.move_on_after(budget) as scope:
                    if len(keys) == 1:
                        result = [await backend.get(keys[0])]
                    else:
                        result = await backend.get_many(keys)
                if scope.cancelled_caught:
                    raise TimeoutError(f"no answer within {budget}s")
        except Exception as exc:
            guard.fail("lookup", exc)
            timed_out = isinstance(exc, TimeoutError) or "did not answer within" in str(exc)
            return BUDGET if timed_out else ERROR
        return self._got(keys, result)

    def _got(self, keys: list[str], result: object) -> list[bytes | None] | Miss:
        """A backend's answer to a lookup, checked; the tier keeps what it found."""
        guard = self._guard
        if not isinstance(result, list) or len(result) != len(keys):
            guard.fail("lookup", TypeError("backend answered with the wrong number of values"))
            return ERROR
        guard.ok()
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

    async def astore(
        self,
        items: Mapping[str, bytes],
        ttl: float | None,
        *,
        model: str = "",
        namespace: str | None = None,
    ) -> None:
        """Store entries, write-through: in memory at once; on Redis this returns when the
        write is acknowledged or ``write_timeout`` ran out. Never raises for backend trouble.
        ``model`` and ``namespace`` say whose entries they are, for :meth:`stats`."""
        if ttl is not None and ttl <= 0:
            return
        recorder = self._stats
        if self._local_backend is not None:
            for key, value in items.items():
                self._local_backend.set_nowait(key, value, ttl=ttl)
            if recorder is not None:
                recorder.stored(namespace, model, len(items), 0)
            return
        if self._tier is not None:
            tier_ttl = self._tier_ttl if ttl is None else min(ttl, self._tier_ttl)
            for key, value in items.items():
                self._tier.set_nowait(key, value, ttl=tier_ttl)
        if not self._is_local:
            # A store that pays per byte keeps entries compressed (where that pays).
            items = {key: compress(value) for key, value in items.items()}
        if self._is_local or self._backends.factory is not None:
            try:
                backend = self.backend
                if backend.is_local is True:
                    # A local backend stores at once: written here, no budget, no breaker.
                    if len(items) == 1:
                        ((key, value),) = items.items()
                        await backend.set(key, value, ttl=ttl)
                    else:
                        await backend.set_many(items, ttl=ttl)
                    self._writes.written += len(items)
                    self._guard.ok()
                    return
            except Exception as exc:
                self._guard.fail("write", exc)
                return
        if not self._guard.allow():
            self._writes.given_up += len(items)
            if recorder is not None:
                recorder.stored(namespace, model, 0, len(items))
            return
        ok = await self._writes.store(items, ttl)
        if recorder is not None:
            n = len(items)
            recorder.stored(namespace, model, n if ok else 0, 0 if ok else n)

    async def aflush_writes(self) -> None:
        """Wait until writes started on this event loop have finished (or failed), and send
        this process's counters to the backend (for :meth:`astats` with ``fleet=True``)."""
        await self._writes.aflush()
        backends = self._backends
        backend = backends.shared or backends.per_loop.get(asyncio.get_running_loop())
        if backend is not None:  # none made on this loop: nothing to send through
            await backends.send_counters(backend)

    def _lease_backend(self) -> SupportsLease | None:
        if self.lease is None or not self._guard.allow():
            return None
        backend = self.backend
        return backend if isinstance(backend, SupportsLease) else None

    async def aacquire_lease(self, key: str) -> bool:
        """Take the cross-process lease for ``key``; True also when leasing is off or fails
        (then every process makes its own call, as without a lease)."""
        try:
            backend = self._lease_backend()
            if backend is None:
                return True
            # On the miss path a provider call follows, so the lease may take a write's budget.
            with anyio.move_on_after(self.write_timeout):
                return await backend.acquire_lease(f"{key}:lease", self.lease or 0.0)
        except Exception as exc:
            self._guard.fail("lease", exc)
        return True

    async def arelease_lease(self, key: str) -> None:
        """Give back a lease taken by :meth:`aacquire_lease`; failures are logged only."""
        try:
            backend = self._lease_backend()
            if backend is None:
                return
            with anyio.move_on_after(self.write_timeout):
                await backend.release_lease(f"{key}:lease")
        except Exception as exc:
            self._guard.fail("lease release", exc)

    async def await_entry(self, key: str) -> Entry | None:
        """Wait for ``key`` while another process holds its lease: the entry once it is
        stored, or ``None`` as soon as the lease is gone without one (the holder failed, was
        cancelled or stored nothing) or ``lease`` seconds have passed."""
        deadline = time.monotonic() + (self.lease or 0.0)
        lease_key = f"{key}:lease"
        while time.monotonic() < deadline:
            await anyio.sleep(_LEASE_POLL)
            entry = await self.alookup(key)
            if entry is not None:
                return entry
            try:
                backend = self._lease_backend()
                if backend is None:
                    return None
                with anyio.move_on_after(self.lookup_timeout):
                    if not await backend.lease_held(lease_key):
                        return await self.alookup(key)  # stored just before the release?
            except Exception as exc:
                self._guard.fail("lease check", exc)
                return None
        return None

    async def adelete(self, *keys: str) -> int:
        """Delete entries by key (from the in-process tier too); returns how many existed."""
        for key in keys:
            self._writes.pending.pop(key, None)
        if self._tier is not None:
            await self._tier.delete(*keys)
        return await self.backend.delete(*keys)

    async def aclear(self, namespace: str | None = None) -> int:
        """Delete every llmstash entry in ``namespace`` (default: this cache's namespace)."""
        ns = namespace if namespace is not None else self.namespace
        prefix = f"{ns}:llmstash:" if ns else "llmstash:"
        self._writes.pending.clear()
        if self._tier is not None:
            await self._tier.clear(prefix)
        return await self.backend.clear(prefix)

    async def aping(self) -> bool:
        """True when the backend answers."""
        try:
            return await self.backend.ping()
        except Exception as exc:
            logger.warning("llmstash cache: ping failed (%s)", describe(exc))
            return False

    def stats(self) -> CacheStats:
        """What this cache did in this process since it was made — hits, misses by reason,
        stores, write failures, tokens, cost and provider time saved, overall, by model and by
        namespace — plus breaker and write-path state; no I/O. ``stats["breaker_open"]``
        reads a field; ``.to_dict()`` gives plain values."""
        recorder = self._stats
        out = recorder.snapshot() if recorder is not None else CacheStats()
        breaker = self._guard.breaker
        out.type = self.type
        out.breaker_open = breaker.is_open
        out.consecutive_failures = breaker.failures
        out.pending_writes = self._writes.in_flight
        out.writes = self._writes.written
        out.writes_given_up = self._writes.given_up
        if self._local_backend is not None:
            out.backend = dict(self._local_backend.stats())
        if self._disk is not None:
            out.backend = dict(self._disk.stats())
        return out

    async def astats(
        self, fleet: bool = False, since: float | None = 3600, namespace: str | None = None
    ) -> CacheStats:
        """:meth:`stats`, or with ``fleet=True`` the sum over every process sharing this
        cache's backend for the last ``since`` seconds (rounded out to whole minutes;
        ``None``: all kept, about a week). This process's unsent counters are sent first.
        A backend that keeps no shared counters gives this process's stats. ``namespace``
        keeps only that namespace's traffic (``""``: calls without one)."""
        local = self.stats()
        if namespace is not None and self._stats is not None:
            filtered = self._stats.snapshot(namespace)
            for name in _PROCESS_FIELDS:
                setattr(filtered, name, getattr(local, name))
            local = filtered
        if not fleet:
            return local
        if since is not None:
            check_number(since, "since", minimum=0)
        backend = self.backend
        if self._stats is None or not isinstance(backend, SupportsCounters):
            return local
        await self._backends.send_counters(backend)
        buckets = await backend.read_counters(bucket_names(since))
        out = from_buckets(buckets, since, namespace)
        for name in _PROCESS_FIELDS:
            setattr(out, name, getattr(local, name))
        return out

    async def aclose(self) -> None:
        """Finish writes and close the backend(s) this cache made; a ``backend=`` passed in
        stays open (it is the caller's). Idempotent."""
        await self.aflush_writes()
        backends = self._backends
        if backends.shared is not None:
            if self._owns_shared:
                await backends.shared.aclose()
            return
        backend = backends.per_loop.pop(asyncio.get_running_loop(), None)
        if backend is not None:
            await backend.aclose()

    # LiteLLM's entry points for code that reads and writes the cache itself.

    def _entry_key(self, kwargs: Mapping[str, Any]) -> str | None:
        """``cache_key=`` as given, else ``get_cache_key(**kwargs)``; ``None`` when mode
        ``default_off`` and the arguments do not opt in (``cache={"use-cache": True}``)."""
        controls = kwargs.get("cache")
        if self.mode == "default_off" and not (
            isinstance(controls, Mapping) and controls.get("use-cache") is True
        ):
            return None
        key = kwargs.get("cache_key")
        if key is None:
            key = self.get_cache_key(**{k: v for k, v in kwargs.items() if k != "cache_key"})
        if not isinstance(key, str) or not key:
            raise InvalidRequestError(f"a cache key must be a non-empty string, got {key!r}")
        return key

    def _entry_ttl(self, kwargs: Mapping[str, Any]) -> float | None:
        controls = kwargs.get("cache")
        if isinstance(controls, Mapping) and controls.get("ttl") is not None:
            return check_ttl(controls["ttl"], 'cache={"ttl": ...}')
        if kwargs.get("ttl") is not None:
            return check_ttl(kwargs["ttl"], "ttl")
        return self.ttl

    def _entries(self, result: Any, key: str, kwargs: Mapping[str, Any]) -> dict[str, bytes]:
        """The stored bytes for ``result`` under ``key`` (an embedding: one entry per input)."""
        from ..types import EmbeddingResponse, FloatVector, ModelResponse, ModelResponseStream
        from ..types._models import decode_json
        from ._codec import encode_chat, encode_embedding, encode_stream

        now, ttl = time.time(), self._entry_ttl(kwargs)
        model = str(kwargs.get("model") or "")
        if isinstance(result, EmbeddingResponse):
            inputs = kwargs.get("input")
            items = inputs if isinstance(inputs, list) else [inputs]
            if inputs is None or len(items) != len(result.data):
                raise InvalidRequestError(
                    f"add_cache: an embedding result needs input= with one item per vector "
                    f"({len(result.data)})"
                )
            if "cache_key" in kwargs and len(items) == 1:
                keys = [key]
            else:
                rest = {k: v for k, v in kwargs.items() if k not in ("input", "cache_key")}
                keys = self.input_cache_keys(list(items), **rest)
            # The batch's tokens shared out evenly, the remainder to the first inputs.
            share, extra = divmod(result.usage.prompt_tokens, max(len(items), 1))
            out: dict[str, bytes] = {}
            ordered = sorted(result.data, key=lambda d: d.index)
            for i, (k, item) in enumerate(zip(keys, ordered, strict=True)):
                vec = item.embedding
                packed = FloatVector.frombase64(vec) if isinstance(vec, str) else FloatVector(vec)
                tokens = share + (1 if i < extra else 0)
                out[k] = encode_embedding(packed, tokens, now, ttl, model=model)
            return out
        if isinstance(result, ModelResponse):
            return {key: encode_chat(result, now, ttl, model=model or result.model)}
        if isinstance(result, (list, tuple)) and result:
            if all(isinstance(c, ModelResponseStream) for c in result):
                return {key: encode_stream(list(result), now, ttl, model=model)}
        if hasattr(result, "model_dump") and not isinstance(result, (list, tuple)):
            result = result.model_dump()  # another library's response object (pydantic)
        if isinstance(result, (str, bytes)) or isinstance(result, Mapping):
            try:
                raw = result if isinstance(result, (str, bytes)) else msgspec.json.encode(result)
                response = decode_json(raw, ModelResponse)
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
                raise InvalidRequestError(
                    f"add_cache: the result is not a chat completion ({exc})"
                ) from None
            return {key: encode_chat(response, now, ttl, model=model or response.model)}
        raise InvalidRequestError(
            "add_cache: result must be a ModelResponse (or its dict or JSON), a list of stream "
            f"chunks or an EmbeddingResponse, got {type(result).__name__}"
        )

    async def async_add_cache(self, result: Any, *args: Any, **kwargs: Any) -> None:
        """Store ``result`` as the answer to the call described by ``kwargs`` (LiteLLM's
        ``add_cache``): under ``cache_key=`` if given, else ``get_cache_key(**kwargs)``
        (``model=``, ``messages=`` or ``input=``, provider parameters). ``result`` is a
        :class:`ModelResponse` (or its ``model_dump()`` / JSON, or another library's response
        object), a list of stream chunks, or an :class:`EmbeddingResponse` with ``input=``
        (stored per input, as embedding calls read them). Lifetime: ``cache={"ttl": s}``, else
        ``ttl=``, else the cache's ``ttl``. As in LiteLLM, mode ``default_off`` stores only
        with ``cache={"use-cache": True}``, and positional arguments are ignored. A failing
        backend is logged, never raised; a result of another shape is
        :class:`InvalidRequestError`."""
        key = self._entry_key(kwargs)
        if key is None:
            return
        entries = self._entries(result, key, kwargs)
        await self.astore(entries, self._entry_ttl(kwargs))
        await self.aflush_writes()

    def add_cache(self, result: Any, *args: Any, **kwargs: Any) -> None:
        """The synchronous :meth:`async_add_cache` (from code that is not on this cache's
        event loop; a Redis cache then works on llmstash's own loop thread)."""
        key = self._entry_key(kwargs)
        if key is None:
            return
        entries = self._entries(result, key, kwargs)
        ttl = self._entry_ttl(kwargs)
        if self._local_backend is not None:
            if ttl is None or ttl > 0:
                for k, v in entries.items():
                    self._local_backend.set_nowait(k, v, ttl=ttl)
            return
        from .. import _sync

        async def store() -> None:
            await self.astore(entries, ttl)
            await self.aflush_writes()

        _sync.run(store)

    @staticmethod
    def _entry_max_age(kwargs: Mapping[str, Any]) -> float | None:
        controls = kwargs.get("cache")
        if not isinstance(controls, Mapping):
            return None
        value = controls.get("s-maxage", controls.get("s-max-age"))
        return None if value is None else check_ttl(value, 'cache={"s-maxage": ...}')

    @staticmethod
    def _entry_result(entry: Entry | None) -> Any:
        from ._codec import ChatEntry, EmbeddingEntry, StreamEntry

        if entry is None:
            return None
        if isinstance(entry, ChatEntry):
            return entry.response
        if isinstance(entry, StreamEntry):
            from .._streaming import assemble_chunks

            return assemble_chunks(entry.chunks)
        if not isinstance(entry, EmbeddingEntry):  # a Responses API or text completion entry
            from .._responses import RESPONSES, TEXT_COMPLETION

            for kind in (RESPONSES, TEXT_COMPLETION):
                answer = kind.plain_of(entry)
                if answer is not None:
                    return answer
            return None
        return {
            "object": "embedding",
            "index": 0,
            "embedding": entry.vector.tolist(),
            "prompt_tokens": entry.tokens,
        }

    async def async_get_cache(self, *args: Any, **kwargs: Any) -> Any:
        """What the cache holds for the call described by ``kwargs`` (LiteLLM's
        ``get_cache``; key as in :meth:`async_add_cache`), or ``None``: a
        :class:`ModelResponse` for a chat answer (a stored stream assembled), for one
        embedding input a dict with ``embedding``, ``index``, ``object`` and
        ``prompt_tokens``. ``cache={"s-maxage": s}`` accepts only a younger entry. Mode
        ``default_off`` reads only with ``cache={"use-cache": True}``. Never raises for backend
        trouble (a miss)."""
        key = self._entry_key(kwargs)
        if key is None:
            return None
        return self._entry_result(await self._read(key, self._entry_max_age(kwargs)))

    async def _read(self, key: str, max_age: float | None) -> Entry | None:
        """One entry for an explicit read: the lookup budget of calls is too tight for a
        connection this loop has not opened yet, so allow a second (then a logged miss)."""
        fast = self.lookup_nowait(key, max_age)
        if not isinstance(fast, _NeedsIO):
            return fast
        try:
            with anyio.fail_after(max(self.lookup_timeout, _EXPLICIT_READ_TIMEOUT)):
                raw = await self.backend.get(key)
        except Exception as exc:
            logger.warning("llmstash cache: get_cache failed (%s); a miss", describe(exc))
            return None
        found = self._decode(key, raw, max_age)
        return None if isinstance(found, Miss) else found

    def get_cache(self, *args: Any, **kwargs: Any) -> Any:
        """The synchronous :meth:`async_get_cache`."""
        key = self._entry_key(kwargs)
        if key is None:
            return None
        max_age = self._entry_max_age(kwargs)
        if self._local_backend is not None:
            found = self.lookup_nowait(key, max_age)
            return self._entry_result(found if not isinstance(found, _NeedsIO) else None)
        from .. import _sync

        async def lookup() -> Entry | None:
            return await self._read(key, max_age)

        return self._entry_result(_sync.run(lookup))


_closing: set[asyncio.Task[None]] = set()


class _Backends:
    """The backends of one cache: a shared one, or one per event loop made by ``factory``
    (the first from ``spare``, made by the constructor to check the settings). Kept apart
    from the :class:`Cache` so that nothing in it refers back to the cache, which is then
    freed (and its connections closed) as soon as its last user drops it."""

    __slots__ = ("factory", "per_loop", "recorder", "shared", "spare", "timers")

    def __init__(self) -> None:
        self.recorder: Recorder | None = None
        """The cache's counters, sent to the backend by :meth:`send_counters`."""
        self.timers: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self.shared: CacheBackend | None = None
        self.factory: Callable[[], CacheBackend] | None = None
        self.spare: CacheBackend | None = None
        self.per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CacheBackend] = (
            weakref.WeakKeyDictionary()
        )

    def current(self) -> CacheBackend:
        if self.shared is not None:
            return self.shared
        loop = asyncio.get_running_loop()
        backend = self.per_loop.get(loop)
        if backend is None:
            assert self.factory is not None
            spare, self.spare = self.spare, None
            backend = self.per_loop[loop] = spare if spare is not None else self.factory()
            made = backend

            async def end_of_loop() -> None:
                # The loop is shutting down: its connections go with it, counters sent first.
                if self.per_loop.get(loop) is made:
                    del self.per_loop[loop]
                    await self.send_counters(made)  # not to a backend closed already
                await made.aclose()

            at_shutdown(loop, end_of_loop)
        return backend

    def schedule_send(self) -> None:
        """Send the counters within :data:`FLUSH_INTERVAL` seconds, on this event loop (for a
        process that only hits: misses send them with their writes). An in-memory backend is
        sent its counters only when they are read."""
        shared = self.shared
        if shared is not None and getattr(shared, "is_local", False):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop in self.timers:
            return
        self.timers.add(loop)
        loop.call_later(FLUSH_INTERVAL, self._send_later, loop)

    def _send_later(self, loop: asyncio.AbstractEventLoop) -> None:
        self.timers.discard(loop)
        recorder = self.recorder
        # Never open a backend for this: one closed meanwhile (aclose) stays closed, and
        # the counters wait for the next write or flush.
        backend = self.shared if self.shared is not None else self.per_loop.get(loop)
        if recorder is None or not recorder.dirty or backend is None:
            return
        task = loop.create_task(self.send_counters(backend))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def send_counters(self, backend: CacheBackend) -> None:
        """Add what the counters grew by since they were last sent to ``backend``'s shared
        counters; on failure they are kept for the next send."""
        recorder = self.recorder
        if recorder is None or not recorder.dirty or not isinstance(backend, SupportsCounters):
            return
        fields = recorder.take()
        if not fields:
            return
        try:
            with anyio.fail_after(BACKGROUND_WRITE_LIMIT):
                await backend.add_counters(current_bucket(), fields, BUCKET_TTL)
        except Exception as exc:
            recorder.give_back(fields)
            logger.debug("llmstash cache: sending counters failed (%s)", describe(exc))

    def close_soon(self) -> None:
        """Close every per-loop backend on its own loop, from any thread; a backend of a
        closed loop is left to its own finalizer."""
        for loop, backend in list(self.per_loop.items()):
            if loop.is_closed():
                continue

            def close(
                backend: CacheBackend = backend, loop: asyncio.AbstractEventLoop = loop
            ) -> None:
                task = loop.create_task(backend.aclose())
                _closing.add(task)
                task.add_done_callback(_closing.discard)

            try:
                loop.call_soon_threadsafe(close)
            except RuntimeError:  # closed meanwhile
                pass
        self.per_loop.clear()


def _checked(factory: Callable[[], CacheBackend]) -> Callable[[], CacheBackend]:
    """``factory``, whose every backend is checked to implement the protocol."""

    def make() -> CacheBackend:
        backend = factory()
        if not isinstance(backend, CacheBackend):
            raise InvalidRequestError(
                f"backend_factory= returned a {type(backend).__name__}, "
                "which does not implement llmstash.caching.CacheBackend"
            )
        return backend

    return make


def _memory(max_size: int | None, max_bytes: int | None) -> MemoryBackend:
    return MemoryBackend(
        max_size=DEFAULT_MEMORY_MAX_SIZE if max_size is None else max_size,
        max_bytes=DEFAULT_MEMORY_MAX_BYTES if max_bytes is None else max_bytes,
    )
