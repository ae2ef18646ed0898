"""The async engine: validate → key → lookup → single-flight → provider → store → dispatch."""

from __future__ import annotations

import asyncio
import base64
import enum
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import httpx
import msgspec

from ._callbacks import CallbackDispatcher
from ._config import DEFAULT_NUM_RETRIES, DEFAULT_TIMEOUT
from ._cost import completion_cost, embedding_cost
from ._streaming import assemble_chunks, response_to_chunks
from .caching import Cache
from .caching._cache import NEEDS_IO
from .caching._codec import (
    ChatEntry,
    EmbeddingEntry,
    StreamEntry,
    decode,
    encode_chat,
    encode_embedding,
    encode_stream,
)
KIND_CHAT, KIND_STREAM = 1, 2
from .exceptions import APIStatusError, ClientClosedError, InvalidRequestError
from .providers import Provider, Route, resolve
from .types import (
    Choices,
    Embedding,
    EmbeddingResponse,
    FloatVector,
    Message,
    ModelResponse,
    ModelResponseStream,
    Usage,
    to_builtins,
)

__all__ = ["AsyncStream", "CallSettings", "Client"]

# Arguments LiteLLM users pass that steer the call but are never sent to a provider.
_LOCAL_PARAMS: Final = frozenset(
    {
        "metadata",
        "litellm_call_id",
        "litellm_logging_obj",
        "logger_fn",
        "proxy_server_request",
        "request_timeout",
        "max_retries",
        "custom_llm_provider",
        "no-log",
        # LiteLLM SDK settings that steer its router, pricing or logging, not the provider
        "drop_params",
        "fallbacks",
        "context_window_fallback_dict",
        "model_list",
        "input_cost_per_token",
        "output_cost_per_token",
        "mock_timeout",
        "litellm_trace_id",
        "litellm_session_id",
        "preset_cache_key",
        "caching_groups",
        "max_parallel_requests",
    }
)
_KNOWN_PREFIXES: Final = ("openai", "azure", "anthropic")


class CallSettings(msgspec.Struct, frozen=True):
    """The settings one call runs with: the Client's own, or LiteLLM-style module globals."""

    cache: Cache | None = None
    callbacks: Sequence[Any] = ()
    success_callback: Sequence[Callable[..., Any]] = ()
    failure_callback: Sequence[Callable[..., Any]] = ()
    num_retries: int | None = None
    timeout: float | None = None


class _State(enum.Enum):
    OPEN = 1
    CLOSED = 2


class _Call(msgspec.Struct):
    """Everything about one call that the stages after validation need."""

    settings: CallSettings
    is_async: bool
    call_type: str
    model: str
    params: dict[str, Any]
    api_base: str | None
    api_key: str | None
    api_version: str | None
    timeout: float
    num_retries: int
    metadata: Any
    cache: Cache | None
    key: str | None
    ttl: float | None
    no_store: bool
    start: float
    messages: list[dict[str, Any]] | None = None
    inputs: list[Any] | None = None
    stream: bool = False
    provider_name: str | None = None
    resolved_base: str | None = None
    call_id: str | None = None
    controls: Mapping[str, Any] | None = None
    idle_since: float | None = None
    """For a streamed leader: loop time since which it waits on its reader (None: busy)."""
    flight: asyncio.Future[bytes | Exception | None] | None = None


