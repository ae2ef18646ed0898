"""llmstash: an async-first LLM SDK with a fast, correct response cache.

A drop-in for LiteLLM's SDK where the two overlap::

    import llmstash
    from llmstash.caching import Cache

    llmstash.cache = Cache()  # or Cache(type="redis", host=..., port=..., password=...)
    r = await llmstash.acompletion(model="gpt-4o-mini", messages=[...], caching=True)

Settings below are read at call time: assigning ``llmstash.cache = None`` or
``llmstash.callbacks = []`` takes effect on the next call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import exceptions, types
    from ._api import (
        acompletion,
        aembedding,
        aflush_callbacks,
        aresponses,
        atext_completion,
        completion,
        disable_cache,
        embedding,
        enable_cache,
        flush_callbacks,
        responses,
        text_completion,
        update_cache,
    )
    from ._client import Client
    from ._cost import completion_cost, cost_per_token, model_cost, register_model
    from ._litellm_compat import install_as_litellm
    from ._log import turn_on_debug
    from ._streams import AsyncStream, SyncStream
    from .caching import Cache, CacheBackend, MemoryBackend
    from .exceptions import (
        APIConnectionError,
        APIError,
        APIResponseValidationError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        CacheError,
        ContentPolicyViolationError,
        ContextWindowExceededError,
        InternalServerError,
        InvalidRequestError,
        LLMStashError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ServiceUnavailableError,
        Timeout,
        UnprocessableEntityError,
        UnsupportedParamsError,
    )
    from .providers._resolve import get_llm_provider
    from .types import (
        Choices,
        Delta,
        Embedding,
        EmbeddingResponse,
        FloatVector,
        Message,
        ModelResponse,
        ModelResponseStream,
        ResponsesAPIResponse,
        ResponsesAPIStreamEvent,
        StreamingChoices,
        TextCompletionResponse,
        Usage,
    )

# Public names and the module each lives in: loaded on first use, so that `import llmstash`
# costs little more than importing httpx and anyio (no asyncio, no msgspec, no providers).
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
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
        ),
        "._api",
    ),
    "Client": "._client",
    "get_llm_provider": ".providers._resolve",
    "install_as_litellm": "._litellm_compat",
    "turn_on_debug": "._log",
    **dict.fromkeys(
        ("completion_cost", "cost_per_token", "model_cost", "register_model"), "._cost"
    ),
    **dict.fromkeys(("AsyncStream", "SyncStream"), "._streams"),
    **dict.fromkeys(("Cache", "CacheBackend", "MemoryBackend"), ".caching"),
    **dict.fromkeys(
        (
            "APIConnectionError",
            "APIError",
            "APIResponseValidationError",
            "APIStatusError",
            "APITimeoutError",
            "AuthenticationError",
            "BadRequestError",
            "CacheError",
            "ContentPolicyViolationError",
            "ContextWindowExceededError",
            "InternalServerError",
            "InvalidRequestError",
            "LLMStashError",
            "NotFoundError",
            "PermissionDeniedError",
            "RateLimitError",
            "ServiceUnavailableError",
            "Timeout",
            "UnprocessableEntityError",
            "UnsupportedParamsError",
        ),
        ".exceptions",
    ),
    **dict.fromkeys(
        (
            "Choices",
            "Delta",
            "Embedding",
            "EmbeddingResponse",
            "FloatVector",
            "Message",
            "ModelResponse",
            "ModelResponseStream",
            "ResponsesAPIResponse",
            "ResponsesAPIStreamEvent",
            "StreamingChoices",
            "TextCompletionResponse",
            "Usage",
        ),
        ".types",
    ),
}
_SUBMODULES = frozenset({"caching", "exceptions", "integrations", "providers", "testing", "types"})


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is not None:
        value = getattr(importlib.import_module(where, __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


__version__ = "0.1.0"

cache: Cache | None = None
"""The cache used by module-level calls; ``None`` disables caching."""
callbacks: list[Any] = []
"""``CustomLogger`` instances (and plain success functions) told about every call."""
success_callback: list[Callable[..., Any]] = []
"""Functions ``(kwargs, response, start_time, end_time)`` called after each success."""
failure_callback: list[Callable[..., Any]] = []
"""Functions ``(kwargs, exception, start_time, end_time)`` called after each failure."""
num_retries: int | None = None
"""Retries for module-level calls (``None``: the default, 2)."""
request_timeout: float | None = None
"""Seconds a provider request may take (``None``: the default, 600)."""

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "Cache",
    "CacheBackend",
    "CacheError",
    "Choices",
    "Client",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "FloatVector",
    "InternalServerError",
    "InvalidRequestError",
    "LLMStashError",
    "MemoryBackend",
    "Message",
    "ModelResponse",
    "ModelResponseStream",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponsesAPIResponse",
    "ResponsesAPIStreamEvent",
    "ServiceUnavailableError",
    "StreamingChoices",
    "SyncStream",
    "TextCompletionResponse",
    "Timeout",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "Usage",
    "acompletion",
    "aembedding",
    "aflush_callbacks",
    "aresponses",
    "atext_completion",
    "cache",
    "callbacks",
    "completion",
    "completion_cost",
    "cost_per_token",
    "disable_cache",
    "embedding",
    "enable_cache",
    "exceptions",
    "failure_callback",
    "flush_callbacks",
    "get_llm_provider",
    "install_as_litellm",
    "model_cost",
    "num_retries",
    "register_model",
    "request_timeout",
    "responses",
    "success_callback",
    "text_completion",
    "turn_on_debug",
    "types",
    "update_cache",
]
