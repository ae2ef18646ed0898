"""The async engine: prepare → key → lookup → single flight → provider → store → report.

Where to find each step:

- arguments to a validated :class:`~llmstash._request.Request`: ``_request.py`` (pure);
- the hit path: :meth:`Client._complete` → ``Cache.lookup_nowait``/``alookup`` →
  :meth:`Client._serve` (an entry of either mode served in the caller's mode);
- the miss path: :meth:`Client._chat_miss` / :meth:`Client._stream_miss` →
  :meth:`Client._ask` (fallbacks, concurrency cap, the provider) → ``Cache.astore``
  (write-through);
- stream replay and the stream end: ``_streams.py`` and :meth:`Client._stream_end`;
- single flight and the cross-process lease: ``_flight.py``;
- ``_hidden_params`` and callback events, for every path: ``_outcome.py``.
"""

from __future__ import annotations

import array
import asyncio
import base64
import enum
import logging
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, Literal

import httpx

from ._callbacks import CallbackDispatcher
from ._config import DEFAULT_TIMEOUT
from ._flight import LEAD, RETRY, Flights, take_lease
from ._log import read_env as read_log_env
from ._loops import Registration, at_shutdown
from ._mocks import mock_chat, mock_embedding, mock_stream
from ._outcome import Call, count_embedding_lookups, fail, price, succeed
from ._request import CallSettings, Request, check_inputs, check_messages, prepare
from ._streaming import assemble_chunks, response_to_chunks
from ._streams import AsyncStream, replay
from .caching import Cache
from .caching._cache import NEEDS_IO
from .caching._codec import (
    ChatEntry,
    EmbeddingEntry,
    Entry,
    StreamEntry,
    decode,
    encode_chat,
    encode_embedding,
    encode_stream,
)
from .caching._stats import GARBAGE, NO_CACHE, Miss
from .exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    CacheDataError,
    ClientClosedError,
    ContextWindowExceededError,
    EventLoopMismatchError,
    InvalidRequestError,
)
from .providers import Provider, Route, resolve
from .providers._family import asks_stream_usage
from .types import (
    Embedding,
    EmbeddingResponse,
    FloatVector,
    ModelResponse,
    ModelResponseStream,
    Usage,
)

__all__ = ["AsyncStream", "CallSettings", "Client"]

logger = logging.getLogger("llmstash")


class _State(enum.Enum):
    OPEN = 1
    CLOSED = 2


