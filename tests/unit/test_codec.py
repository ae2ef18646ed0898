"""The stored format: round trips, compactness, and garbage rejected as CacheDataError."""

from __future__ import annotations

import array
import struct

import msgspec
import pytest

from llmstash.caching._codec import (
    MAGIC,
    ChatEntry,
    EmbeddingEntry,
    StreamEntry,
    decode,
    encode_chat,
    encode_embedding,
    encode_stream,
)
from llmstash.exceptions import CacheDataError
from llmstash.types import (
    ChatCompletionMessageToolCall,
    Choices,
    Delta,
    FloatVector,
    Function,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
    Usage,
)


def make_response(text: str = "hello") -> ModelResponse:
    return ModelResponse(
        id="chatcmpl-1",
        created=1700000000,
        model="gpt-4o-mini",
        choices=[
            Choices(
                message=Message(
                    content=text,
                    tool_calls=[
                        ChatCompletionMessageToolCall(
                            id="call_1", function=Function(name="f", arguments='{"a":1}')
                        )
                    ],
                ),
                finish_reason="tool_calls",
            )
        ],
        usage=Usage(prompt_tokens=3, completion_tokens=5, total_tokens=8),
    )


def test_chat_round_trip_keeps_everything():
    r = make_response()
    entry = decode(encode_chat(r, 123.5))
    assert isinstance(entry, ChatEntry) and entry.stored_at == 123.5
    assert entry.response == r
    assert entry.response.model_dump() == r.model_dump()


def test_extra_fields_round_trip():
    r = make_response()
    r.model_extra = {"citations": ["https://a.example"], "x_vendor": {"a": [1, None]}}
    r.choices[0].message.model_extra = {"reasoning": "because"}
    entry = decode(encode_chat(r, 1.0))
    assert isinstance(entry, ChatEntry)
    assert entry.response == r
    assert entry.response.citations == ["https://a.example"]
    assert entry.response.choices[0].message["reasoning"] == "because"
    assert entry.response.model_dump()["x_vendor"] == {"a": [1, None]}


def test_hidden_params_are_not_stored():
    r = make_response()
    r._hidden_params = {"cache_hit": True}
    entry = decode(encode_chat(r, 0))
    assert isinstance(entry, ChatEntry) and entry.response._hidden_params == {}


def test_expiry_is_in_the_header():
    from llmstash.caching._codec import decode_expiry

    data = encode_chat(make_response(), 100.0, ttl=30)
    assert decode(data).expires_at == 130.0 == decode_expiry(data)
    assert decode(encode_chat(make_response(), 100.0)).expires_at == 0.0


def test_stream_round_trip_keeps_chunk_boundaries():
    chunks = [
        ModelResponseStream(
            id="c", created=1, model="m", choices=[StreamingChoices(delta=Delta(content=t))]
        )
        for t in ("a", "b", "c")
    ]
    entry = decode(encode_stream(chunks, 1.0))
    assert isinstance(entry, StreamEntry) and entry.chunks == chunks


def test_a_stream_of_zero_chunks_is_never_written_or_read():
    with pytest.raises(ValueError):
        encode_stream([], 1.0)
    forged = MAGIC + b"\x02\x00" + b"\x00" * 18 + msgspec.msgpack.encode([])
    with pytest.raises(CacheDataError):
        decode(forged)


def test_deep_nesting_is_a_data_error_not_a_recursion_error():
    # A chat entry whose logprobs nest 100,000 arrays deep: deeper than any decoder recurses.
    marker = msgspec.msgpack.encode("PLACEHOLDER")
    body = msgspec.msgpack.encode(
        {"id": "x", "created": 1, "model": "m", "choices": [{"logprobs": "PLACEHOLDER"}]}
    ).replace(marker, b"\x91" * 100_000 + b"\x90")
    with pytest.raises(CacheDataError):
        decode(MAGIC + b"\x01\x00" + b"\x00" * 18 + body)


@pytest.mark.parametrize("typecode", ["f", "d"])
def test_embedding_round_trip_is_bit_exact(typecode):
    vec = FloatVector(array.array(typecode, [0.1, -2.5, 3.25]))
    entry = decode(encode_embedding(vec, 7, 2.0))
    assert isinstance(entry, EmbeddingEntry)
    got, tokens = entry.vector, entry.tokens
    assert tokens == 7 and got.tobytes() == vec.tobytes() and got.typecode == typecode
    assert got == vec and got.tolist() == vec.tolist() and got[1:] == vec[1:]


def test_stored_bytes_are_compact():
    text = "word " * 200  # ~1 KB of content, a typical chat answer
    r = make_response(text)
    as_json = msgspec.json.encode(r)
    assert len(encode_chat(r, 0)) < len(as_json)


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\xff\xfe\x00",
        b'{"id": "x", "choices": []}',
        b"L\x03\x09\x00" + b"\x00" * 18 + b"\x80",  # unknown kind
        b"L\x03\x01\x00" + b"\x00" * 18 + b"\x93\x01\x02\x03",  # msgpack of the wrong shape
        b"L\x03\x01\x00" + b"\x00" * 18 + b"\xc1",  # invalid msgpack
        b"L\x03\x03\x00" + b"\x00" * 18 + struct.pack("<cI", b"x", 1) + b"abcd",  # bad typecode
        b"L\x03\x03\x00" + b"\x00" * 18 + struct.pack("<cI", b"f", 1) + b"abc",  # torn vector
        b"L\x03\x03\x00" + b"\x00" * 18 + b"f\x01",  # vector header cut short
        b"L\x01\x01" + b"\x00" * 16 + b"\x80",  # an older format version
        b"L\x02\x01" + b"\x00" * 16 + b"\x80",  # the previous format version
    ],
)
def test_garbage_is_a_data_error(garbage):
    with pytest.raises(CacheDataError):
        decode(garbage)


@pytest.mark.parametrize("where", ["stored_at", "expires_at"])
def test_times_that_are_not_numbers_are_a_data_error(where):
    import math

    stored, expires = (math.nan, 0.0) if where == "stored_at" else (1.0, math.nan)
    body = msgspec.msgpack.encode(make_response())
    with pytest.raises(CacheDataError):
        decode(struct.pack("<2sBBddH", MAGIC, 1, 0, stored, expires, 0) + body)


def test_peek_reads_the_header_without_the_body() -> None:
    from llmstash.caching._codec import peek

    data = encode_stream(
        [ModelResponseStream(id="c", created=1, model="m", choices=[])], 100.0, 60.0, model="m/é"
    )
    meta = peek(data + b"")
    assert (meta.kind, meta.model, meta.stored_at, meta.expires_at, meta.size) == (
        "stream",
        "m/é",
        100.0,
        160.0,
        len(data),
    )
    with pytest.raises(CacheDataError):
        peek(data[:5])
    with pytest.raises(CacheDataError):  # the model length runs past the end
        peek(data[: data.index(b"m/")])
