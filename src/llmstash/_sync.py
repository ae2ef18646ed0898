"""One long-lived event loop in a daemon thread, on which sync callers run the async core.

Never ``asyncio.run()`` per call: Redis pools and the HTTP client belong to one loop, so every
sync call shares this loop and its default Client. The thread is a daemon; at interpreter exit
pending callback events of sync calls get a bounded time to finish.

Fork-safe: threads do not survive ``fork()``, so a forked child forgets the loop it inherited
(without closing it: its sockets are the parent's too) and starts its own on its first sync call.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._config import DEFAULT_EXIT_FLUSH_TIMEOUT

__all__ = ["forked", "loop_if_started", "on_fork", "run"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_exit_registered = False
_fork_generation = 0
_inherited: list[object] = []
"""What a forked child inherited and must neither use nor close (its sockets and selector are
shared with the parent); kept referenced so that no finalizer touches them either."""
_fork_hooks: list[Callable[[], None]] = []


def forked() -> int:
    """How many forks this process is removed from the one that imported llmstash: objects
    made in an earlier generation belong to an ancestor process."""
    return _fork_generation


def on_fork(hook: Callable[[], None]) -> None:
    """Run ``hook`` in a forked child, after the sync loop has been forgotten."""
    _fork_hooks.append(hook)


def inherit(obj: object) -> None:
    """Keep ``obj`` (inherited across a fork) referenced and untouched for good."""
    _inherited.append(obj)


def _after_fork_in_child() -> None:
    global _lock, _loop, _thread, _fork_generation
    _fork_generation += 1
    _lock = threading.Lock()  # it may have been held by a thread that no longer exists
    if _loop is not None:
        # Its thread did not survive the fork and its selector and sockets are the parent's:
        # never run, never closed here.
        inherit(_loop)
    _loop = _thread = None
    for hook in _fork_hooks:
        hook()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _start() -> asyncio.AbstractEventLoop:
    global _loop, _thread, _exit_registered
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name="llmstash-sync", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
            if not _exit_registered:  # inherited by forked children: once per process tree
                _exit_registered = True
                atexit.register(_at_exit)
        return _loop


def loop_if_started() -> asyncio.AbstractEventLoop | None:
    """The sync loop, or ``None`` if no sync call has been made yet."""
    return _loop


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn()`` on the sync loop and wait for its result (from any thread but that one)."""
    loop = _start()
    if threading.current_thread() is _thread:
        raise RuntimeError("llmstash sync functions cannot be called from a callback hook")

    async def main() -> T:
        return await fn()

    future = asyncio.run_coroutine_threadsafe(main(), loop)
    try:
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        raise


_exit_hooks: list[Callable[[], Awaitable[None]]] = []


def on_exit(hook: Callable[[], Awaitable[None]]) -> None:
    """Run ``hook`` on the sync loop at interpreter exit (bounded)."""
    _exit_hooks.append(hook)


def _at_exit() -> None:
    loop = _loop
    if loop is None or not loop.is_running():
        return

    async def flush() -> None:
        for hook in _exit_hooks:
            await hook()

    future = asyncio.run_coroutine_threadsafe(flush(), loop)
    try:
        future.result(timeout=DEFAULT_EXIT_FLUSH_TIMEOUT)
    except (concurrent.futures.TimeoutError, Exception):
        future.cancel()
    loop.call_soon_threadsafe(loop.stop)
