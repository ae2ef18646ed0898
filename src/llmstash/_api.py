"""The module-level functions: read the LiteLLM-style settings, call the default Client."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from . import _sync
from ._client import CallSettings, Client
from ._loops import at_shutdown
from ._streams import SyncStream
from .caching import Cache
from .types import EmbeddingResponse

__all__ = [
    "acompletion",
    "aembedding",
    "aflush_callbacks",
    "aresponses",
    "atext_completion",
    "completion",
    "disable_cache",
    "embedding",
    "enable_cache",
    "flush_callbacks",
    "responses",
    "text_completion",
    "update_cache",
]

logger = logging.getLogger("llmstash")
T = TypeVar("T")

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client] = weakref.WeakKeyDictionary()


def _settings() -> CallSettings:
    mod = sys.modules["llmstash"]
    return CallSettings(
        mod.cache,
        mod.callbacks,
        mod.success_callback,
        mod.failure_callback,
        mod.num_retries,
        mod.request_timeout,
    )


def _load_client() -> Client:
    """The default Client of the running event loop, made on first use."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        _forget_closed_loops()
        client = _clients[loop] = Client()
        client._default = True  # owned by llmstash, never reported as unclosed
        _close_with_loop(loop, client)
    return client


def _close_with_loop(loop: asyncio.AbstractEventLoop, client: Client) -> None:
    """Close ``client`` (and the cache's connections of this loop) when the loop shuts down,
    however it does. Without it, each loop would leave a Client, its sockets and the closed
    loop itself behind. In a forked child, clients of the parent are left alone."""
    generation = _sync.forked()

    async def close() -> None:
        if _clients.get(loop) is client:
            del _clients[loop]
        if _sync.forked() == generation:  # else its sockets are the parent's
            await client.aclose()
            cache = getattr(sys.modules["llmstash"], "cache", None)
            if isinstance(cache, Cache):
                await cache.aclose()

    client._watcher = at_shutdown(loop, close)


def _forget_closed_loops() -> None:
    """Drop the default clients of loops closed without telling us (loops whose ``close``
    could not be wrapped): nothing can run on a closed loop, so their sockets are left to
    the garbage collector."""
    for loop in [loop for loop in _clients if loop.is_closed()]:
        client = _clients.pop(loop, None)
        if client is not None:
            client._watcher = None


def _forget_after_fork() -> None:
    """In a forked child: the default clients belong to the parent's loops and share its
    sockets. Forget them, unclosed and kept from the garbage collector (closing would talk
    over the parent's connections); the child makes its own."""
    for loop, client in list(_clients.items()):
        _sync.inherit((loop, client))
    _clients.clear()


_sync.on_fork(_forget_after_fork)


