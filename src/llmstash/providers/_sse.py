"""Server-sent events decoding, with no I/O.

:class:`SSEDecoder` is fed bytes as they arrive, cut anywhere (mid-line, mid-character, between
``\\r`` and ``\\n``), and returns the complete events. It follows the WHATWG rules that matter
to LLM providers: ``\\n``, ``\\r\\n`` and ``\\r`` line ends, multi-line ``data:``, ``event:``
names, ``id:``, comment lines (``:``), and a leading byte-order mark. ``[DONE]`` is an ordinary
event here; the provider adapters decide what it means.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable

import msgspec

__all__ = ["SSEDecoder", "ServerSentEvent", "aiter_sse"]


class ServerSentEvent(msgspec.Struct, frozen=True):
    """One dispatched event: its name (``"message"`` unless ``event:`` said otherwise) and
    data (the ``data:`` lines joined by ``\\n``)."""

    event: str
    data: str
    id: str | None = None


class SSEDecoder:
    """Incremental decoder: ``feed()`` each chunk, then ``flush()`` once at end of stream."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_started")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._started = False

    def feed(self, chunk: bytes | str) -> list[ServerSentEvent]:
        """Decode ``chunk`` and return the events it completes (often none, sometimes many)."""
        if isinstance(chunk, str):
            chunk = chunk.encode()
        if self._started and b"\n" not in chunk and b"\r" not in chunk:
            self._buf += chunk
            return []
        buf = self._buf + chunk if self._buf else chunk
        if not self._started and buf:
            if len(buf) < 3 and b"\xef\xbb\xbf".startswith(buf):
                self._buf = bytearray(buf)
                return []
            self._started = True
            if buf.startswith(b"\xef\xbb\xbf"):
                buf = buf[3:]
        lines = buf.splitlines(keepends=True)
        # The last piece stays buffered if it has no line end, or ends in a lone "\r" that the
        # next chunk may complete as "\r\n".
        if lines and (not lines[-1].endswith((b"\n", b"\r")) or lines[-1].endswith(b"\r")):
            self._buf = bytearray(lines.pop())
        else:
            self._buf = bytearray()
        events: list[ServerSentEvent] = []
        for raw in lines:
            event = self._line(raw.rstrip(b"\r\n").decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: process a last unterminated line and dispatch a pending event.

        The standard drops an event that was not followed by a blank line; servers that forget
        the final blank line are common enough that llmstash keeps it.
        """
        events: list[ServerSentEvent] = []
        if self._buf:
            tail, self._buf = bytes(self._buf), bytearray()
            if not self._started and b"\xef\xbb\xbf".startswith(tail):
                tail = b""
            event = self._line(tail.rstrip(b"\r\n").decode("utf-8", "replace")) if tail else None
            if event is not None:
                events.append(event)
        event = self._line("")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
            self._data = []
            self._event = ""
            return event
        if line[0] == ":":
            return None
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncGenerator[ServerSentEvent, None]:
    """The events of a byte stream, as an async iterator."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event
