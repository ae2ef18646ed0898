"""The one stored format, shared by every backend.

An entry is ``MAGIC (2 bytes) | kind (1 byte) | stored-at | expires-at | payload`` (times are
float64 unix seconds; expires-at is 0 for an entry that never expires);
the payload is MessagePack of the response objects (compact, and decoded by msgspec straight
into the typed objects in about a microsecond). Anything else under a key — other software's
bytes, an older format, valid JSON of the wrong shape — raises :class:`CacheDataError`, which
the cache turns into a miss.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import msgspec

from ..exceptions import CacheDataError
from ..types import FloatVector, ModelResponse, ModelResponseStream

__all__ = [
    "KIND_CHAT",
    "KIND_EMBEDDING",
    "KIND_STREAM",
    "Entry",
    "decode",
    "decode_expiry",
    "encode_chat",
    "encode_embedding",
    "encode_entry",
    "encode_stream",
]

MAGIC: Final = b"L\x01"
KIND_CHAT: Final = 1
KIND_STREAM: Final = 2
KIND_EMBEDDING: Final = 3

_HEADER = struct.Struct("<2sBdd")
_HEADER_SIZE = _HEADER.size


_VECTOR = struct.Struct("<cI")  # typecode, prompt tokens; the packed floats follow
_VECTOR_SIZE = _VECTOR.size
_chat_encoder = msgspec.msgpack.Encoder()
_chat_decoder = msgspec.msgpack.Decoder(ModelResponse)
_stream_decoder = msgspec.msgpack.Decoder(list[ModelResponseStream])


class Entry(msgspec.Struct):
    """A decoded entry: what kind, when it was stored, and the value."""

    kind: int
    stored_at: float
    value: Any
    expires_at: float = 0.0
    """Unix time after which the entry is stale; 0 for never."""


def _pack(kind: int, stored_at: float, ttl: float | None, payload: bytes) -> bytes:
    expires_at = stored_at + ttl if ttl else 0.0
    return _HEADER.pack(MAGIC, kind, stored_at, expires_at) + payload


def encode_chat(response: ModelResponse, stored_at: float, ttl: float | None = None) -> bytes:
    """Bytes for a chat completion."""
    return _pack(KIND_CHAT, stored_at, ttl, _chat_encoder.encode(response))


def encode_stream(
    chunks: list[ModelResponseStream], stored_at: float, ttl: float | None = None
) -> bytes:
    """Bytes for a complete stream, chunk boundaries kept."""
    return _pack(KIND_STREAM, stored_at, ttl, _chat_encoder.encode(chunks))


def encode_embedding(
    vector: FloatVector, tokens: int, stored_at: float, ttl: float | None = None
) -> bytes:
    """Bytes for one input's embedding (packed floats) and its share of the prompt tokens."""
    payload = _VECTOR.pack(vector.typecode.encode(), tokens) + vector.tobytes()
    return _pack(KIND_EMBEDDING, stored_at, ttl, payload)


def encode_entry(entry: Entry) -> bytes:
    """Bytes for a decoded chat or stream entry (to hand one entry to several callers)."""
    ttl = entry.expires_at - entry.stored_at if entry.expires_at else None
    if entry.kind == KIND_STREAM:
        return encode_stream(entry.value, entry.stored_at, ttl)
    return encode_chat(entry.value, entry.stored_at, ttl)


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
    """Decode any entry; :class:`CacheDataError` if the bytes are not one of ours."""
    try:
        magic, kind, stored_at, expires_at = _HEADER.unpack_from(data)
    except (struct.error, TypeError) as exc:
        raise CacheDataError("cache entry too short or not bytes") from exc
    if magic != MAGIC:
        raise CacheDataError("cache entry has an unknown format")
    payload = memoryview(data)[_HEADER_SIZE:]
    try:
        if kind == KIND_CHAT:
            return Entry(kind, stored_at, _chat_decoder.decode(payload), expires_at)
        if kind == KIND_STREAM:
            return Entry(kind, stored_at, _stream_decoder.decode(payload), expires_at)
        if kind == KIND_EMBEDDING:
            code, tokens = _VECTOR.unpack_from(payload)
            vector = FloatVector.frombytes(payload[_VECTOR_SIZE:], code.decode("latin-1"))
            return Entry(kind, stored_at, (vector, tokens), expires_at)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, struct.error) as exc:
        raise CacheDataError(f"cache entry does not decode: {exc}") from exc
    raise CacheDataError(f"cache entry has an unknown kind {kind}")
