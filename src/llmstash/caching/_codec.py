"""The one stored format, shared by every backend.

An entry is ``MAGIC (2 bytes) | kind (1 byte) | flags (1 byte) | stored-at | expires-at |
model length (2 bytes) | model (UTF-8) | payload`` (times are float64 unix seconds; expires-at is
0 for an entry that never expires). The header alone tells what an entry is — kind, model, age,
expiry, size — so tools list entries with :func:`peek` without decoding bodies. The low four
bits of ``flags`` say how the payload is encoded: 0 as it is, 1 raw DEFLATE, 2 raw DEFLATE with
the preset dictionary :data:`ZDICT_V1` (MessagePack field names and common words of chat
answers); the high four bits are reserved and must be 0. DEFLATE is the standard library's
``zlib``, so every process of a fleet reads every entry with no optional install. Entries are
compressed at the storage boundary, by :func:`compress`, for the stores that pay per byte
(Redis, disk); the in-memory store keeps them plain, since a hit there must not pay for
inflating. An encoding this release does not know is a clean miss. The payload of a chat
or stream entry is MessagePack of the response objects, every field the provider sent included
(unknown ones ride in ``model_extra``), decoded by msgspec straight into the typed objects; an
embedding entry is its packed floats. Responses API and text completion entries (plain and
stream) hold the provider's JSON objects as they arrived, as MessagePack.

:func:`decode` returns a typed entry — :class:`ChatEntry`, :class:`StreamEntry`,
:class:`EmbeddingEntry`, :class:`ResponsesEntry`, :class:`ResponsesStreamEntry`,
:class:`TextCompletionEntry`, :class:`TextCompletionStreamEntry` — so callers tell kinds apart
with ``isinstance`` and mypy checks them.
Anything else under a key (other software's bytes, an older format, a stream of zero chunks,
nesting deep enough to exhaust the decoder) raises :class:`CacheDataError`, which the cache
turns into a miss.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any, Final

import msgspec

from ..exceptions import CacheDataError
from ..types import FloatVector, ModelResponse, ModelResponseStream
from ..types._json import ResponsesAPIResponse, ResponsesAPIStreamEvent, TextCompletionResponse

__all__ = [
    "ChatEntry",
    "EmbeddingEntry",
    "Entry",
    "EntryMeta",
    "ResponsesEntry",
    "ResponsesStreamEntry",
    "StreamEntry",
    "TextCompletionEntry",
    "TextCompletionStreamEntry",
    "compress",
    "decode",
    "decode_expiry",
    "encode_chat",
    "encode_embedding",
    "encode_responses",
    "encode_responses_stream",
    "encode_stream",
    "encode_text_completion",
    "encode_text_completion_stream",
    "peek",
]

MAGIC: Final = b"L\x03"
_CHAT: Final = 1
_STREAM: Final = 2
_EMBEDDING: Final = 3
_RESPONSES: Final = 4
_RESPONSES_STREAM: Final = 5
_TEXT: Final = 6
_TEXT_STREAM: Final = 7

_HEADER = struct.Struct("<2sBBddH")  # magic, kind, flags, stored-at, expires-at, model length
_HEADER_SIZE = _HEADER.size
_VECTOR = struct.Struct("<cI")  # typecode, prompt tokens; the packed floats follow
_VECTOR_SIZE = _VECTOR.size
_encoder = msgspec.msgpack.Encoder()

_PLAIN: Final = 0
_DEFLATE: Final = 1
_DEFLATE_DICT1: Final = 2
_ENCODING_MASK: Final = 0x0F
COMPRESS_MIN: Final = 256
"""Payloads shorter than this many bytes are stored as they are: too small to gain much."""
_COMPRESS_GAIN: Final = 0.875
"""A compressed payload is kept only if it takes at most this share of the plain one."""
_NOT_COMPRESSED: Final = frozenset({_EMBEDDING})
"""Kinds whose payloads do not compress (packed floats): never tried."""
_MAX_INFLATED: Final = 256 * 1024 * 1024
"""The largest payload an entry may inflate to; beyond it the entry is garbage (a miss)."""


def _fixstrs(*names: str) -> bytes:
    return b"".join(bytes([0xA0 + len(n)]) + n.encode() for n in names)


# The preset dictionary of encoding 2. Its bytes must never change: entries written with it
# are read with it. A better dictionary is a new encoding number beside this one.
ZDICT_V1: Final = (
    b" the of and to in a is that for it as with was on be by this are or from at an not "
    b"which have has but can will you your we they their there these those more also when each "
    b"such if would should could may one all other than into only about use used using how what "
    b"new first two time between because over some like most very make any different however "
    b"example following important based then data value values function code return response "
    b"request model models cache error file line first second third step steps result results "
    b"information provide provides within without while both where here way well user users "
    b"system process number set need needs help work works following: I It The This In For To "
    b"You If We A An As Yes No Note: Here is Here are ### ** - 1. 2. 3. 4. 5. ```python\n``` \n\n"
    + _fixstrs(
        "tool_use",
        "text",
        "thinking",
        "signature",
        "input",
        "stop_sequence",
        "end_turn",
        "max_tokens",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "delta",
        "chat.completion.chunk",
        "tool_calls",
        "function",
        "arguments",
        "name",
        "type",
        "id",
        "call_",
        "length",
        "content_filter",
        "prompt_tokens_details",
        "cached_tokens",
        "audio_tokens",
        "completion_tokens_details",
        "reasoning_tokens",
        "accepted_prediction_tokens",
        "rejected_prediction_tokens",
        "service_tier",
        "default",
        "refusal",
        "annotations",
        "logprobs",
        "index",
    )
    + b"\x87\xa2id\xd9&chatcmpl-"
    + _fixstrs("choices")
    + b"\x91\x82"
    + _fixstrs("message")
    + b"\x82"
    + _fixstrs("content", "role", "assistant", "finish_reason", "stop", "created")
    + b"\xce"
    + _fixstrs(
        "model",
        "gpt-4o-mini",
        "object",
        "chat.completion",
        "usage",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "system_fingerprint",
        "fp_",
    )
)
"""The preset dictionary of payload encoding 2 (fixed forever)."""
_chat_decoder = msgspec.msgpack.Decoder(ModelResponse)
_stream_decoder = msgspec.msgpack.Decoder(list[ModelResponseStream])
_json_object_decoder = msgspec.msgpack.Decoder(dict[str, Any])
_json_list_decoder = msgspec.msgpack.Decoder(list[dict[str, Any]])


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


class ResponsesEntry(_Entry):
    """A plain Responses API answer, its JSON as the provider sent it."""

    __slots__ = ("response",)

    def __init__(self, response: ResponsesAPIResponse, stored_at: float, expires_at: float) -> None:
        super().__init__(stored_at, expires_at)
        self.response = response


class ResponsesStreamEntry(_Entry):
    """A complete streamed Responses API answer: every event as sent, in order (the last one
    ``response.completed`` or ``response.incomplete``, which carries the whole answer)."""

    __slots__ = ("events",)

    def __init__(
        self, events: list[ResponsesAPIStreamEvent], stored_at: float, expires_at: float
    ) -> None:
        super().__init__(stored_at, expires_at)
        self.events = events


class TextCompletionEntry(_Entry):
    """A plain text completion, its JSON as the provider sent it."""

    __slots__ = ("response",)

    def __init__(
        self, response: TextCompletionResponse, stored_at: float, expires_at: float
    ) -> None:
        super().__init__(stored_at, expires_at)
        self.response = response


class TextCompletionStreamEntry(_Entry):
    """A complete streamed text completion: every chunk as sent (at least one)."""

    __slots__ = ("chunks",)

    def __init__(
        self, chunks: list[TextCompletionResponse], stored_at: float, expires_at: float
    ) -> None:
        super().__init__(stored_at, expires_at)
        self.chunks = chunks


Entry = (
    ChatEntry
    | StreamEntry
    | EmbeddingEntry
    | ResponsesEntry
    | ResponsesStreamEntry
    | TextCompletionEntry
    | TextCompletionStreamEntry
)
"""Any decoded entry."""

KIND_NAMES: Final = {
    _CHAT: "chat",
    _STREAM: "stream",
    _EMBEDDING: "embedding",
    _RESPONSES: "responses",
    _RESPONSES_STREAM: "responses-stream",
    _TEXT: "text-completion",
    _TEXT_STREAM: "text-completion-stream",
}
"""The name of each entry kind, as tools show it."""


class EntryMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What an entry's header says, read without decoding its body (:func:`peek`)."""

    kind: str
    """``"chat"``, ``"stream"``, ``"embedding"``, ``"responses"``, ``"responses-stream"``,
    ``"text-completion"``, ``"text-completion-stream"`` (or ``"kind-N"`` for a kind this
    release does not know)."""
    model: str
    """The model the entry was stored for (``""`` when the writer did not say)."""
    stored_at: float
    """Unix time the entry was written."""
    expires_at: float
    """Unix time after which the entry is stale; 0 for never."""
    size: int
    """Stored bytes, header included."""
    flags: int = 0
    """How the payload is encoded (0: plain, 1: DEFLATE, 2: DEFLATE with the preset
    dictionary)."""


