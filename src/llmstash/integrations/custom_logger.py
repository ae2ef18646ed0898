"""``CustomLogger``: the base class of callback handlers, with LiteLLM's hook names and signatures.

Code written for LiteLLM's ``litellm.integrations.custom_logger.CustomLogger`` works unchanged
but for the import.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["CustomLogger"]


class CustomLogger:
    """Base class for callback handlers: override the hooks you need, register an instance.

    ::

        class MyHandler(CustomLogger):
            async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
                print(kwargs["model"], kwargs["cache_hit"], kwargs.get("response_cost"))

        llmstash.callbacks = [MyHandler()]

    Every hook is a no-op here. Event hooks receive ``(kwargs, response_obj, start_time,
    end_time)``: ``kwargs`` describes the call (``model``, ``messages`` or ``input``,
    ``optional_params``, ``stream``, ``cache_hit``, ``cache_key``, ``response_cost``,
    ``litellm_call_id``, ...; on failure also ``exception``), the times are
    :class:`datetime.datetime`. On failure ``response_obj`` is ``None``.

    Which hooks fire, as in LiteLLM:

    - Async calls (``acompletion``, ``aembedding``) fire the ``async_*`` hooks:
      ``async_log_success_event``, ``async_log_failure_event``, ``async_log_stream_event``
      (once per streamed chunk), and ``async_log_pre_api_call`` before the request. A handler
      that overrides only the sync ``log_pre_api_call`` gets that one instead, since LiteLLM fires
      ``log_pre_api_call`` for async calls too.
    - Sync calls (``completion``, ``embedding``) fire the sync hooks: ``log_pre_api_call``,
      ``log_success_event``, ``log_failure_event``, ``log_stream_event``.
    - ``log_post_api_call`` fires for sync and async calls alike, once the provider has
      answered successfully (not on cache hits); unlike LiteLLM, which passes ``None``, it gets
      the response and the end time.

    Hooks run off the caller's path, concurrently, each bounded by a timeout: ``async def``
    hooks on the event loop, plain ``def`` hooks in a worker thread. Events of one call
    (same ``litellm_call_id``) reach a handler in order: pre-call, stream chunks, post-call,
    then success or failure; events of different calls may finish in any order. An exception
    in a hook is logged on the ``llmstash`` logger and never reaches the caller.
    ``await llmstash.aflush_callbacks()`` waits until every pending hook has run.
    """

    def __init__(self, **kwargs: Any) -> None:
        """Accept and ignore keyword arguments, as LiteLLM's base class does."""

    def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        """Before the request is sent to the provider (not on cache hits)."""

    def log_post_api_call(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """After the provider answered successfully, for sync and async calls."""

    def log_stream_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """For each chunk of a sync stream; ``response_obj`` is the chunk."""

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """After a sync call succeeded, cache hits included (``kwargs["cache_hit"]``)."""

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """After a sync call failed; the error is ``kwargs["exception"]``."""

    async def async_log_pre_api_call(
        self, model: str, messages: Any, kwargs: dict[str, Any]
    ) -> None:
        """Before the request of an async call is sent to the provider (not on cache hits)."""

    async def async_log_stream_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """For each chunk of an async stream; ``response_obj`` is the chunk."""

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """After an async call succeeded, cache hits included (``kwargs["cache_hit"]``)."""

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """After an async call failed; the error is ``kwargs["exception"]``."""