async def _aclose_client() -> None:
    """Close and forget the running loop's default Client (tests call this at teardown)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


async def acompletion(
    model: str,
    messages: Any = None,
    *,
    stream: bool = False,
    caching: bool | None = None,
    cache: Mapping[str, Any] | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    api_version: str | None = None,
    timeout: float | None = None,
    num_retries: int | None = None,
    mock_response: Any = None,
    **params: Any,
) -> Any:
    """Ask a chat model, through the cache when one is set (``llmstash.cache``).

    ``model`` picks the provider: ``gpt-*``/``o*``/``openai/<m>`` (OpenAI or any
    OpenAI-compatible server at ``api_base``), ``azure/<deployment>``, ``anthropic/<m>`` or
    ``claude-*``. ``messages`` are OpenAI-shaped ``{"role", "content"}`` dicts. Provider
    parameters (``temperature``, ``max_tokens``, ``tools``, ``response_format``, ``seed``, ...)
    pass through as keyword arguments and are part of the cache key.

    Caching: with ``llmstash.cache`` set, calls are cached unless ``caching=False`` (under
    ``mode="default_off"``, only with ``caching=True``). ``cache={...}`` takes per-call
    controls: ``"no-cache"``, ``"no-store"``, ``"ttl"``, ``"s-maxage"``, ``"namespace"``,
    ``"use-cache"``; ``ttl=`` is the same as ``cache={"ttl": ...}``.

    Returns a :class:`~llmstash.types.ModelResponse`, or with ``stream=True`` an async
    iterator of :class:`~llmstash.types.ModelResponseStream` chunks. ``mock_response="text"``
    answers without any network call. Errors are :mod:`llmstash.exceptions`.
    """
    # Only what was passed: the engine reads fewer arguments on the hit path.
    if stream:
        params["stream"] = stream
    if caching is not None:
        params["caching"] = caching
    if cache is not None:
        params["cache"] = cache
    if api_base is not None:
        params["api_base"] = api_base
    if api_key is not None:
        params["api_key"] = api_key
    if api_version is not None:
        params["api_version"] = api_version
    if timeout is not None:
        params["timeout"] = timeout
    if num_retries is not None:
        params["num_retries"] = num_retries
    if mock_response is not None:
        params["mock_response"] = mock_response
    return await _load_client()._complete(_settings(), True, model, messages, params)


def completion(model: str, messages: Any = None, **kwargs: Any) -> Any:
    """The sync twin of :func:`acompletion` (same arguments). It runs the same async code on
    one long-lived background event loop; ``stream=True`` gives a sync iterator of chunks.
    Sync calls fire the sync hooks of ``CustomLogger`` (``log_success_event``, ...)."""
    settings = _settings()

    async def call() -> Any:
        return await _load_client()._complete(settings, False, model, messages, kwargs)

    result = _sync.run(call)
    if kwargs.get("stream"):
        return SyncStream(result)
    return result


async def aembedding(
    model: str,
    input: Any = None,
    *,
    caching: bool | None = None,
    cache: Mapping[str, Any] | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    api_version: str | None = None,
    timeout: float | None = None,
    num_retries: int | None = None,
    mock_response: Any = None,
    **params: Any,
) -> EmbeddingResponse:
    """Embed a string or a list of strings (OpenAI and Azure).

    Each input is cached on its own: a call whose inputs are partly cached sends only the
    others to the provider, in one request, and returns every vector in the caller's order.
    Vectors are :class:`~llmstash.types.FloatVector` (packed floats that read as a sequence
    of floats; ``.tolist()`` gives a list). ``usage`` sums each input's share of the tokens.
    """
    return await _load_client()._embed(
        _settings(),
        True,
        model,
        input,
        caching=caching,
        cache=cache,
        api_base=api_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        num_retries=num_retries,
        mock_response=mock_response,
        **params,
    )


def embedding(model: str, input: Any = None, **kwargs: Any) -> EmbeddingResponse:
    """The sync twin of :func:`aembedding` (same arguments)."""
    settings = _settings()

    async def call() -> EmbeddingResponse:
        return await _load_client()._embed(settings, False, model, input, **kwargs)

    return _sync.run(call)


def _only_given(params: dict[str, Any], **named: Any) -> dict[str, Any]:
    """``params`` plus the named arguments that were passed (not ``None``/``False``)."""
    params.update({k: v for k, v in named.items() if v is not None and v is not False})
    return params


async def aresponses(
    model: str,
    input: Any = None,
    *,
    instructions: str | None = None,
    stream: bool = False,
    caching: bool | None = None,
    cache: Mapping[str, Any] | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    api_version: str | None = None,
    timeout: float | None = None,
    num_retries: int | None = None,
    mock_response: Any = None,
    **params: Any,
) -> Any:
    """Ask a model through OpenAI's Responses API (OpenAI and Azure), through the cache when
    one is set.

    ``input`` is a string or a list of input items; ``instructions``, ``tools``,
    ``reasoning``, ``text``, ``previous_response_id``, ``store``, ``max_output_tokens`` and the
    other Responses API parameters pass through and are part of the cache key. Caching
    controls are those of :func:`acompletion`.

    Returns a :class:`~llmstash.types.ResponsesAPIResponse` (``r.output_text``,
    ``r.output``, ``r.usage``; ``r.model_dump()`` validates as the ``openai`` package's
    ``Response``), or with ``stream=True`` an async iterator of typed events
    (:class:`~llmstash.types.ResponsesAPIStreamEvent`: ``response.created``, ...,
    ``response.output_text.delta``, ..., ``response.completed``); a cached stream replays
    the provider's events as sent. A provider without a Responses API (Anthropic) raises
    :class:`~llmstash.exceptions.UnsupportedParamsError` before any I/O.
    """
    from . import _responses

    _only_given(
        params,
        instructions=instructions,
        stream=stream,
        caching=caching,
        cache=cache,
        api_base=api_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        num_retries=num_retries,
        mock_response=mock_response,
    )
    if caching is False:
        params["caching"] = False
    return await _responses.run(
        _load_client(), _responses.RESPONSES, _settings(), True, model, input, params
    )


def responses(model: str, input: Any = None, **kwargs: Any) -> Any:
    """The sync twin of :func:`aresponses` (same arguments); ``stream=True`` gives a sync
    iterator of events."""
    from . import _responses

    settings = _settings()

    async def call() -> Any:
        return await _responses.run(
            _load_client(), _responses.RESPONSES, settings, False, model, input, kwargs
        )

    return _responses.sync_call(call)


async def atext_completion(
    prompt: Any = None,
    model: str | None = None,
    *,
    stream: bool = False,
    caching: bool | None = None,
    cache: Mapping[str, Any] | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    api_version: str | None = None,
    timeout: float | None = None,
    num_retries: int | None = None,
    mock_response: Any = None,
    **params: Any,
) -> Any:
    """A text completion (``POST /v1/completions``: ``gpt-3.5-turbo-instruct``, Azure
    deployments, OpenAI-compatible servers), through the cache when one is set.

    The argument order is LiteLLM's (``prompt`` first); pass both by name. ``prompt`` is a
    string, a list of strings or token ids; ``max_tokens``, ``temperature``, ``logprobs``,
    ``suffix``, ``echo``, ... pass through and are part of the key. Returns a
    :class:`~llmstash.types.TextCompletionResponse` (``r.choices[0].text``, ``object:
    "text_completion"``), or with ``stream=True`` an async iterator of chunks of the same
    type.
    """
    from . import _responses

    _only_given(
        params,
        stream=stream,
        caching=caching,
        cache=cache,
        api_base=api_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        num_retries=num_retries,
        mock_response=mock_response,
    )
    if caching is False:
        params["caching"] = False
    return await _responses.run(
        _load_client(), _responses.TEXT_COMPLETION, _settings(), True, model, prompt, params
    )


def text_completion(prompt: Any = None, model: str | None = None, **kwargs: Any) -> Any:
    """The sync twin of :func:`atext_completion` (same arguments)."""
    from . import _responses

    settings = _settings()

    async def call() -> Any:
        return await _responses.run(
            _load_client(), _responses.TEXT_COMPLETION, settings, False, model, prompt, kwargs
        )

    return _responses.sync_call(call)


async def aflush_callbacks(timeout: float | None = None) -> None:
    """Wait until pending callback events and background cache writes of this event loop's
    calls are done."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is not None:
        await client.aflush_callbacks(timeout)
    cache = getattr(sys.modules["llmstash"], "cache", None)
    if isinstance(cache, Cache):
        await cache.aflush_writes()