def _pack(
    kind: int,
    stored_at: float,
    ttl: float | None,
    payload: bytes,
    model: str = "",
    flags: int = 0,
    *,
    compressed: bool = False,
) -> bytes:
    """Frame ``payload`` as an entry of ``kind``; with ``compressed``, DEFLATE it when that
    pays (see :func:`compress`). ``flags`` says how ``payload`` is already encoded."""
    expires_at = stored_at + ttl if ttl else 0.0
    name = model.encode("utf-8", "replace")[:0xFFFF]
    if compressed and not flags:
        payload, flags = _deflate(kind, payload)
    return _HEADER.pack(MAGIC, kind, flags, stored_at, expires_at, len(name)) + name + payload


def _deflate(kind: int, payload: bytes | memoryview) -> tuple[bytes, int]:
    """``(payload, flags)``: compressed with the preset dictionary when it pays, else as it
    was."""
    if kind in _NOT_COMPRESSED or len(payload) < COMPRESS_MIN:
        return bytes(payload), _PLAIN
    packer = zlib.compressobj(1, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, ZDICT_V1)
    packed = packer.compress(payload) + packer.flush()
    if len(packed) > len(payload) * _COMPRESS_GAIN:
        return bytes(payload), _PLAIN
    return packed, _DEFLATE_DICT1


