from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmstash.providers._sse import ServerSentEvent, SSEDecoder, aiter_sse


def decode_all(*chunks: bytes | str) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events


def test_single_event() -> None:
    assert decode_all(b'data: {"a": 1}\n\n') == [ServerSentEvent("message", '{"a": 1}')]


def test_feed_returns_events_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent("message", "one")]
    assert decoder.flush() == []


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_split_at_every_boundary(size: int) -> None:
    stream = "event: a\r\ndata: héllo wörld ✓\r\n\r\ndata: second\r\n\r\n".encode()
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    assert decode_all(*chunks) == [
        ServerSentEvent("a", "héllo wörld ✓"),
        ServerSentEvent("message", "second"),
    ]


def test_crlf_split_between_cr_and_lf() -> None:
    assert decode_all(b"data: x\r", b"\n\r", b"\ndata: y\r\n\r\n") == [
        ServerSentEvent("message", "x"),
        ServerSentEvent("message", "y"),
    ]


def test_bare_cr_line_ends() -> None:
    assert decode_all(b"data: x\r\rdata: y\r\r") == [
        ServerSentEvent("message", "x"),
        ServerSentEvent("message", "y"),
    ]


def test_multi_line_data_joined_with_newline() -> None:
    assert decode_all(b"data: line one\ndata: line two\ndata:\n\n") == [
        ServerSentEvent("message", "line one\nline two\n")
    ]


def test_comments_and_unknown_fields_are_ignored() -> None:
    assert decode_all(b": keep-alive\n\nretry: 100\nfoo: bar\ndata: x\n: mid\n\n") == [
        ServerSentEvent("message", "x")
    ]


def test_event_names_reset_after_dispatch() -> None:
    events = decode_all(b"event: message_start\ndata: {}\n\nevent: ping\n\ndata: plain\n\n")
    assert events == [
        ServerSentEvent("message_start", "{}"),
        ServerSentEvent("message", "plain"),
    ]


def test_space_after_colon_is_optional_and_only_one_is_stripped() -> None:
    assert decode_all(b"data:x\n\ndata:  y\n\n") == [
        ServerSentEvent("message", "x"),
        ServerSentEvent("message", " y"),
    ]


def test_done_is_an_ordinary_event() -> None:
    assert decode_all(b"data: [DONE]\n\n") == [ServerSentEvent("message", "[DONE]")]


def test_id_is_kept() -> None:
    assert decode_all(b"id: 7\ndata: x\n\n") == [ServerSentEvent("message", "x", "7")]


def test_str_input() -> None:
    assert decode_all("data: a\n", "\n") == [ServerSentEvent("message", "a")]


def test_leading_bom_is_dropped_even_when_split() -> None:
    assert decode_all(b"\xef", b"\xbb\xbfdata: x\n\n") == [ServerSentEvent("message", "x")]


def test_unterminated_last_event_is_kept_on_flush() -> None:
    assert decode_all(b"data: a\n\ndata: b") == [
        ServerSentEvent("message", "a"),
        ServerSentEvent("message", "b"),
    ]


def test_event_without_data_is_not_dispatched() -> None:
    assert decode_all(b"event: ping\n\n") == []


def test_large_line_in_many_chunks() -> None:
    payload = "x" * 100_000
    stream = f"data: {payload}\n\n".encode()
    chunks = [stream[i : i + 1000] for i in range(0, len(stream), 1000)]
    assert decode_all(*chunks) == [ServerSentEvent("message", payload)]


async def test_aiter_sse() -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b"data: a\n\nda"
        yield b"ta: b\n\n"

    assert [e.data async for e in aiter_sse(source())] == ["a", "b"]
