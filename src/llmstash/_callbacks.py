"""Callback dispatch: run users' hooks off the caller's path, concurrently, bounded, flushable.

The Client reports each event (pre-call, stream chunk, success, failure) to its
:class:`CallbackDispatcher`, which returns at once. Each event becomes one asyncio task, kept
referenced until done; the task runs every hook of the event in an anyio task group, each hook
under its own timeout, so a slow or failing hook delays and breaks nothing but itself.

A caller that reports events without ever waiting on anything (a tight loop of in-memory cache
hits) gives those tasks no chance to run; awaiting :meth:`CallbackDispatcher.pace` after each
call lets them, so that such a loop delivers every event instead of reaching the bound.
Credentials are masked in the kwargs hooks receive (:func:`scrub_kwargs`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

import anyio

from ._config import DEFAULT_CALLBACK_TIMEOUT, DEFAULT_MAX_PENDING_EVENTS
from .exceptions import is_secret_header
from .integrations.custom_logger import CustomLogger

__all__ = ["CallbackDispatcher", "all_dispatchers", "scrub_kwargs"]

logger = logging.getLogger("llmstash")

_HOOK_THREADS: Final = 40
"""Worker threads sync hooks may occupy at once, per dispatcher (anyio's default limit)."""

_YIELD_AT: Final = 256
"""Pending events past which :meth:`CallbackDispatcher.pace` yields to the event loop."""

_ASYNC_PRE_CALL: Final = ("async_log_pre_api_call", "log_pre_api_call")
"""LiteLLM fires ``log_pre_api_call`` for async calls too: it stands in for the async twin."""

_dispatchers: weakref.WeakSet[CallbackDispatcher] = weakref.WeakSet()

_UNRESOLVED: Final = object()
_MISSING_EXTRA: Final = object()
_named_loggers: dict[str, object] = {}
"""Integration names met in ``callbacks`` → their handler (``None``: not one llmstash has;
``_MISSING_EXTRA``: its optional dependency is not installed)."""


def all_dispatchers() -> list[CallbackDispatcher]:
    """The dispatchers still alive, for ``llmstash.aflush_callbacks()`` to flush."""
    return list(_dispatchers)


class _Hook(NamedTuple):
    owner: object
    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...]

    def describe(self) -> str:
        if self.name:
            return f"{type(self.owner).__qualname__}.{self.name}"
        return getattr(self.func, "__qualname__", type(self.func).__qualname__)


_CREDENTIAL_KEYS: Final = ("api_key", "azure_ad_token")
_HEADER_KEYS: Final = ("extra_headers", "headers")
_NESTED_KEYS: Final = ("optional_params", "litellm_params")


