"""Work to do when an event loop ends, however it ends.

``asyncio.run()`` closes every live async generator of its loop before closing the loop; a
generator started by :func:`at_shutdown` and parked at its first ``yield`` is told then, and its
``finally`` runs the callback while the loop can still run it. A loop ended with a bare
``loop.close()`` never tells its generators, so that loop's ``close`` is wrapped (on this loop
object only) to run the generator's ``finally`` first. Loops whose ``close`` cannot be replaced
(uvloop's) are not told; callers sweep what belongs to closed loops instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

__all__ = ["at_shutdown"]

logger = logging.getLogger("llmstash")


def at_shutdown(
    loop: asyncio.AbstractEventLoop,
    callback: Callable[[], Awaitable[None]],
    *,
    wanted: Callable[[], bool] = lambda: True,
) -> AsyncGenerator[None, None]:
    """Run ``callback`` on ``loop`` as the loop shuts down, if ``wanted()`` still says so.

    Returns the watcher: keep a reference to it as long as the work is wanted (a watcher that
    is garbage collected earlier runs the callback then, on its loop)."""

    async def watch() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if wanted():
                await callback()

    watcher = watch()
    step = watcher.asend(None)  # registers with the loop's shutdown, then runs to the yield
    try:
        step.send(None)
    except StopIteration:
        pass
    _wrap_close(loop, watcher, wanted)
    return watcher


def _wrap_close(
    loop: asyncio.AbstractEventLoop,
    watcher: AsyncGenerator[None, None],
    wanted: Callable[[], bool],
) -> None:
    """Make ``loop.close()`` finish ``watcher`` before the loop closes, unless it has already
    run (``asyncio.run`` shut the loop's generators down first) or is no longer wanted."""
    original = loop.close

    def close() -> None:
        if vars(loop).get("close") is close:
            del loop.close  # back to the class's method; also drops this closure's references
        if wanted() and not loop.is_closed() and not loop.is_running():
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