class Client:
    """The async engine behind ``acompletion`` and ``aembedding``.

    Use it directly to avoid module globals::

        async with llmstash.Client(cache=Cache(), num_retries=3) as client:
            r = await client.acompletion(model="gpt-4o-mini", messages=[...])

    It owns one pooled ``httpx.AsyncClient`` (made on first use, or pass ``http_client``,
    which then stays yours) and a callback dispatcher. ``aclose()`` flushes pending callback
    events and background cache writes, then closes what it owns; it is idempotent, and a
    closed client refuses new calls with :class:`ClientClosedError`.
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
        self._flights: dict[str, _Call] = {}
        self._state = _State.OPEN
        self._default = False
        self._watcher: object | None = None

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

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled HTTP client (made on first use)."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
                timeout=DEFAULT_TIMEOUT,
            )
        return self._http

    async def acompletion(self, model: str, messages: Any = None, **kwargs: Any) -> Any:
        """A chat completion (``stream=True``: an :class:`AsyncStream`); see
        :func:`llmstash.acompletion` for the arguments."""
        return await self._complete(self._own_settings(), True, model, messages, **kwargs)

    async def aembedding(self, model: str, input: Any = None, **kwargs: Any) -> EmbeddingResponse:
        """Embeddings; see :func:`llmstash.aembedding` for the arguments."""
        return await self._embed(self._own_settings(), True, model, input, **kwargs)

    async def _complete(
        self, settings: CallSettings, is_async: bool, model: str, messages: Any, **params: Any
    ) -> Any:
        """A chat call; ``params`` holds the arguments of :func:`llmstash.acompletion`."""
        start = time.time()
        model = _check_model(model)
        messages = _check_messages(messages)
        stream = params.pop("stream", False)
        mock_response = params.pop("mock_response", None)
        call_type = "acompletion" if is_async else "completion"
        call = self._prepare(settings, is_async, call_type, model, params, start)
        cache = call.controls
        call.messages = messages
        call.stream = bool(stream)
        c = call.cache
        no_cache = _flag(cache, "no-cache")
        if c is not None and call.key is None:
            call.key = c.chat_cache_key(model, messages, _key_params(call), cache)
        if c is not None and call.key is not None and not no_cache:
            max_age = _max_age(cache)
            found = c.lookup_nowait(call.key, max_age)
            entry = await c.alookup(call.key, max_age) if found is NEEDS_IO else found
            if isinstance(entry, ChatEntry):
                return self._chat_hit(call, KIND_CHAT, entry.response)
            if isinstance(entry, StreamEntry):
                return self._chat_hit(call, KIND_STREAM, entry.chunks)
            shared = await self._follow(call.key)
            if isinstance(shared, Exception):
                raise shared
            if isinstance(shared, bytes):
                entry = decode(shared)
                if isinstance(entry, ChatEntry):
                    return self._chat_hit(call, KIND_CHAT, entry.response, joined=True)
                if isinstance(entry, StreamEntry):
                    return self._chat_hit(call, KIND_STREAM, entry.chunks, joined=True)
            if shared is _LEAD:
                self._lead_flight(call)
        if call.stream:
            return await self._stream_miss(call, mock_response)
        return await self._chat_miss(call, mock_response)

    async def _follow(self, key: str) -> bytes | Exception | object:
        """Wait for an identical call in flight: its stored bytes or shared error, or
        ``_LEAD`` (none in flight: lead one) or ``_ALONE`` (its reader stalled: call alone)."""
        while True:
            leader = self._flights.get(key)
            if leader is None or leader.flight is None:
                return _LEAD
            outcome: object = await _await_leader(leader, leader.flight)
            if outcome is None:
                continue  # the leader gave up; another follower may lead now
            return outcome

    def _lead_flight(self, call: _Call) -> None:
        """Make this call the one provider request that identical concurrent misses await."""
        if call.key is not None and call.key not in self._flights:
            call.flight = asyncio.get_running_loop().create_future()
            self._flights[call.key] = call

    def _land_flight(self, call: _Call, outcome: bytes | Exception | None) -> None:
        """Hand followers the stored bytes, a shareable error, or ``None`` (look again)."""
        flight = call.flight
        if flight is not None:
            call.flight = None
            if self._flights.get(call.key or "") is call:
                del self._flights[call.key or ""]
            if isinstance(outcome, Exception) and not _shareable(outcome):
                outcome = None
            flight.set_result(outcome)

    def _chat_hit(self, call: _Call, kind: int, value: Any, *, joined: bool = False) -> Any:
        if kind == KIND_STREAM:
            chunks: list[ModelResponseStream] = value
            if call.stream:
                return AsyncStream(self, call, _replay(chunks), hit=True)
            response = assemble_chunks(chunks)
        elif kind == KIND_CHAT:
            response = value
            if call.stream:
                return AsyncStream(self, call, _replay(response_to_chunks(response)), hit=True)
        else:  # pragma: no cover - callers pass chat and stream entries only
            raise AssertionError(f"not a chat entry: kind {kind}")
        hit = not joined
        response._hidden_params = {
            "cache_hit": hit,
            "cache_key": call.key,
            "response_cost": 0.0 if hit else completion_cost(call.model, response.usage),
        }
        if self._has_hooks(call.settings):
            saved = completion_cost(call.model, response.usage)
            self._success(call, response, cache_hit=hit, cost=saved, saved_cost=saved)
        return response

    async def _chat_miss(self, call: _Call, mock_response: Any) -> ModelResponse:
        key = call.key
        outcome: bytes | Exception | None = None
        leased = False
        try:
            if mock_response is not None:
                response = _mock_chat(call, mock_response)
            else:
                if key is not None and call.cache is not None and call.cache.lease is not None:
                    leased = await call.cache.aacquire_lease(key)
                    if not leased:
                        entry = await call.cache.await_entry(key)
                        if isinstance(entry, ChatEntry):
                            return self._chat_hit(call, KIND_CHAT, entry.response)  # type: ignore[no-any-return]
                        if isinstance(entry, StreamEntry):
                            return self._chat_hit(call, KIND_STREAM, entry.chunks)  # type: ignore[no-any-return]
                response = await self._call_provider(call)
            if key is not None:
                outcome = encode_chat(response, time.time(), call.ttl)
                if not call.no_store and call.cache is not None:
                    await call.cache.astore({key: outcome}, call.ttl)
        except BaseException as exc:
            if isinstance(exc, Exception):
                outcome = exc
                if self._has_hooks(call.settings):
                    self._failure(call, exc)
            raise
        finally:
            self._land_flight(call, outcome)
            if leased:
                await call.cache.arelease_lease(key)  # type: ignore[union-attr, arg-type]
        cost = completion_cost(call.model, response.usage)
        response._hidden_params = {
            "cache_hit": False,
            "cache_key": key,
            "response_cost": cost,
            "custom_llm_provider": call.provider_name,
            "api_base": call.resolved_base,
        }
        if self._has_hooks(call.settings):
            self._success(call, response, cache_hit=False, cost=cost)
        return response

    async def _call_provider(self, call: _Call) -> ModelResponse:
        assert call.messages is not None
        provider, route = self._route(call, "chat", call.messages)
        return await provider.chat(
            self.http,
            route,
            call.messages,
            call.params,
            timeout=call.timeout,
            num_retries=call.num_retries,
        )

    async def _stream_miss(self, call: _Call, mock_response: Any) -> AsyncStream:
        try:
            source: AsyncIterator[ModelResponseStream]
            if mock_response is not None:
                source = _replay(response_to_chunks(_mock_chat(call, mock_response)))
            else:
                assert call.messages is not None
                provider, route = self._route(call, "chat", call.messages)
                source = provider.chat_stream(
                    self.http,
                    route,
                    call.messages,
                    call.params,
                    timeout=call.timeout,
                    num_retries=call.num_retries,
                )
        except BaseException as exc:
            self._land_flight(call, exc if isinstance(exc, Exception) else None)
            if isinstance(exc, Exception) and self._has_hooks(call.settings):
                self._failure(call, exc)
            raise
        stream = AsyncStream(self, call, source, hit=False)
        await stream._prime()
        return stream

    def _stream_done(
        self, call: _Call, chunks: list[ModelResponseStream], *, hit: bool
    ) -> ModelResponse | None:
        """A stream was read to its end: store it (on a miss) and report success."""
        if not chunks:
            self._land_flight(call, None)
            return None
        # A stream that ended without a finish reason was cut short: never stored or shared.
        finished = any(c.finish_reason for chunk in chunks for c in chunk.choices)
        if not finished:
            self._land_flight(call, None)
        elif not hit and call.key is not None:
            data = encode_stream(chunks, time.time(), call.ttl)
            if not call.no_store and call.cache is not None:
                call.cache._tmp_store({call.key: data}, call.ttl)
            self._land_flight(call, data)
        response = assemble_chunks(chunks)
        cost = completion_cost(call.model, response.usage)
        response._hidden_params = {
            "cache_hit": hit,
            "cache_key": call.key,
            "response_cost": 0.0 if hit else cost,
        }
        if self._has_hooks(call.settings):
            if hit:
                self._success(call, response, cache_hit=True, saved_cost=cost)
            else:
                self._success(call, response, cache_hit=False, cost=cost)
        return response

    async def _embed(
        self, settings: CallSettings, is_async: bool, model: str, inputs: Any, **params: Any
    ) -> EmbeddingResponse:
        """An embeddings call; ``params`` holds the arguments of :func:`llmstash.aembedding`."""
        start = time.time()
        model = _check_model(model)
        inputs = _check_inputs(inputs)
        mock_response = params.pop("mock_response", None)
        call_type = "aembedding" if is_async else "embedding"
        call = self._prepare(settings, is_async, call_type, model, params, start)
        cache = call.controls
        call.inputs = inputs
        c = call.cache
        n = len(inputs)
        vectors: list[Any] = [None] * n
        tokens = [0] * n
        keys: list[str] = []
        if c is not None:
            keys = c.input_cache_keys(inputs, model=model, **_key_params(call), cache=cache)
            if not _flag(cache, "no-cache"):
                entries = await c.alookup_many(keys, _max_age(cache))
                for i, entry in enumerate(entries):
                    if isinstance(entry, EmbeddingEntry):
                        vectors[i], tokens[i] = entry.vector, entry.tokens
        missing = [i for i in range(n) if vectors[i] is None]
        fresh_cost: float | None = 0.0
        if missing:
            try:
                if mock_response is not None:
                    fresh = _mock_embedding(mock_response, [inputs[i] for i in missing])
                else:
                    fresh = await self._embed_provider(call, [inputs[i] for i in missing])
            except Exception as exc:
                if self._has_hooks(call.settings):
                    self._failure(call, exc)
                raise
            fresh_cost = embedding_cost(model, fresh.usage)
            shares = _split_tokens(fresh.usage.prompt_tokens, [inputs[i] for i in missing])
            by_index = {d.index: d.embedding for d in fresh.data}
            now = time.time()
            to_store: dict[str, bytes] = {}
            for j, i in enumerate(missing):
                vec = by_index.get(j)
                if vec is None:
                    raise InvalidRequestError(f"provider returned no embedding for input {i}")
                vectors[i] = vec
                tokens[i] = shares[j]
                if c is not None and not call.no_store:
                    packed = FloatVector.frombase64(vec) if isinstance(vec, str) else vec
                    to_store[keys[i]] = encode_embedding(packed, shares[j], now, call.ttl)
            if to_store and c is not None:
                await c.astore(to_store, call.ttl)
        want_b64 = params.get("encoding_format") == "base64"
        data = [
            Embedding(embedding=_as_b64(v) if want_b64 else v, index=i)
            for i, v in enumerate(vectors)
        ]
        total = sum(tokens)
        response = EmbeddingResponse(
            data=data,
            model=model.split("/", 1)[1] if "/" in model else model,
            usage=Usage(prompt_tokens=total, total_tokens=total),
        )
        hit = not missing
        response._hidden_params = {
            "cache_hit": hit,
            "cache_key": keys[0] if len(keys) == 1 else None,
            "cache_keys": keys,
            "cached_inputs": n - len(missing),
            "response_cost": fresh_cost,
        }
        if self._has_hooks(call.settings):
            self._success(
                call,
                response,
                cache_hit=hit,
                cost=fresh_cost,
                saved_cost=embedding_cost(model, response.usage) if hit else None,
            )
        return response

    async def _embed_provider(self, call: _Call, inputs: list[Any]) -> EmbeddingResponse:
        provider, route = self._route(call, "embedding", inputs)
        return await provider.embed(
            self.http,
            route,
            inputs,
            call.params,
            timeout=call.timeout,
            num_retries=call.num_retries,
        )

    def _prepare(
        self,
        settings: CallSettings,
        is_async: bool,
        call_type: str,
        model: str,
        params: dict[str, Any],
        start: float,
    ) -> _Call:
        """Take the controls out of ``params`` (what remains goes to the provider) and settle
        the call's settings: cache, ttl, timeout, retries."""
        self._check_open()
        caching = params.pop("caching", None)
        controls = params.pop("cache", None)
        api_base = params.pop("api_base", None)
        api_key = params.pop("api_key", None)
        api_version = params.pop("api_version", None)
        timeout = params.pop("timeout", None)
        num_retries = params.pop("num_retries", None)
        if controls is not None and not isinstance(controls, Mapping):
            raise InvalidRequestError("cache= takes a dict of controls, e.g. {'no-cache': True}")
        ttl = metadata = None
        if params:
            ttl = params.pop("ttl", None)
            metadata = params.pop("metadata", None)
            if "request_timeout" in params and timeout is None:
                timeout = params["request_timeout"]
            if "max_retries" in params and num_retries is None:
                num_retries = params["max_retries"]
            if api_base is None and "base_url" in params:
                api_base = params.pop("base_url")  # LiteLLM's alias
            _lift_litellm_params(params)
            provider_hint = params.get("custom_llm_provider")
            if provider_hint and "/" not in model and provider_hint in _KNOWN_PREFIXES:
                model = f"{provider_hint}/{model}"
            for name in _LOCAL_PARAMS.intersection(params):
                del params[name]
            for name in [k for k, v in params.items() if v is None]:
                del params[name]
        if controls and "ttl" in controls:
            ttl = controls["ttl"]
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
            raise InvalidRequestError("ttl must be a number of seconds")
        cache = settings.cache
        if cache is not None and not _should_cache(cache, caching, controls, call_type):
            cache = None
        if num_retries is None:
            num_retries = (
                settings.num_retries if settings.num_retries is not None else DEFAULT_NUM_RETRIES
            )
        if timeout is None:
            timeout = settings.timeout if settings.timeout is not None else DEFAULT_TIMEOUT
        elif isinstance(timeout, httpx.Timeout):
            timeout = timeout.read or DEFAULT_TIMEOUT
        return _Call(
            settings=settings,
            is_async=is_async,
            call_type=call_type,
            model=model,
            params=params,
            api_base=api_base,
            api_key=api_key,
            api_version=api_version,
            timeout=float(timeout),
            num_retries=int(num_retries),
            metadata=metadata,
            cache=cache,
            key=None,
            ttl=ttl if ttl is not None else (cache.ttl if cache is not None else None),
            no_store=_flag(controls, "no-store"),
            start=start,
            controls=controls,
        )

    def _route(
        self, call: _Call, call_type: Literal["chat", "embedding"], payload: Any
    ) -> tuple[Provider, Route]:
        """Resolve the provider, then tell pre-call hooks what is about to be sent."""
        provider, route = resolve(
            call.model,
            api_base=call.api_base,
            api_key=call.api_key,
            api_version=call.api_version,
            call_type=call_type,
        )
        call.provider_name = route.provider
        call.resolved_base = route.api_base
        if call.settings.callbacks:
            self._dispatcher.pre_call(
                call.settings.callbacks,
                call.model,
                payload,
                self._event_kwargs(call),
                is_async=call.is_async,
            )
        return provider, route

    @staticmethod
    def _has_hooks(settings: CallSettings) -> bool:
        return bool(settings.callbacks or settings.success_callback or settings.failure_callback)

    def _event_kwargs(self, call: _Call) -> dict[str, Any]:
        if call.call_id is None:
            call.call_id = str(uuid.uuid4())
        kwargs: dict[str, Any] = {
            "model": call.model,
            "optional_params": dict(call.params),
            "call_type": call.call_type,
            "stream": call.stream,
            "api_base": call.resolved_base or call.api_base,
            "custom_llm_provider": call.provider_name,
            "metadata": call.metadata,
            "litellm_params": {"metadata": call.metadata, "api_base": call.resolved_base},
            "litellm_call_id": call.call_id,
            "start_time": datetime.fromtimestamp(call.start),
            "cache_key": call.key,
        }
        if call.messages is not None:
            kwargs["messages"] = call.messages
        if call.inputs is not None:
            kwargs["input"] = call.inputs
        kwargs.update(call.params)
        return kwargs

    def _success(
        self,
        call: _Call,
        response: Any,
        *,
        cache_hit: bool,
        cost: float | None = None,
        saved_cost: float | None = None,
    ) -> None:
        s = call.settings
        end = time.time()
        kwargs = self._event_kwargs(call)
        kwargs["cache_hit"] = cache_hit
        kwargs["end_time"] = datetime.fromtimestamp(end)
        kwargs["response_cost"] = 0.0 if cache_hit else cost
        if cache_hit:
            kwargs["saved_cost"] = saved_cost
        self._dispatcher.success(
            s.callbacks,
            s.success_callback,
            kwargs,
            response,
            kwargs["start_time"],
            kwargs["end_time"],
            is_async=call.is_async,
        )

    def _failure(self, call: _Call, exc: BaseException) -> None:
        s = call.settings
        kwargs = self._event_kwargs(call)
        kwargs["exception"] = exc
        kwargs["cache_hit"] = False
        kwargs["end_time"] = datetime.now()
        self._dispatcher.failure(
            s.callbacks,
            s.failure_callback,
            kwargs,
            exc,
            kwargs["start_time"],
            kwargs["end_time"],
            is_async=call.is_async,
        )