def compress(data: bytes) -> bytes:
    """``data`` (an entry of any kind) with its payload compressed where that pays: a payload
    of at least :data:`COMPRESS_MIN` bytes that DEFLATE shrinks by an eighth or more. Entries
    already encoded, of kinds that do not compress (packed embeddings), or not of this format
    come back unchanged."""
    try:
        kind, flags, _, _, _, start = _unpack_header(data)
    except CacheDataError:
        return data
    if flags:
        return data
    payload, flags = _deflate(kind, memoryview(data)[start:])
    if not flags:
        return data
    header = bytearray(data[:start])
    header[3] = flags
    return bytes(header) + payload


def _inflate(payload: memoryview, flags: int) -> bytes | memoryview:
    """The plain payload of an entry whose header says ``flags``."""
    if flags == _PLAIN:
        return payload
    if flags & ~_ENCODING_MASK:
        raise CacheDataError(f"cache entry has unknown payload flags {flags}")
    if flags == _DEFLATE_DICT1:
        inflater = zlib.decompressobj(-15, ZDICT_V1)
    elif flags == _DEFLATE:
        inflater = zlib.decompressobj(-15)
    else:
        raise CacheDataError(f"cache entry has an unknown payload encoding {flags}")
    try:
        plain = inflater.decompress(payload, _MAX_INFLATED)
    except zlib.error as exc:
        raise CacheDataError(f"cache entry does not inflate: {exc}") from exc
    if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise CacheDataError("cache entry's compressed payload is truncated or too large")
    return plain


def _unpack_header(data: bytes) -> tuple[int, int, float, float, int, int]:
    """``(kind, flags, stored_at, expires_at, model offset, payload offset)``, or
    CacheDataError; the model name is ``data[model offset:payload offset]`` (UTF-8), left
    undecoded here because a hit does not need it."""
    try:
        magic, kind, flags, stored_at, expires_at, name_len = _HEADER.unpack_from(data)
    except (struct.error, TypeError) as exc:
        raise CacheDataError("cache entry too short or not bytes") from exc
    if magic != MAGIC:
        raise CacheDataError("cache entry has an unknown format")
    if not (math.isfinite(stored_at) and math.isfinite(expires_at)):
        raise CacheDataError("cache entry has times that are not numbers")
    end = _HEADER_SIZE + name_len
    if len(data) < end:
        raise CacheDataError("cache entry too short for its header")
    return kind, flags, stored_at, expires_at, _HEADER_SIZE, end


def peek(data: bytes) -> EntryMeta:
    """The header of an entry — kind, model, times, size — without decoding its payload.

    Raises :class:`CacheDataError` for bytes that are not an entry of this format."""
    kind, flags, stored_at, expires_at, name_at, start = _unpack_header(data)
    return EntryMeta(
        kind=KIND_NAMES.get(kind, f"kind-{kind}"),
        model=bytes(data[name_at:start]).decode("utf-8", "replace"),
        stored_at=stored_at,
        expires_at=expires_at,
        size=len(data),
        flags=flags,
    )


