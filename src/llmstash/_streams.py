"""The stream objects ``acompletion(..., stream=True)`` and ``completion(..., stream=True)``
return, fresh or replayed.

A stream hands the caller the provider's chunks as they come (or a cached entry's chunks, same
boundaries) and keeps every chunk it saw. Read to its end, a miss is stored — before the last
``__anext__`` returns, so the entry is written through — and success is reported with the
assembled response; closed early, nothing is stored and the HTTP response is closed.

A chunk that carries only ``usage`` (no choices) reaches the caller only if the call asked for
it with ``stream_options={"include_usage": True}``, on a miss and on a hit alike; it is always
kept in the stored entry, so that a plain call served from it has its usage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _sync
from .types import ModelResponse, ModelResponseStream

T = TypeVar("T")
_S = TypeVar("_S", bound="_Stream[Any]")

if TYPE_CHECKING:
    from ._client import Client
    from ._outcome import Call

__all__ = ["AsyncStream", "SyncStream", "replay"]


class _Stream(Generic[T]):
    """What every stream llmstash returns shares: the first item read up front (so that HTTP
    errors raise from the call itself), items handed on as they come and all of them kept,
    stream callbacks per item, and, closed early or dropped, nothing stored and no waiter
    left waiting. Subclasses say which items the caller sees and how an ended stream is
    stored and reported (:meth:`_next_for_caller`, :meth:`_finish`)."""

    def __init__(
        self,
        client: Client,
        call: Call,
        source: AsyncIterator[T],
        *,
        hit: bool,
        coalesced: bool = False,
        leased: bool = False,
    ) -> None:
        self._client = client
        self._call = call
        self._source = source
        self._hit = hit
        self._coalesced = coalesced
        self._leased = leased
        self._chunks: list[T] = []
        self._first: T | None = None
        self._done = False
        self._loop = asyncio.get_running_loop()

    @property
    def cache_hit(self) -> bool:
        """Whether this stream replays a cached entry."""
        return self._hit

    async def _prime(self) -> None:
        # Send the request now, so that HTTP errors raise from the call itself.
        try:
            self._first = await self._next_for_caller()
            self._call.idle_since = asyncio.get_running_loop().time()
        except StopAsyncIteration:
            await self._finish()
        except BaseException as exc:
            await self._fail(exc)
            raise

    async def _next_for_caller(self) -> T:
        """The next item the caller sees (every item read is kept in ``_chunks``)."""
        raise NotImplementedError

    async def _finish(self) -> None:
        """The stream ended: store it (a miss) and report success. Once."""
        raise NotImplementedError

    def __aiter__(self: _S) -> _S:
        return self

    async def __anext__(self) -> T:
        call = self._call
        if self._first is not None:
            chunk, self._first = self._first, None
        else:
            call.idle_since = None
            if self._done:
                raise StopAsyncIteration
            try:
                chunk = await self._next_for_caller()
            except StopAsyncIteration:
                await self._finish()
                raise
            except BaseException as exc:
                await self._fail(exc)
                raise
        if call.flight is not None:
            call.idle_since = asyncio.get_running_loop().time()
        callbacks = call.settings.callbacks
        if callbacks:
            call.dispatcher.stream_event(
                callbacks,
                call.event_kwargs(),
                chunk,
                datetime.fromtimestamp(call.start),
                datetime.now(),
                is_async=call.req.is_async,
            )
        return chunk

    async def _fail(self, exc: BaseException) -> None:
        if not self._done:
            self._done = True
            # Waiters share an error raised before any chunk; after that they retry alone.
            await self._client._stream_failed(
                self._call, exc if not self._chunks else None, exc, leased=self._leased
            )

    async def aclose(self) -> None:
        """Stop early: close the HTTP response; nothing is stored."""
        if not self._done:
            self._done = True
            await self._client._stream_failed(self._call, None, None, leased=self._leased)
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                await aclose()

    def __del__(self) -> None:
        # A stream dropped before its end (`async for ...: break`) must not keep identical
        # calls waiting for it, here or, through its lease, in other processes.
        if getattr(self, "_done", True):
            return
        self._done = True
        call, loop = self._call, self._loop
        if loop.is_closed():
            return
        loop.call_soon_threadsafe(self._client._flights.land, call, None)
        cache, key = call.req.cache, call.key
        if self._leased and cache is not None and key is not None:

            def release() -> None:
                task = loop.create_task(cache.arelease_lease(key))
                _releasing.add(task)
                task.add_done_callback(_releasing.discard)

            loop.call_soon_threadsafe(release)

    async def __aenter__(self: _S) -> _S:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncStream(_Stream[ModelResponseStream]):
    """An async iterator of :class:`ModelResponseStream` chunks (what ``acompletion(...,
    stream=True)`` returns). Read to its end, a miss is stored and success callbacks fire
    with the assembled response; closed early (``await stream.aclose()``), nothing is stored
    and the HTTP response is closed."""

    def __init__(
        self,
        client: Client,
        call: Call,
        source: AsyncIterator[ModelResponseStream],
        *,
        hit: bool,
        coalesced: bool = False,
        leased: bool = False,
    ) -> None:
        super().__init__(client, call, source, hit=hit, coalesced=coalesced, leased=leased)
        self.response: ModelResponse | None = None
        """The assembled response, once the stream has been read to its end."""

    async def _next_for_caller(self) -> ModelResponseStream:
        wants_usage = self._call.req.wants_usage
        while True:
            chunk = await self._source.__anext__()
            self._chunks.append(chunk)
            if wants_usage or chunk.choices or chunk.usage is None:
                return chunk

    async def _finish(self) -> None:
        if not self._done:
            self._done = True
            self.response = await self._client._stream_end(
                self._call,
                self._chunks,
                hit=self._hit,
                coalesced=self._coalesced,
                leased=self._leased,
            )


class SyncStream:
    """A sync iterator of :class:`ModelResponseStream` chunks (what ``completion(...,
    stream=True)`` returns): an :class:`AsyncStream` driven on llmstash's sync loop, with the
    same promises (stored when read to its end; ``close()`` early stores nothing)."""

    def __init__(self, stream: AsyncStream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[ModelResponseStream]:
        return self

    def __next__(self) -> ModelResponseStream:
        try:
            return _sync.run(self._stream.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    @property
    def response(self) -> ModelResponse | None:
        """The assembled response, once the stream has been read to its end."""
        return self._stream.response

    @property
    def cache_hit(self) -> bool:
        """Whether this stream replays a cached entry."""
        return self._stream.cache_hit

    def close(self) -> None:
        """Stop early: close the HTTP response; nothing is stored."""
        _sync.run(self._stream.aclose)

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_releasing: set[asyncio.Task[None]] = set()


async def replay(chunks: Iterable[ModelResponseStream]) -> AsyncIterator[ModelResponseStream]:
    """Chunks as an async iterator (a cached stream, or a mocked one)."""
    for chunk in chunks:
        yield chunk
