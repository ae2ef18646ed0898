"""Work to do when an event loop ends, however it ends.

``asyncio.run()`` closes every live async generator of its loop before closing the loop; one
generator per loop, started by the first :func:`at_shutdown` and parked at its first ``yield``,
is told then, and its ``finally`` runs the registered callbacks while the loop can still run
them. A loop ended with a bare ``loop.close()`` never tells its generators, so that loop's
``close`` is wrapped, once, on this loop object only, to run them first. Loops whose ``close``
cannot be replaced (uvloop's) are not told; callers sweep what belongs to closed loops instead.

Callbacks are kept per loop until they run or are cancelled, so many short-lived users of one
loop (a ``Client`` per request) cost one entry each, never a growing chain of wrappers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable

__all__ = ["Registration", "at_shutdown"]

logger = logging.getLogger("llmstash")

_Callback = Callable[[], Awaitable[None]]


class _LoopHooks:
    __slots__ = ("callbacks", "watcher")

    def __init__(self) -> None:
        self.callbacks: dict[int, _Callback] = {}
        self.watcher: AsyncGenerator[None, None] | None = None


_hooks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopHooks] = (
    weakref.WeakKeyDictionary()
)
_ids = itertools.count()


class Registration:
    """A callback registered with :func:`at_shutdown`; :meth:`cancel` forgets it."""

    __slots__ = ("_id", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, ident: int) -> None:
        self._loop = weakref.ref(loop)
        self._id = ident

    def cancel(self) -> None:
        loop = self._loop()
        hooks = _hooks.get(loop) if loop is not None else None
        if hooks is not None:
            hooks.callbacks.pop(self._id, None)


def at_shutdown(loop: asyncio.AbstractEventLoop, callback: _Callback) -> Registration:
    """Run ``callback`` on ``loop`` as the loop shuts down (callbacks run in the order they
    were registered; a failing one is logged and the others still run)."""
    hooks = _hooks.get(loop)
    if hooks is None:
        hooks = _hooks[loop] = _LoopHooks()
        hooks.watcher = _watch(hooks)
        _wrap_close(loop, hooks)
    ident = next(_ids)
    hooks.callbacks[ident] = callback
    return Registration(loop, ident)


def _watch(hooks: _LoopHooks) -> AsyncGenerator[None, None]:
    async def watch() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await _run(hooks)

    watcher = watch()
    step = watcher.asend(None)  # registers with the loop's shutdown, then runs to the yield
    try:
        step.send(None)
    except StopIteration:
        pass
    return watcher


async def _run(hooks: _LoopHooks) -> None:
    while hooks.callbacks:
        ident = next(iter(hooks.callbacks))
        callback = hooks.callbacks.pop(ident)
        try:
            await callback()
        except Exception:
            logger.warning("llmstash: closing connections with their loop failed", exc_info=True)


def _wrap_close(loop: asyncio.AbstractEventLoop, hooks: _LoopHooks) -> None:
    """Make ``loop.close()`` run the callbacks first, unless ``asyncio.run`` already did."""
    original = loop.close

    def close() -> None:
        if vars(loop).get("close") is close:
            del loop.close  # back to the class's method; also drops this closure's references
        watcher = hooks.watcher
        if hooks.callbacks and watcher is not None and not loop.is_closed():
            if not loop.is_running():
                try:
                    loop.run_until_complete(watcher.aclose())
                except Exception:
                    logger.warning(
                        "llmstash: closing connections with their loop failed", exc_info=True
                    )
        original()

    try:
        loop.close = close  # type: ignore[method-assign]
    except (AttributeError, TypeError):
        pass