class AsyncStream:
    """An async iterator of :class:`ModelResponseStream` chunks (what ``acompletion(...,
    stream=True)`` returns). Read to its end, a miss is stored and success callbacks fire
    with the assembled response; closed early (``await stream.aclose()``), nothing is stored
    and the HTTP response is closed."""

    def __init__(
        self,
        client: Client,
        call: _Call,
        source: AsyncIterator[ModelResponseStream],
        *,
        hit: bool,
    ) -> None:
        self._client = client
        self._call = call
        self._source = source
        self._hit = hit
        self._chunks: list[ModelResponseStream] = []
        self._first: ModelResponseStream | None = None
        self._done = False
        self.response: ModelResponse | None = None
        """The assembled response, once the stream has been read to its end."""

    @property
    def cache_hit(self) -> bool:
        """Whether this stream replays a cached entry."""
        return self._hit

    async def _prime(self) -> None:
        # Send the request now, so that HTTP errors raise from `await acompletion(...)`.
        try:
            self._first = await self._source.__anext__()
            self._call.idle_since = asyncio.get_running_loop().time()
        except StopAsyncIteration:
            self._finish()
        except BaseException as exc:
            self._fail(exc)
            raise

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> ModelResponseStream:
        call = self._call
        if self._first is not None:
            chunk, self._first = self._first, None
        else:
            call.idle_since = None
            if self._done:
                raise StopAsyncIteration
            try:
                chunk = await self._source.__anext__()
            except StopAsyncIteration:
                self._finish()
                raise
            except BaseException as exc:
                self._fail(exc)
                raise
        self._chunks.append(chunk)
        if call.flight is not None:
            call.idle_since = asyncio.get_running_loop().time()
        if call.settings.callbacks:
            self._client._dispatcher.stream_event(
                call.settings.callbacks,
                self._client._event_kwargs(call),
                chunk,
                datetime.fromtimestamp(call.start),
                datetime.now(),
                is_async=call.is_async,
            )
        return chunk

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self.response = self._client._stream_done(self._call, self._chunks, hit=self._hit)

    def _fail(self, exc: BaseException) -> None:
        if not self._done:
            self._done = True
            # Followers share an error raised before any chunk; after that they retry alone.
            shared = exc if isinstance(exc, Exception) and not self._chunks else None
            self._client._land_flight(self._call, shared)
            if isinstance(exc, Exception) and Client._has_hooks(self._call.settings):
                self._client._failure(self._call, exc)

    async def aclose(self) -> None:
        """Stop early: close the HTTP response; nothing is stored."""
        if not self._done:
            self._done = True
            self._client._land_flight(self._call, None)
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                await aclose()

    def __del__(self) -> None:
        # A stream dropped unread must not keep identical calls waiting for it.
        call = getattr(self, "_call", None)
        if call is not None and call.flight is not None and not call.flight.done():
            self._client._land_flight(call, None)

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