def encode_chat(
    response: ModelResponse, stored_at: float, ttl: float | None = None, *, model: str = ""
) -> bytes:
    """Bytes for a chat completion (``model``: the requested model, kept in the header)."""
    return _pack(_CHAT, stored_at, ttl, _encoder.encode(response), model)


def encode_stream(
    chunks: list[ModelResponseStream],
    stored_at: float,
    ttl: float | None = None,
    *,
    model: str = "",
) -> bytes:
    """Bytes for a complete stream, chunk boundaries kept."""
    if not chunks:
        raise ValueError("a stream entry needs at least one chunk")
    return _pack(_STREAM, stored_at, ttl, _encoder.encode(chunks), model)


def encode_embedding(
    vector: FloatVector,
    tokens: int,
    stored_at: float,
    ttl: float | None = None,
    *,
    model: str = "",
) -> bytes:
    """Bytes for one input's embedding (packed floats) and its share of the prompt tokens."""
    payload = _VECTOR.pack(vector.typecode.encode(), tokens) + vector.tobytes()
    return _pack(_EMBEDDING, stored_at, ttl, payload, model)


def encode_responses(
    response: ResponsesAPIResponse, stored_at: float, ttl: float | None = None, *, model: str = ""
) -> bytes:
    """Bytes for a plain Responses API answer (its JSON as sent, every field kept)."""
    return _pack(_RESPONSES, stored_at, ttl, _encoder.encode(response._data), model)


def encode_responses_stream(
    events: list[ResponsesAPIStreamEvent],
    stored_at: float,
    ttl: float | None = None,
    *,
    model: str = "",
) -> bytes:
    """Bytes for a complete Responses API event stream, every event as sent."""
    if not events:
        raise ValueError("a stream entry needs at least one event")
    return _pack(
        _RESPONSES_STREAM, stored_at, ttl, _encoder.encode([e._data for e in events]), model
    )


def encode_text_completion(
    response: TextCompletionResponse, stored_at: float, ttl: float | None = None, *, model: str = ""
) -> bytes:
    """Bytes for a plain text completion (its JSON as sent)."""
    return _pack(_TEXT, stored_at, ttl, _encoder.encode(response._data), model)


def encode_text_completion_stream(
    chunks: list[TextCompletionResponse],
    stored_at: float,
    ttl: float | None = None,
    *,
    model: str = "",
) -> bytes:
    """Bytes for a complete streamed text completion, chunk boundaries kept."""
    if not chunks:
        raise ValueError("a stream entry needs at least one chunk")
    return _pack(_TEXT_STREAM, stored_at, ttl, _encoder.encode([c._data for c in chunks]), model)


def _objects(payload: bytes | memoryview) -> list[dict[str, Any]]:
    """A non-empty list of JSON objects, or CacheDataError."""
    items = _json_list_decoder.decode(payload)
    if not items:
        raise CacheDataError("stream entry without events")
    return items


def decode_expiry(data: bytes) -> float:
    """The expires-at time in an entry's header (0 for never), without decoding the rest."""
    try:
        magic, _, _, _, expires_at, _ = _HEADER.unpack_from(data)
    except (struct.error, TypeError) as exc:
        raise CacheDataError("cache entry too short or not bytes") from exc
    if magic != MAGIC:
        raise CacheDataError("cache entry has an unknown format")
    return float(expires_at)


def decode(data: bytes) -> Entry:
    """Decode any entry; :class:`CacheDataError` if the bytes are not a usable entry of ours."""
    kind, flags, stored_at, expires_at, _, start = _unpack_header(data)
    payload = _inflate(memoryview(data)[start:], flags)
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
        if kind == _RESPONSES:
            body = _json_object_decoder.decode(payload)
            return ResponsesEntry(ResponsesAPIResponse(body), stored_at, expires_at)
        if kind == _RESPONSES_STREAM:
            events = [ResponsesAPIStreamEvent(e) for e in _objects(payload)]
            return ResponsesStreamEntry(events, stored_at, expires_at)
        if kind == _TEXT:
            body = _json_object_decoder.decode(payload)
            return TextCompletionEntry(TextCompletionResponse(body), stored_at, expires_at)
        if kind == _TEXT_STREAM:
            pieces = [TextCompletionResponse(c) for c in _objects(payload)]
            return TextCompletionStreamEntry(pieces, stored_at, expires_at)
    except CacheDataError:
        raise
    except Exception as exc:  # any bytes at all: decode errors, RecursionError, bad lengths
        raise CacheDataError(f"cache entry does not decode: {type(exc).__name__}") from exc
    raise CacheDataError(f"cache entry has an unknown kind {kind}")