class Client:
    """The async engine behind ``acompletion`` and ``aembedding``.

    Use it directly to avoid module globals::

        async with llmstash.Client(cache=Cache(), num_retries=3) as client:
            r = await client.acompletion(model="gpt-4o-mini", messages=[...])

    It owns one pooled ``httpx.AsyncClient`` (made on first use, or pass ``http_client``,
    which then stays yours) and a callback dispatcher. ``aclose()`` flushes pending callback
    events and cache writes, then closes what it owns; it is idempotent, and a closed client
    refuses new calls with :class:`ClientClosedError`.
    """

    def __init__(
        self,
        *,
        cache: Cache | None = None,
        callbacks: Sequence[Any] = (),
        success_callback: Sequence[Callable[..., Any]] = (),
        failure_callback: Sequence[Callable[..., Any]] = (),
        num_retries: int | None = None,
        timeout: float | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.cache = cache
        self.callbacks = list(callbacks)
        self.success_callback = list(success_callback)
        self.failure_callback = list(failure_callback)
        self.num_retries = num_retries
        self.timeout = timeout
        self._http = http_client
        self._owns_http = http_client is None
        self._dispatcher = CallbackDispatcher()
        self._flights = Flights()
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._routes: dict[tuple[str, str | None, str | None, str], tuple[str, str]] = {}
        self._state = _State.OPEN
        self._default = False
        self._watcher: object | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_watcher: Registration | None = None
        read_log_env()

    async def __aenter__(self) -> Client:
        self._check_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if getattr(self, "_default", False):
            return
        if getattr(self, "_state", _State.CLOSED) is _State.OPEN and self._http is not None:
            if self._owns_http and not self._http.is_closed:
                warnings.warn(
                    f"unclosed {self!r}; use 'async with Client()' or 'await client.aclose()'",
                    ResourceWarning,
                    stacklevel=1,
                    source=self,
                )

    async def aclose(self) -> None:
        """Flush pending callback events and cache writes, then close the HTTP client this
        Client made. Idempotent."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        await self._dispatcher.aflush()
        if self.cache is not None:
            await self.cache.aflush_writes()
        if self._loop_watcher is not None:
            self._loop_watcher.cancel()
        if self._http is not None and self._owns_http:
            await self._http.aclose()

    async def aflush_callbacks(self, timeout: float | None = None) -> None:
        """Wait until every pending callback event of this client has been handled."""
        await self._dispatcher.aflush(timeout)

    def _own_settings(self) -> CallSettings:
        return CallSettings(
            self.cache,
            self.callbacks,
            self.success_callback,
            self.failure_callback,
            self.num_retries,
            self.timeout,
        )

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise ClientClosedError("this llmstash Client has been closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._move_to(loop)

    def _move_to(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve calls on ``loop`` from now on. A Client may go from one event loop to the
        next (``asyncio.run`` per call): what belonged to the old loop — its HTTP connections,
        flights in the air, concurrency slots — ended with it."""
        old = self._loop
        if old is not None and not old.is_closed() and old.is_running():
            raise EventLoopMismatchError(
                "this llmstash Client is in use on another running event loop; "
                "make one Client per event loop (or per thread)"
            )
        if self._http is not None and not self._owns_http and old is not None:
            raise EventLoopMismatchError(
                "this Client's http_client belongs to an event loop that has ended; "
                "pass an httpx.AsyncClient made on the current loop"
            )
        self._loop = loop
        self._flights = Flights()
        self._slots = {}
        if self._owns_http:
            self._http = None  # closed with its loop (below), or never made

        if self._loop_watcher is not None:
            self._loop_watcher.cancel()
        me = weakref.ref(self)

        async def end_of_loop() -> None:
            # The loop is shutting down: close the HTTP pool this client opened on it.
            client = me()
            if client is not None and client._loop is loop and client._owns_http:
                http, client._http = client._http, None
                if http is not None:
                    await http.aclose()

        self._loop_watcher = at_shutdown(loop, end_of_loop)

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled HTTP client of the current event loop (made on first use there, and
        closed when that loop shuts down)."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
                timeout=DEFAULT_TIMEOUT,
            )
        return self._http

    async def acompletion(self, model: str, messages: Any = None, **kwargs: Any) -> Any:
        """A chat completion (``stream=True``: an :class:`AsyncStream`); see
        :func:`llmstash.acompletion` for the arguments."""
        return await self._complete(self._own_settings(), True, model, messages, kwargs)

    async def aembedding(self, model: str, input: Any = None, **kwargs: Any) -> EmbeddingResponse:
        """Embeddings; see :func:`llmstash.aembedding` for the arguments."""
        return await self._embed(self._own_settings(), True, model, input, **kwargs)

    async def aresponses(self, model: str, input: Any = None, **kwargs: Any) -> Any:
        """A Responses API answer (``stream=True``: an event stream); see
        :func:`llmstash.aresponses` for the arguments."""
        from . import _responses

        return await _responses.run(
            self, _responses.RESPONSES, self._own_settings(), True, model, input, kwargs
        )

    async def atext_completion(self, model: str, prompt: Any = None, **kwargs: Any) -> Any:
        """A text completion (``stream=True``: a stream of chunks); see
        :func:`llmstash.atext_completion` for the arguments."""
        from . import _responses

        return await _responses.run(
            self, _responses.TEXT_COMPLETION, self._own_settings(), True, model, prompt, kwargs
        )

    async def _complete(
        self,
        settings: CallSettings,
        is_async: bool,
        model: Any,
        messages: Any,
        kwargs: dict[str, Any],
    ) -> Any:
        """A chat call; ``kwargs`` holds the arguments of :func:`llmstash.acompletion`."""
        try:
            start = time.time()
            self._check_open()
            req = prepare(
                settings, "acompletion" if is_async else "completion", is_async, model, kwargs
            )
            req.messages = check_messages(messages)
            call = Call(req, settings, self._dispatcher, start)
            cache = req.cache
            if cache is not None:
                try:
                    key = call.key = cache.chat_cache_key(
                        req.model, req.messages, req.key_params(), req.controls.raw
                    )
                except UnicodeEncodeError:
                    raise _not_unicode() from None
                if not req.controls.no_cache:
                    max_age = req.controls.max_age
                    if call.debug:
                        looked = time.perf_counter()
                    entry = cache.probe_nowait(key, max_age)
                    if entry is NEEDS_IO:
                        entry = await cache.aprobe(key, max_age)
                    if call.debug:
                        call.lookup_s = time.perf_counter() - looked
                    if isinstance(entry, Miss):
                        call.miss = entry
                    else:
                        served = self._serve(call, entry)
                        if served is not None:
                            return served
                        call.miss = GARBAGE  # an entry that cannot serve this call
                    shared = await self._follow(call, key)
                    if isinstance(shared, bytes):
                        served = self._serve(call, _decode_shared(shared), coalesced=True)
                        if served is not None:
                            return served
                    elif shared is LEAD:
                        self._flights.lead(call)
                    else:
                        call.alone = True  # a stalled stream leads: call, but not wait
                else:
                    call.miss = NO_CACHE
            if req.stream:
                return await self._stream_miss(call)
            return await self._chat_miss(call)
        finally:
            # Let the callback events of earlier calls run: a tight loop of in-memory hits
            # never waits on anything else, and would pile events up until some are dropped.
            if self._dispatcher.backlogged:
                await self._dispatcher.pace()

    def _serve(self, call: Call, entry: Entry | None, *, coalesced: bool = False) -> Any:
        """A hit: the entry in the caller's mode (plain or stream), or ``None`` when it cannot
        serve this call (an entry of another kind, or one that does not assemble)."""
        req = call.req
        try:
            if isinstance(entry, ChatEntry):
                if req.stream:
                    self._name_route(call, "chat")
                    chunks = response_to_chunks(entry.response)
                    return AsyncStream(self, call, replay(chunks), hit=True, coalesced=coalesced)
                response = entry.response
            elif isinstance(entry, StreamEntry):
                if req.stream:
                    self._name_route(call, "chat")
                    source = replay(entry.chunks)
                    return AsyncStream(self, call, source, hit=True, coalesced=coalesced)
                response = assemble_chunks(entry.chunks)
            else:
                if entry is not None:
                    logger.warning(
                        "llmstash cache: ignoring entry %s (%s, not a chat answer)",
                        call.key,
                        type(entry).__name__,
                    )
                return None
        except Exception as exc:
            logger.warning("llmstash cache: ignoring entry %s (%s)", call.key, exc)
            return None
        self._name_route(call, "chat")
        return succeed(call, response, hit=True, coalesced=coalesced)

    async def _chat_miss(self, call: Call) -> Any:
        req, key, cache = call.req, call.key, call.req.cache
        leased = False
        data: bytes | None = None
        try:
            if req.mock_response is not None:
                response, answered_by = mock_chat(req), req.model
            else:
                if key is not None and cache is not None and cache.lease is not None:
                    if not call.alone:
                        leased, entry = await take_lease(cache, key)
                        if entry is not None:
                            served = self._serve(call, entry)
                            if served is not None:
                                self._flights.land(call, _encode_entry(entry))
                                return served
                response, answered_by = await self._ask_chat(call)
            if key is not None:
                data = encode_chat(response, time.time(), req.ttl, model=req.model)
        except BaseException as exc:
            self._flights.land(call, exc)
            if leased:
                await cache.arelease_lease(key)  # type: ignore[union-attr, arg-type]
            fail(call, exc)
            raise
        # Waiters are served even a fallback's answer; it is not stored under this model's key.
        self._flights.land(call, data)
        if data is not None and cache is not None and key is not None:
            if answered_by == req.model and not req.controls.no_store:
                await cache.astore(
                    {key: data},
                    req.ttl,
                    model=req.model,
                    namespace=req.controls.namespace or cache.namespace,
                )
            if leased:
                await cache.arelease_lease(key)
        return succeed(call, response, hit=False, model=answered_by)

    async def _ask_chat(self, call: Call) -> tuple[ModelResponse, str]:
        """The provider's answer, trying ``fallbacks`` in turn on errors worth it; and the
        model that answered."""
        req = call.req
        assert req.messages is not None
        for attempt, target in enumerate(_targets(req)):
            provider, route = self._route(call, "chat", req.messages, target)
            try:
                async with self._slot(route.model, req.max_parallel_requests):
                    response = await provider.chat(
                        self.http,
                        route,
                        req.messages,
                        req.params,
                        timeout=req.timeout,
                        num_retries=req.num_retries,
                    )
                return response, _target_model(target)
            except Exception as exc:
                _fall_back_or_raise(req, attempt, route, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _stream_miss(self, call: Call) -> AsyncStream:
        req, key, cache = call.req, call.key, call.req.cache
        leased = False
        try:
            source: AsyncIterator[ModelResponseStream]
            if req.mock_response is not None:
                source = mock_stream(req)
            else:
                if key is not None and cache is not None and cache.lease is not None:
                    if not call.alone:
                        leased, entry = await take_lease(cache, key)
                    else:
                        entry = None
                    if entry is not None:
                        served = self._serve(call, entry)
                        if served is not None:
                            self._flights.land(call, _encode_entry(entry))
                            return served  # type: ignore[no-any-return]
                source = self._ask_stream(call)
        except BaseException as exc:
            self._flights.land(call, exc)
            if leased:
                await cache.arelease_lease(key)  # type: ignore[union-attr, arg-type]
            fail(call, exc)
            raise
        stream = AsyncStream(self, call, source, hit=False, leased=leased)
        await stream._prime()
        return stream

    async def _ask_stream(self, call: Call) -> AsyncIterator[ModelResponseStream]:
        """The provider's chunks, trying ``fallbacks`` in turn on errors worth it before the
        first chunk, within the model's concurrency cap for as long as the stream lasts."""
        req, cache = call.req, call.req.cache
        assert req.messages is not None
        storing = cache is not None and not req.controls.no_store
        for attempt, target in enumerate(_targets(req)):
            provider, route = self._route(call, "chat", req.messages, target)
            params = req.params
            if storing and not req.wants_usage and asks_stream_usage(route.provider):
                # Ask for usage so that a plain call served from this entry has it; the
                # caller, who did not ask, does not see the usage chunk.
                options = dict(params.get("stream_options") or {})
                options["include_usage"] = True
                params = {**params, "stream_options": options}
            async with self._slot(route.model, req.max_parallel_requests):
                source = provider.chat_stream(
                    self.http,
                    route,
                    req.messages,
                    params,
                    timeout=req.timeout,
                    num_retries=req.num_retries,
                )
                try:
                    try:
                        first = await source.__anext__()
                    except StopAsyncIteration:
                        return
                    except Exception as exc:
                        _fall_back_or_raise(req, attempt, route, exc)
                        continue
                    call.answered_by = _target_model(target)
                    yield first
                    async for chunk in source:
                        yield chunk
                    return
                finally:
                    aclose = getattr(source, "aclose", None)
                    if aclose is not None:
                        await aclose()

    async def _stream_end(
        self,
        call: Call,
        chunks: list[ModelResponseStream],
        *,
        hit: bool,
        coalesced: bool,
        leased: bool,
    ) -> ModelResponse | None:
        """A stream was read to its end: store it (on a miss) and report success."""
        cache, key = call.req.cache, call.key
        answered_by = call.answered_by or call.req.model
        # A stream that ended without a finish reason was cut short: never stored or shared.
        finished = any(c.finish_reason for chunk in chunks for c in chunk.choices)
        if hit or not finished or key is None or cache is None:
            self._flights.land(call, None)
        else:
            data = encode_stream(chunks, time.time(), call.req.ttl, model=call.req.model)
            self._flights.land(call, data)  # waiters are served even a fallback's answer
            if not call.req.controls.no_store and answered_by == call.req.model:
                await cache.astore(
                    {key: data},
                    call.req.ttl,
                    model=call.req.model,
                    namespace=call.req.controls.namespace or cache.namespace,
                )
        if leased and cache is not None and key is not None:
            await cache.arelease_lease(key)
        if not chunks:
            return None
        try:
            response = assemble_chunks(chunks)
        except Exception as exc:  # chunks that replay but do not add up (a hostile entry)
            logger.warning("llmstash: a stream's chunks do not assemble (%s)", exc)
            return None
        return succeed(  # type: ignore[no-any-return]
            call, response, hit=hit, coalesced=coalesced, model=answered_by
        )

    async def _stream_failed(
        self, call: Call, shared: BaseException | None, exc: BaseException | None, *, leased: bool
    ) -> None:
        """A stream failed (``exc``) or was closed early (``None``): nothing is stored."""
        self._flights.land(call, shared)
        cache, key = call.req.cache, call.key
        if leased and cache is not None and key is not None:
            await cache.arelease_lease(key)
        if exc is not None:
            fail(call, exc)

    async def _embed(
        self, settings: CallSettings, is_async: bool, model: Any, inputs: Any, **kwargs: Any
    ) -> EmbeddingResponse:
        """An embeddings call; ``kwargs`` holds the arguments of :func:`llmstash.aembedding`."""
        try:
            return await self._embeddings(settings, is_async, model, inputs, kwargs)
        finally:
            if self._dispatcher.backlogged:
                await self._dispatcher.pace()

    async def _embeddings(
        self,
        settings: CallSettings,
        is_async: bool,
        model: Any,
        inputs: Any,
        kwargs: dict[str, Any],
    ) -> EmbeddingResponse:
        start = time.time()
        self._check_open()
        req = prepare(settings, "aembedding" if is_async else "embedding", is_async, model, kwargs)
        req.inputs = inputs = check_inputs(inputs)
        call = Call(req, settings, self._dispatcher, start)
        cache = req.cache
        n = len(inputs)
        vectors: list[Any] = [None] * n
        tokens = [0] * n
        keys: list[str] = []
        misses: dict[int, Miss] = {}
        if cache is not None:
            try:
                keys = cache.input_cache_keys(
                    inputs, model=req.model, **req.key_params(), cache=req.controls.raw
                )
            except UnicodeEncodeError:
                raise _not_unicode() from None
            if not req.controls.no_cache:
                if call.debug:
                    looked = time.perf_counter()
                found = await cache.aprobe_many(keys, req.controls.max_age)
                if call.debug:
                    call.lookup_s = time.perf_counter() - looked
                for i, entry in enumerate(found):
                    if isinstance(entry, EmbeddingEntry):
                        vectors[i], tokens[i] = entry.vector, entry.tokens
                    elif isinstance(entry, Miss):
                        misses[i] = entry
                    else:
                        misses[i] = GARBAGE
                        logger.warning(
                            "llmstash cache: ignoring entry %s (%s, not an embedding)",
                            keys[i],
                            type(entry).__name__,
                        )
            else:
                misses = dict.fromkeys(range(n), NO_CACHE)
        missing = [i for i in range(n) if vectors[i] is None]
        coalesced = False
        if missing and cache is not None and not req.controls.no_cache:
            coalesced = await self._join_embedding(call, keys, missing, vectors, tokens)
            if coalesced:
                missing = []
        if cache is not None:
            count_embedding_lookups(call, cache, tokens, misses, missing, coalesced)
        fresh_cost: float | None = 0.0
        if missing:
            asked = [inputs[i] for i in missing]
            try:
                if req.mock_response is not None:
                    fresh = mock_embedding(req.mock_response, asked, req.model)
                else:
                    fresh = await self._ask_embedding(call, asked)
                by_index = {d.index: d.embedding for d in fresh.data}
                lost = [i for j, i in enumerate(missing) if by_index.get(j) is None]
                if lost:
                    raise APIResponseValidationError(
                        f"the provider returned {len(fresh.data)} embeddings for "
                        f"{len(asked)} inputs (none for input {lost[0]})"
                    )
                fresh_cost = price(req, fresh)
                shares = _split_tokens(fresh.usage.prompt_tokens, asked)
                now = time.time()
                to_store: dict[str, bytes] = {}
                for j, i in enumerate(missing):
                    vec = by_index[j]
                    vectors[i] = vec
                    tokens[i] = shares[j]
                    if cache is not None:
                        try:
                            packed = FloatVector.frombase64(vec) if isinstance(vec, str) else vec
                        except ValueError as exc:
                            raise APIResponseValidationError(
                                f"the provider's embedding {j} is not packed float32: {exc}"
                            ) from None
                        to_store[keys[i]] = encode_embedding(
                            packed, shares[j], now, req.ttl, model=req.model
                        )
            except BaseException as exc:
                self._flights.land(call, exc)  # waiters never wait on a leader that failed
                fail(call, exc)
                raise
            self._flights.land(call, to_store or None)
            if to_store and cache is not None and not req.controls.no_store:
                await cache.astore(
                    to_store,
                    req.ttl,
                    model=req.model,
                    namespace=req.controls.namespace or cache.namespace,
                )
        want_b64 = req.params.get("encoding_format") == "base64"
        data = [
            Embedding(embedding=_as_b64(v) if want_b64 else v, index=i)
            for i, v in enumerate(vectors)
        ]
        total = sum(tokens)
        response = EmbeddingResponse(
            data=data,
            model=req.model.split("/", 1)[1] if "/" in req.model else req.model,
            usage=Usage(prompt_tokens=total, total_tokens=total),
        )
        hit = not missing
        if hit:
            self._name_route(call, "embedding")
        if cache is not None:
            call.key = keys[0] if n == 1 else None
        extra = {"cache_keys": keys, "cached_inputs": n - len(missing)}
        return succeed(  # type: ignore[no-any-return]
            call, response, hit=hit, coalesced=coalesced, cost=fresh_cost, extra=extra
        )

    async def _join_embedding(
        self,
        call: Call,
        keys: list[str],
        missing: list[int],
        vectors: list[Any],
        tokens: list[int],
    ) -> bool:
        """Wait for an identical embedding call in flight (the same missing inputs) and take
        its vectors (True); or lead a flight for these inputs (False)."""
        flight_key = "\n".join(keys[i] for i in missing)
        shared = await self._follow(call, flight_key)
        if isinstance(shared, dict):
            entries = [_decode_shared(shared.get(keys[i], b"")) for i in missing]
            if all(isinstance(e, EmbeddingEntry) for e in entries):
                for i, entry in zip(missing, entries, strict=True):
                    assert isinstance(entry, EmbeddingEntry)
                    vectors[i], tokens[i] = entry.vector, entry.tokens
                return True
        elif shared is LEAD:
            self._flights.lead(call, flight_key)
        return False

    async def _follow(self, call: Call, key: str) -> object:
        """Wait on the flight of ``key``: its entry bytes (or an embedding flight's entries by
        key), :data:`LEAD` or :data:`ALONE`. An error any identical call would get is reported
        for this call too and raised."""
        while True:
            shared = await self._flights.wait(key)
            if shared is RETRY:
                # The leader gave up: the first waiter to get here leads (with no await in
                # between), the others wait on it.
                continue
            if isinstance(shared, Exception):
                fail(call, shared)
                raise shared.with_traceback(None)
            return shared

    async def _ask_embedding(self, call: Call, inputs: list[Any]) -> EmbeddingResponse:
        req = call.req
        provider, route = self._route(call, "embedding", inputs, req.model)
        async with self._slot(route.model, req.max_parallel_requests):
            return await provider.embed(
                self.http,
                route,
                inputs,
                req.params,
                timeout=req.timeout,
                num_retries=req.num_retries,
            )

    def _slot(self, model: str, limit: int | None) -> AbstractAsyncContextManager[Any]:
        """At most ``limit`` concurrent provider requests for ``model`` on this client."""
        if limit is None:
            return nullcontext()
        semaphore = self._slots.get((model, limit))
        if semaphore is None:
            semaphore = self._slots[(model, limit)] = asyncio.Semaphore(limit)
        return semaphore

    def _route(
        self,
        call: Call,
        call_type: Literal["chat", "embedding"],
        payload: Any,
        target: Any,
    ) -> tuple[Provider, Route]:
        """Resolve the provider, then tell pre-call hooks what is about to be sent."""
        req = call.req
        overrides: dict[str, Any] = {}
        if isinstance(target, dict):
            overrides = {
                k: target[k] for k in ("api_base", "api_key", "api_version") if k in target
            }
            target = target["model"]
        credentials: dict[str, Any] = {}
        if req.azure_ad_token is not None:
            credentials["azure_ad_token"] = req.azure_ad_token
        if req.azure_ad_token_provider is not None:
            credentials["azure_ad_token_provider"] = req.azure_ad_token_provider
        provider, route = resolve(
            target,
            api_base=overrides.get("api_base", req.api_base),
            api_key=overrides.get("api_key", req.api_key),
            api_version=overrides.get("api_version", req.api_version),
            call_type=call_type,
            **credentials,
        )
        call.provider_name = route.provider
        call.resolved_base = route.api_base
        if len(self._routes) > 1024:
            self._routes.clear()
        self._routes[(req.model, req.api_base, req.api_version, call_type)] = (
            route.provider,
            route.api_base,
        )
        callbacks = call.settings.callbacks
        if callbacks:
            self._dispatcher.pre_call(
                callbacks, req.model, payload, call.event_kwargs(), is_async=req.is_async
            )
        return provider, route

    def _name_route(self, call: Call, call_type: Literal["chat", "embedding"]) -> None:
        """On a hit, name the provider and server the call would have gone to, as the miss
        did (remembered from the misses of this client; resolved once otherwise)."""
        req = call.req
        key = (req.model, req.api_base, req.api_version, call_type)
        named = self._routes.get(key)
        if named is None:
            try:
                _, route = resolve(
                    req.model,
                    api_base=req.api_base,
                    api_key=req.api_key or "unused",  # naming only: no request is made
                    api_version=req.api_version,
                    call_type=call_type,
                )
            except Exception:
                return
            named = self._routes[key] = (route.provider, route.api_base)
        call.provider_name, call.resolved_base = named


def _targets(req: Request) -> list[Any]:
    return [req.model, *req.fallbacks]


def _target_model(target: Any) -> str:
    return str(target["model"]) if isinstance(target, dict) else str(target)


def _fall_back_or_raise(req: Request, attempt: int, route: Route, exc: Exception) -> None:
    """Re-raise ``exc`` unless another of the call's ``fallbacks`` is left and the error is
    worth trying one for; then say which model comes next."""
    if attempt == len(req.fallbacks) or not _worth_falling_back(exc):
        raise exc
    logger.warning(
        "llmstash: %s failed (%s); falling back to %s",
        route.model,
        type(exc).__name__,
        _target_model(req.fallbacks[attempt]),
    )


def _worth_falling_back(exc: Exception) -> bool:
    """Errors another model may not have: rate limits, server errors, timeouts, lost
    connections, a context window too small."""
    if isinstance(exc, (APIConnectionError, ContextWindowExceededError)):
        return True
    if isinstance(exc, APIStatusError):
        status = exc.status_code or 0
        return status in (408, 429) or status >= 500
    return False


def _not_unicode() -> InvalidRequestError:
    """Text that is not valid Unicode is the caller's mistake."""
    return InvalidRequestError(
        "the call holds text that is not valid Unicode (a lone surrogate such as "
        "'\\ud800'); clean it before sending"
    )


def _decode_shared(data: bytes) -> Entry | None:
    try:
        return decode(data)
    except CacheDataError:
        return None


def _encode_entry(entry: Entry) -> bytes | None:
    """Bytes for an entry another process stored, to hand it on to this process's waiters."""
    ttl = entry.expires_at - entry.stored_at if entry.expires_at else None
    if isinstance(entry, ChatEntry):
        return encode_chat(entry.response, entry.stored_at, ttl)
    if isinstance(entry, StreamEntry):
        return encode_stream(entry.chunks, entry.stored_at, ttl)
    return None


def _split_tokens(total: int, inputs: Sequence[Any]) -> list[int]:
    """Share a batch's prompt tokens among its inputs, by length, summing exactly to total."""
    sizes = [max(len(x), 1) for x in inputs]
    whole = sum(sizes)
    shares = [total * s // whole for s in sizes]
    shares[-1] += total - sum(shares)
    return shares


def _as_b64(vec: Any) -> Any:
    if isinstance(vec, FloatVector):
        if vec.typecode != "f":
            vec = FloatVector(array.array("f", vec.tolist()))
        return base64.b64encode(vec.tobytes()).decode()
    return vec
