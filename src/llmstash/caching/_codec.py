"""The one stored format, shared by every backend.

An entry is ``MAGIC (2 bytes) | kind (1 byte) | stored-at | expires-at | payload`` (times are
float64 unix seconds; expires-at is 0 for an entry that never expires). The payload of a chat
or stream entry is MessagePack of the response objects, every field the provider sent included
(unknown ones ride in ``model_extra``), decoded by msgspec straight into the typed objects; an
embedding entry is its packed floats.

:func:`decode` returns one of three typed entries — :class:`ChatEntry`, :class:`StreamEntry`,
:class:`EmbeddingEntry` — so callers tell kinds apart with ``isinstance`` and mypy checks them.
Anything else under a key (other software's bytes, an older format, a stream of zero chunks,
nesting deep enough to exhaust the decoder) raises :class:`CacheDataError`, which the cache
turns into a miss.
"""

from __future__ import annotations

import math
import struct
from typing import Final

import msgspec

from ..exceptions import CacheDataError
from ..types import FloatVector, ModelResponse, ModelResponseStream

__all__ = [
    "ChatEntry",
    "EmbeddingEntry",
    "Entry",
    "StreamEntry",
    "decode",
    "decode_expiry",
    "encode_chat",
    "encode_embedding",
    "encode_stream",
]

MAGIC: Final = b"L\x02"
_CHAT: Final = 1
_STREAM: Final = 2
_EMBEDDING: Final = 3

_HEADER = struct.Struct("<2sBdd")
_HEADER_SIZE = _HEADER.size
_VECTOR = struct.Struct("<cI")  # typecode, prompt tokens; the packed floats follow
_VECTOR_SIZE = _VECTOR.size
_encoder = msgspec.msgpack.Encoder()
_chat_decoder = msgspec.msgpack.Decoder(ModelResponse)
_stream_decoder = msgspec.msgpack.Decoder(list[ModelResponseStream])


class _Entry:
    __slots__ = ("expires_at", "stored_at")

    def __init__(self, stored_at: float, expires_at: float) -> None:
        self.stored_at = stored_at
        """Unix time the entry was written."""
        self.expires_at = expires_at
        """Unix time after which the entry is stale; 0 for never."""


class ChatEntry(_Entry):
    """A plain chat completion, as the provider answered it."""

    __slots__ = ("response",)

    def __init__(self, response: ModelResponse, stored_at: float, expires_at: float) -> None:
        super().__init__(stored_at, expires_at)
        self.response = response


class StreamEntry(_Entry):
    """A complete stream: every chunk, boundaries kept (at least one chunk)."""

    __slots__ = ("chunks",)

    def __init__(
        self, chunks: list[ModelResponseStream], stored_at: float, expires_at: float
    ) -> None:
        super().__init__(stored_at, expires_at)
        self.chunks = chunks


class EmbeddingEntry(_Entry):
    """One input's embedding (packed floats, a view of the stored bytes) and its tokens."""

    __slots__ = ("tokens", "vector")

    def __init__(
        self, vector: FloatVector, tokens: int, stored_at: float, expires_at: float
    ) -> None:
        super().__init__(stored_at, expires_at)
        self.vector = vector
        self.tokens = tokens


Entry = ChatEntry | StreamEntry | EmbeddingEntry
"""Any decoded entry."""


def _pack(kind: int, stored_at: float, ttl: float | None, payload: bytes) -> bytes:
    expires_at = stored_at + ttl if ttl else 0.0
    return _HEADER.pack(MAGIC, kind, stored_at, expires_at) + payload


def encode_chat(response: ModelResponse, stored_at: float, ttl: float | None = None) -> bytes:
    """Bytes for a chat completion."""
    return _pack(_CHAT, stored_at, ttl, _encoder.encode(response))


def encode_stream(
    chunks: list[ModelResponseStream], stored_at: float, ttl: float | None = None
) -> bytes:
    """Bytes for a complete stream, chunk boundaries kept."""
    if not chunks:
        raise ValueError("a stream entry needs at least one chunk")
    return _pack(_STREAM, stored_at, ttl, _encoder.encode(chunks))


def encode_embedding(
    vector: FloatVector, tokens: int, stored_at: float, ttl: float | None = None
) -> bytes:
    """Bytes for one input's embedding (packed floats) and its share of the prompt tokens."""
    payload = _VECTOR.pack(vector.typecode.encode(), tokens) + vector.tobytes()
    return _pack(_EMBEDDING, stored_at, ttl, payload)


def decode_expiry(data: bytes) -> float:
    """The expires-at time in an entry's header (0 for never), without decoding the rest."""
    try:
        magic, _, _, expires_at = _HEADER.unpack_from(data)
    except (struct.error, TypeError) as exc:
        raise CacheDataError("cache entry too short or not bytes") from exc
    if magic != MAGIC:
        raise CacheDataError("cache entry has an unknown format")
    return float(expires_at)


def decode(data: bytes) -> Entry:
    """Decode any entry; :class:`CacheDataError` if the bytes are not a usable entry of ours."""
    try:
        magic, kind, stored_at, expires_at = _HEADER.unpack_from(data)
    except (struct.error, TypeError) as exc:
        raise CacheDataError("cache entry too short or not bytes") from exc
    if magic != MAGIC:
        raise CacheDataError("cache entry has an unknown format")
    if not (math.isfinite(stored_at) and math.isfinite(expires_at)):
        raise CacheDataError("cache entry has times that are not numbers")
    payload = memoryview(data)[_HEADER_SIZE:]
    try:
        if kind == _CHAT:
            return ChatEntry(_chat_decoder.decode(payload), stored_at, expires_at)
        if kind == _STREAM:
            chunks = _stream_decoder.decode(payload)
            if not chunks:
                raise CacheDataError("stream entry without chunks")
            return StreamEntry(chunks, stored_at, expires_at)
        if kind == _EMBEDDING:
            code, tokens = _VECTOR.unpack_from(payload)
            vector = FloatVector.frombytes(payload[_VECTOR_SIZE:], code.decode("latin-1"))
            return EmbeddingEntry(vector, tokens, stored_at, expires_at)
    except CacheDataError:
        raise
    except Exception as exc:  # any bytes at all: decode errors, RecursionError, bad lengths
        raise CacheDataError(f"cache entry does not decode: {type(exc).__name__}") from exc
    raise CacheDataError(f"cache entry has an unknown kind {kind}")