def scrub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` as hooks may see them: credentials (``api_key``, ``azure_ad_token``, and the
    values of credential headers in ``extra_headers``/``headers``) read ``"***"``, at the top
    level and in ``optional_params``/``litellm_params``. Copies what it changes; ``kwargs``
    itself is returned when nothing needs masking."""
    out: dict[str, Any] | None = None
    for name in _CREDENTIAL_KEYS:
        if isinstance(kwargs.get(name), str):
            out = out if out is not None else dict(kwargs)
            out[name] = "***"
    for name in _HEADER_KEYS:
        headers = kwargs.get(name)
        if isinstance(headers, Mapping) and any(
            isinstance(h, str) and is_secret_header(h) for h in headers
        ):
            out = out if out is not None else dict(kwargs)
            out[name] = {
                h: "***" if isinstance(h, str) and is_secret_header(h) else v
                for h, v in headers.items()
            }
    for name in _NESTED_KEYS:
        nested = kwargs.get(name)
        if isinstance(nested, dict):
            scrubbed = scrub_kwargs(nested)
            if scrubbed is not nested:
                out = out if out is not None else dict(kwargs)
                out[name] = scrubbed
    return kwargs if out is None else out


def _is_coroutine_callable(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 -- looking for an ``async def __call__``
    )


class CallbackDispatcher:
    """Runs callback hooks in the background of one event loop and tracks them until done.

    The event methods (:meth:`pre_call`, :meth:`success`, :meth:`failure`,
    :meth:`stream_event`) must be called from inside the event loop; they never await a hook
    and cost next to nothing when no hook applies. Hook selection follows LiteLLM: for async
    calls (``is_async=True``) a :class:`CustomLogger`'s ``async_*`` hooks, for sync calls its
    sync ``log_*`` hooks; ``log_pre_api_call`` stands in for an ``async_log_pre_api_call``
    that is not overridden; ``log_post_api_call`` runs for every successful provider answer
    (not for cache hits), sync or async, before the success hooks. Plain callables, in
    ``loggers`` or ``functions``, are called as ``(kwargs, response_obj, start_time,
    end_time)``; in ``loggers`` they are success callbacks. In ``loggers``, the string
    ``"otel"`` (LiteLLM's name) stands for the OpenTelemetry handler
    (:mod:`llmstash.integrations.opentelemetry`, loaded on first use); other strings
    (LiteLLM's other named integrations) and other objects are ignored, one warning each.

    ``async def`` hooks run on the loop; plain ``def`` hooks run in worker threads (at most
    40 at once). Each hook may run ``hook_timeout`` seconds; after that an async hook is
    cancelled and a sync one abandoned to finish in its thread, and a warning is logged. An
    exception in a hook is logged and goes no further. Events that carry the same
    ``kwargs["litellm_call_id"]`` run one after another, in the order reported; events of
    different calls start in the order reported but may finish in any order.

    At most ``max_pending`` events wait at once; beyond that new events are dropped, counted
    in :attr:`dropped` and reported by one warning per burst. Callers that await :meth:`pace`
    after reporting never get there: past a few hundred pending events it yields to the loop
    so that they run, and near half the bound it waits for room.
    """

    def __init__(
        self,
        *,
        hook_timeout: float = DEFAULT_CALLBACK_TIMEOUT,
        max_pending: int = DEFAULT_MAX_PENDING_EVENTS,
    ) -> None:
        self._hook_timeout = hook_timeout
        self._max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_of_call: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limiter = anyio.CapacityLimiter(_HOOK_THREADS)
        self._yield_at = max(1, min(_YIELD_AT, max_pending // 8))
        self._wait_at = max(1, max_pending // 2)
        self._room: asyncio.Event | None = None
        self._room_loop: asyncio.AbstractEventLoop | None = None
        self._dropped = 0
        self._burst_dropped = 0
        self._warned: set[str] = set()
        _dispatchers.add(self)

    @property
    def pending(self) -> int:
        """Events scheduled whose hooks have not all finished."""
        return len(self._tasks)

    @property
    def dropped(self) -> int:
        """Events dropped so far because ``max_pending`` events were already waiting."""
        return self._dropped

    @property
    def backlogged(self) -> bool:
        """Whether :meth:`pace` would do anything (enough events are pending)."""
        return len(self._tasks) >= self._yield_at

    async def pace(self) -> None:
        """Backpressure for the caller that just reported events: return at once while few
        events are pending; past a few hundred, yield to the event loop (twice at most) so
        that they run, which is all quick hooks need; past half of ``max_pending`` (hooks
        slower than the caller), wait until the backlog is down to a quarter of it, for one
        ``hook_timeout`` at most. A call's result is never held longer than that; events are
        dropped only if hooks stay that far behind for that long.

        Await it after each call whose path may not otherwise wait on anything, from the
        dispatcher's loop (elsewhere it does nothing).
        """
        tasks = self._tasks
        if len(tasks) < self._yield_at:
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            return
        for _ in range(2):
            await asyncio.sleep(0)
            if len(tasks) < self._yield_at:
                return
        if len(tasks) < self._wait_at:
            return
        if self._room is None or self._room_loop is not loop:
            # An event belongs to the loop that first waits on it; a client may move on.
            self._room, self._room_loop = asyncio.Event(), loop
        room = self._room
        room.clear()
        with anyio.move_on_after(self._hook_timeout):
            while len(tasks) >= self._wait_at:
                await room.wait()
                room.clear()

    def pre_call(
        self,
        loggers: Sequence[object],
        model: str,
        messages: Any,
        kwargs: dict[str, Any],
        *,
        is_async: bool,
    ) -> None:
        """Report that a request is about to be sent to the provider."""
        if not loggers:
            return
        kwargs = scrub_kwargs(kwargs)
        names = _ASYNC_PRE_CALL if is_async else ("log_pre_api_call",)
        hooks = self._logger_hooks(loggers, names, (model, messages, kwargs))
        self._schedule(kwargs, hooks)

    def success(
        self,
        loggers: Sequence[object],
        functions: Sequence[Callable[..., Any]],
        kwargs: dict[str, Any],
        response: Any,
        start_time: datetime,
        end_time: datetime,
        *,
        is_async: bool,
    ) -> None:
        """Report a successful call (a cache hit if ``kwargs["cache_hit"]``)."""
        if not loggers and not functions:
            return
        kwargs = scrub_kwargs(kwargs)
        args = (kwargs, response, start_time, end_time)
        if not kwargs.get("cache_hit"):
            self._schedule(kwargs, self._logger_hooks(loggers, ("log_post_api_call",), args))
        name = "async_log_success_event" if is_async else "log_success_event"
        hooks = self._logger_hooks(loggers, (name,), args, plain=True)
        self._schedule(kwargs, self._function_hooks(hooks, functions, args))

    def failure(
        self,
        loggers: Sequence[object],
        functions: Sequence[Callable[..., Any]],
        kwargs: dict[str, Any],
        exception: BaseException,
        start_time: datetime,
        end_time: datetime,
        *,
        is_async: bool,
    ) -> None:
        """Report a failed call; hooks get ``response_obj=None`` and ``kwargs["exception"]``."""
        if not loggers and not functions:
            return
        kwargs.setdefault("exception", exception)
        kwargs = scrub_kwargs(kwargs)
        args = (kwargs, None, start_time, end_time)
        name = "async_log_failure_event" if is_async else "log_failure_event"
        hooks = self._logger_hooks(loggers, (name,), args)
        self._schedule(kwargs, self._function_hooks(hooks, functions, args))

    def stream_event(
        self,
        loggers: Sequence[object],
        kwargs: dict[str, Any],
        chunk: Any,
        start_time: datetime,
        end_time: datetime,
        *,
        is_async: bool,
    ) -> None:
        """Report one chunk of a stream as it is passed to the caller."""
        if not loggers:
            return
        kwargs = scrub_kwargs(kwargs)
        name = "async_log_stream_event" if is_async else "log_stream_event"
        hooks = self._logger_hooks(loggers, (name,), (kwargs, chunk, start_time, end_time))
        self._schedule(kwargs, hooks)

    async def aflush(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 -- a bounded wait is the API
        """Wait until every pending event has run, including events reported meanwhile.

        Returns after ``timeout`` seconds at the latest (``None``: no limit), leaving what is
        still running to finish in the background. May be awaited from another event loop
        than the dispatcher's, e.g. by ``aflush_callbacks()`` for the loop sync calls run on.
        """
        with anyio.move_on_after(timeout):
            loop = self._loop
            if loop is None or loop is asyncio.get_running_loop():
                await self._drain()
            elif loop.is_running():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._drain(), loop))

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.wait(tuple(self._tasks))

    def _logger_hooks(
        self,
        loggers: Sequence[object],
        names: tuple[str, ...],
        args: tuple[Any, ...],
        *,
        plain: bool = False,
    ) -> list[_Hook]:
        """Per logger, the first hook of ``names`` it overrides; plain callables if ``plain``."""
        hooks = []
        for entry in loggers:
            if isinstance(entry, str):
                named = self._named_logger(entry)
                if named is None:
                    continue
                entry = named
            if isinstance(entry, CustomLogger):
                for name in names:
                    method = getattr(entry, name)
                    if getattr(method, "__func__", None) is not getattr(CustomLogger, name):
                        hooks.append(_Hook(entry, name, method, args))
                        break
            elif callable(entry):
                if plain:
                    hooks.append(_Hook(entry, "", entry, args))
            else:
                self._warn_unknown(entry)
        return hooks

    def _function_hooks(
        self, hooks: list[_Hook], functions: Sequence[Callable[..., Any]], args: tuple[Any, ...]
    ) -> list[_Hook]:
        for func in functions:
            if callable(func):
                hooks.append(_Hook(func, "", func, args))
            else:
                self._warn_unknown(func)
        return hooks

    def _named_logger(self, name: str) -> CustomLogger | None:
        """The handler a LiteLLM integration name stands for (``"otel"``), or ``None`` after
        one warning for names llmstash does not know or cannot load."""
        found = _named_loggers.get(name, _UNRESOLVED)
        if found is _UNRESOLVED:
            found = None
            if name == "otel":
                try:
                    from .integrations.opentelemetry import default_logger

                    found = default_logger()
                except ImportError:
                    found = _MISSING_EXTRA
            _named_loggers[name] = found
        if isinstance(found, CustomLogger):
            return found
        if found is _MISSING_EXTRA:
            if name not in self._warned:
                self._warned.add(name)
                logger.warning(
                    "Callback %r needs the OpenTelemetry API: pip install 'llmstash[otel]'. "
                    "Ignored.",
                    name,
                )
        else:
            self._warn_unknown(name)
        return None

    def _warn_unknown(self, entry: object) -> None:
        label = entry if isinstance(entry, str) else type(entry).__qualname__
        if label in self._warned:
            return
        self._warned.add(label)
        if isinstance(entry, str):
            logger.warning(
                "Callback %r is not an integration llmstash knows; ignored. Register a "
                "CustomLogger instance or a function instead.",
                entry,
            )
        else:
            logger.warning(
                "Callback of type %s is neither a CustomLogger nor callable; ignored.", label
            )

    def _schedule(self, kwargs: dict[str, Any], hooks: list[_Hook]) -> None:
        if not hooks:
            return
        if len(self._tasks) >= self._max_pending:
            self._dropped += 1
            self._burst_dropped += 1
            if self._burst_dropped == 1:
                logger.warning(
                    "%d callback events are pending; dropping new ones until some finish.",
                    self._max_pending,
                )
            return
        if self._burst_dropped:
            logger.warning(
                "Dropped %d callback events while the queue was full.", self._burst_dropped
            )
            self._burst_dropped = 0
        loop = asyncio.get_running_loop()
        self._loop = loop
        call_id = kwargs.get("litellm_call_id")
        if not isinstance(call_id, str):
            call_id = None
        previous = self._last_of_call.get(call_id) if call_id is not None else None
        task = loop.create_task(self._run_event(hooks, previous), name="llmstash-callbacks")
        self._tasks.add(task)
        if call_id is not None:
            self._last_of_call[call_id] = task
        task.add_done_callback(functools.partial(self._event_done, call_id))

    def _event_done(self, call_id: str | None, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._room is not None and len(self._tasks) <= self._wait_at // 2:
            self._room.set()
        if call_id is not None and self._last_of_call.get(call_id) is task:
            del self._last_of_call[call_id]
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("Callback dispatch failed", exc_info=exc)

    async def _run_event(self, hooks: list[_Hook], previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait((previous,))
        if len(hooks) == 1:
            await self._run_hook(hooks[0])
            return
        async with anyio.create_task_group() as tg:
            for hook in hooks:
                tg.start_soon(self._run_hook, hook)

    async def _run_hook(self, hook: _Hook) -> None:
        with anyio.move_on_after(self._hook_timeout) as scope:
            try:
                if _is_coroutine_callable(hook.func):
                    await hook.func(*hook.args)
                else:
                    from anyio import to_thread  # only sync hooks need it: off import time

                    await to_thread.run_sync(
                        hook.func, *hook.args, abandon_on_cancel=True, limiter=self._limiter
                    )
            except Exception:
                logger.exception("Callback %s raised", hook.describe())
        if scope.cancelled_caught:
            logger.warning(
                "Callback %s took longer than %s s; abandoned.", hook.describe(), self._hook_timeout
            )
