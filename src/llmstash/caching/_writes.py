"""The write path: write-through with a budget, many writes per round trip.

A missed call hands its entry to :meth:`WritePath.store` and waits until the backend has
acknowledged it, or until the write budget runs out (the write then goes on in the background
and is counted as given up on). Writes are queued per event loop and sent by one task per loop,
grouped by TTL, so a burst of concurrent misses becomes a few pipelines rather than a
connection per write; concurrent misses therefore share round trips. The cache's counters
(:mod:`._stats`) ride along: a backend that can (Redis) sends the SETs and the counter
increments in one pipeline.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping
from typing import Final, Protocol, runtime_checkable

import anyio

from ._backend import CacheBackend, SupportsCounters
from ._guard import Guard
from ._stats import BUCKET_TTL, Recorder, current_bucket

__all__ = ["WritePath"]

BACKGROUND_WRITE_LIMIT: Final = 2.0
"""Seconds a write may take in the background once its caller stopped waiting for it."""

_Batch = tuple[dict[str, bytes], "float | None", "asyncio.Future[bool]"]


@runtime_checkable
class SupportsCountedWrites(Protocol):
    """A backend that sends entries and counter increments in one round trip."""

    async def set_with_counters(
        self,
        items: Mapping[str, bytes],
        ttl: float | None,
        bucket: str,
        counts: Mapping[str, float],
        counters_ttl: float,
    ) -> None: ...


class WritePath:
    """Queues, sends and acknowledges writes for one :class:`~llmstash.caching.Cache`."""

    __slots__ = (
        "_backend",
        "_guard",
        "_queues",
        "_recorder",
        "_tasks",
        "given_up",
        "pending",
        "written",
    )

    def __init__(
        self, backend: Callable[[], CacheBackend], guard: Guard, recorder: Recorder | None = None
    ) -> None:
        self._backend = backend
        self._guard = guard
        self._recorder = recorder
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Batch]] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.pending: dict[str, bytes] = {}
        """Entries sent but not yet acknowledged, served to lookups of this process."""
        self.written = 0
        self.given_up = 0

    async def store(self, items: Mapping[str, bytes], ttl: float | None) -> bool:
        """Write ``items`` and wait for the acknowledgement, at most the write budget; True
        when the backend acknowledged them in time."""
        self.pending.update(items)
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = []
        done: asyncio.Future[bool] = loop.create_future()
        queue.append((dict(items), ttl, done))
        if len(queue) == 1:
            task = loop.create_task(self._drain(queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        ok = False
        with anyio.move_on_after(self._guard.write_timeout) as scope:
            ok = await asyncio.shield(done)
        if scope.cancelled_caught:
            self.given_up += len(items)
            return False
        return ok

    async def _drain(self, queue: list[_Batch]) -> None:
        try:
            while queue:
                batch = list(queue)
                by_ttl: dict[float | None, dict[str, bytes]] = {}
                for items, ttl, _ in batch:
                    by_ttl.setdefault(ttl, {}).update(items)
                written = {ttl: await self._write(items, ttl) for ttl, items in by_ttl.items()}
                del queue[: len(batch)]
                for _, ttl, done in batch:
                    if not done.done():
                        done.set_result(written[ttl])
        finally:
            # Cancelled (the loop is shutting down): what was not written is dropped, and the
            # next store() starts a fresh drain.
            for items, _, done in queue:
                self._settle(items)
                if not done.done():
                    done.cancel()
            queue.clear()

    async def _write(self, items: dict[str, bytes], ttl: float | None) -> bool:
        counts: dict[str, float] = {}
        try:
            backend = self._backend()
            recorder = self._recorder
            if recorder is not None and recorder.dirty and isinstance(backend, SupportsCounters):
                counts = recorder.take()
            with anyio.move_on_after(BACKGROUND_WRITE_LIMIT) as scope:
                if counts and isinstance(backend, SupportsCountedWrites):
                    await backend.set_with_counters(
                        items, ttl, current_bucket(), counts, BUCKET_TTL
                    )
                    counts = {}
                elif len(items) == 1:
                    ((key, value),) = items.items()
                    await backend.set(key, value, ttl=ttl)
                else:
                    await backend.set_many(items, ttl=ttl)
            if scope.cancelled_caught:
                self._guard.fail(
                    "write", TimeoutError(f"no answer within {BACKGROUND_WRITE_LIMIT}s")
                )
                return False
            self.written += len(items)
            self._guard.ok()
            if counts and isinstance(backend, SupportsCounters):
                try:
                    with anyio.fail_after(BACKGROUND_WRITE_LIMIT):
                        await backend.add_counters(current_bucket(), counts, BUCKET_TTL)
                    counts = {}
                except Exception:
                    pass  # kept (given back below) for the next send
            return True
        except Exception as exc:
            self._guard.fail("write", exc)
            return False
        finally:
            if counts and self._recorder is not None:
                self._recorder.give_back(counts)
            self._settle(items)

    def _settle(self, items: Mapping[str, bytes]) -> None:
        """Stop serving ``items`` from memory, unless a newer write replaced them."""
        pending = self.pending
        for key, value in items.items():
            if pending.get(key) is value:
                del pending[key]

    @property
    def in_flight(self) -> int:
        """Drain tasks still running."""
        return len(self._tasks)

    async def aflush(self) -> None:
        """Wait until writes started on this event loop have finished (or failed)."""
        loop = asyncio.get_running_loop()
        # A copy first: sync calls (another thread's loop) may add tasks meanwhile.
        while mine := [t for t in list(self._tasks) if t.get_loop() is loop]:
            await asyncio.gather(*mine, return_exceptions=True)