_LEAD = object()
_ALONE = object()
_STREAM_IDLE: Final = 1.0
"""Seconds followers wait on a streamed leader whose reader has stopped asking for chunks
(e.g. the same task asked again before reading the first stream); then they call alone."""
_SHARED_STATUSES: Final = frozenset({400, 404, 413, 422})


def _shareable(exc: Exception) -> bool:
    """Errors that any identical call would get: about the request, or the provider's own
    failure. Credentials, rate limits and timeouts are the caller's, so followers retry."""
    if isinstance(exc, APIStatusError):
        return exc.status_code in _SHARED_STATUSES or (exc.status_code or 0) >= 500
    return False


async def _await_leader(leader: _Call, flight: asyncio.Future[Any]) -> Any:
    if not leader.stream:
        return await asyncio.shield(flight)
    loop = asyncio.get_running_loop()
    while True:
        idle = leader.idle_since
        wait = _STREAM_IDLE if idle is None else idle + _STREAM_IDLE - loop.time()
        if wait <= 0:
            return _ALONE
        try:
            return await asyncio.wait_for(asyncio.shield(flight), wait)
        except asyncio.TimeoutError:  # the builtin from 3.11 on
            if flight.done():
                return flight.result()


async def _replay(chunks: Iterable[ModelResponseStream]) -> AsyncIterator[ModelResponseStream]:
    for chunk in chunks:
        yield chunk