def flush_callbacks(timeout: float | None = None) -> None:
    """Wait until pending callback events of sync calls are done."""
    if _sync.loop_if_started() is None:
        return
    _sync.run(functools.partial(aflush_callbacks, timeout))


def enable_cache(
    type: str = "local",
    host: str | None = None,
    port: int | str | None = None,
    password: str | None = None,
    supported_call_types: Iterable[str] | None = None,
    **kwargs: Any,
) -> Cache:
    """Set ``llmstash.cache`` to a new :class:`Cache` made from these arguments."""
    cache = Cache(
        type=type,
        host=host,
        port=port,
        password=password,
        supported_call_types=supported_call_types,
        **kwargs,
    )
    sys.modules["llmstash"].cache = cache  # type: ignore[attr-defined]
    return cache


def update_cache(
    type: str = "local",
    host: str | None = None,
    port: int | str | None = None,
    password: str | None = None,
    supported_call_types: Iterable[str] | None = None,
    **kwargs: Any,
) -> Cache:
    """Replace ``llmstash.cache`` with a new :class:`Cache` made from these arguments."""
    return enable_cache(type, host, port, password, supported_call_types, **kwargs)


def disable_cache() -> None:
    """Set ``llmstash.cache`` to ``None``. Calling it again does nothing."""
    sys.modules["llmstash"].cache = None  # type: ignore[attr-defined]


async def _flush_sync_loop() -> None:
    await aflush_callbacks()


_sync.on_exit(_flush_sync_loop)