def _key_params(call: _Call) -> dict[str, Any]:
    """The provider parameters, and the server when the caller named one: the same model
    name on two servers is two models."""
    if call.api_base is None:
        return call.params
    return {**call.params, "api_base": call.api_base.rstrip("/")}


def _lift_litellm_params(params: dict[str, Any]) -> None:
    """LiteLLM's names for what OpenAI-shaped requests carry otherwise: ``headers`` are extra
    HTTP headers, ``organization`` is OpenAI's organization header, and a pydantic model class
    as ``response_format`` is its JSON schema."""
    headers = params.pop("headers", None)
    organization = params.pop("organization", None)
    if headers or organization:
        extra = dict(params.get("extra_headers") or {})
        extra.update(headers or {})
        if organization:
            extra.setdefault("OpenAI-Organization", str(organization))
        params["extra_headers"] = extra
    fmt = params.get("response_format")
    if isinstance(fmt, type) and hasattr(fmt, "model_json_schema"):
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": fmt.__name__, "schema": fmt.model_json_schema()},
        }


def _flag(controls: Mapping[str, Any] | None, name: str) -> bool:
    return bool(controls and controls.get(name))


def _max_age(controls: Mapping[str, Any] | None) -> float | None:
    if not controls:
        return None
    value = controls.get("s-maxage", controls.get("s_maxage"))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError("cache={'s-maxage': ...} takes a number of seconds")
    return float(value)


def _should_cache(
    cache: Cache, caching: bool | None, controls: Mapping[str, Any] | None, call_type: str
) -> bool:
    if caching is False or call_type not in cache.supported_call_types:
        return False
    if cache.mode == "default_off":
        return caching is True or _flag(controls, "use-cache")
    return True


def _check_model(model: Any) -> str:
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(
            f"model must be a non-empty string such as 'gpt-4o-mini', got {model!r}"
        )
    return model


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InvalidRequestError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} dicts"
        )
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if type(msg) is not dict:
            if isinstance(msg, Message) or hasattr(msg, "__struct_fields__"):
                msg = {k: v for k, v in to_builtins(msg).items() if v is not None}
            elif hasattr(msg, "model_dump"):
                msg = {k: v for k, v in msg.model_dump().items() if v is not None}
            elif isinstance(msg, Mapping):
                msg = dict(msg)
            else:
                raise InvalidRequestError(
                    f"messages[{i}] must be a dict with 'role' and 'content', "
                    f"got {type(msg).__name__}"
                )
        role = msg.get("role")
        if not isinstance(role, str) or not role:
            raise InvalidRequestError(f"messages[{i}] has no 'role' (user, system, assistant...)")
        if "content" not in msg and not msg.get("tool_calls") and not msg.get("function_call"):
            raise InvalidRequestError(f"messages[{i}] (role {role!r}) has no 'content'")
        out.append(msg)
    return out


def _check_inputs(value: Any) -> list[Any]:
    if isinstance(value, str):
        if not value:
            raise InvalidRequestError("input must not be empty")
        return [value]
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(v, int) for v in value):
            return [list(value)]  # one tokenized input
        for i, v in enumerate(value):
            ok = (
                isinstance(v, str)
                and v
                or (isinstance(v, list) and v and all(isinstance(t, int) for t in v))
            )
            if not ok:
                raise InvalidRequestError(
                    f"input[{i}] must be a non-empty string (or a list of token ids)"
                )
        return list(value)
    raise InvalidRequestError("input must be a non-empty string or a list of strings")


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
            import array

            vec = FloatVector(array.array("f", vec.tolist()))
        return base64.b64encode(vec.tobytes()).decode()
    return vec


def _words(text: Any) -> int:
    return len(str(text).split()) if text else 0


def _mock_chat(call: _Call, mock_response: Any) -> ModelResponse:
    if isinstance(mock_response, BaseException):
        raise mock_response
    if isinstance(mock_response, ModelResponse):
        return mock_response
    content = str(mock_response)
    prompt = sum(_words(m.get("content")) for m in call.messages or ())
    completion = _words(content)
    return ModelResponse(
        id=f"chatcmpl-mock-{uuid.uuid4().hex}",
        choices=[Choices(message=Message(content=content), finish_reason="stop")],
        created=int(time.time()),
        model=call.model,
        usage=Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        ),
    )


def _mock_embedding(mock_response: Any, inputs: list[Any]) -> EmbeddingResponse:
    if isinstance(mock_response, BaseException):
        raise mock_response
    if isinstance(mock_response, str):
        try:
            values = [float(x) for x in mock_response.split(",") if x.strip()]
        except ValueError:
            raise InvalidRequestError(
                "embedding mock_response must be comma-separated floats, e.g. '0.1,0.2'"
            ) from None
    elif isinstance(mock_response, (list, tuple)):
        values = [float(x) for x in mock_response]
    else:
        values = [0.0]
    tokens = sum(_words(x) if isinstance(x, str) else len(x) for x in inputs)
    return EmbeddingResponse(
        data=[Embedding(embedding=FloatVector(values), index=i) for i in range(len(inputs))],
        model="mock",
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
    )
