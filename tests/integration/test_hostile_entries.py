"""Any bytes under a key are a miss (DESIGN §4.1): an entry nested 100,000 levels deep, a stream
entry of zero chunks, an entry of the wrong kind, a truncated entry — each gives a miss and a
log line, never an exception, whether the call is plain or streamed. The bytes are written
under the call's real key with redis-py (and into the memory cache through ``astore``)."""

from __future__ import annotations

import logging
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
import pytest
import redis

import llmstash
from llmstash.caching import Cache
from llmstash.testing import FakeProvider

KEY = "sk-test-key-123456"
DEPTH = 100_000
HEADER = struct.Struct("<2sBBddH")  # magic, kind, flags, stored-at, expires-at, model length
MAGIC = b"L\x03"
CHAT, STREAM, EMBEDDING = 1, 2, 3
MARK = "@@hostile@@"

Writer = Callable[[str, bytes], Awaitable[None]]


def entry(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, kind, 0, time.time(), 0.0, 0) + payload


def chat_payload(logprobs: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "from a hostile entry"},
                "finish_reason": "stop",
                "logprobs": logprobs,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def deeply_nested(container: str) -> bytes:
    """A chat entry whose ``logprobs`` nests ``DEPTH`` arrays or maps (MessagePack written by
    hand: no encoder would build it)."""
    level = b"\x91" if container == "list" else b"\x81\xa7content"  # [x] or {"content": x}
    nested = level * DEPTH + b"\xc0"
    payload = msgspec.msgpack.encode(chat_payload(MARK))
    marker = msgspec.msgpack.encode(MARK)
    assert payload.count(marker) == 1
    return entry(CHAT, payload.replace(marker, nested))


HOSTILE: dict[str, Callable[[bytes], bytes]] = {
    "nested 100k lists": lambda valid: deeply_nested("list"),
    "nested 100k maps": lambda valid: deeply_nested("map"),
    "stream of zero chunks": lambda valid: entry(STREAM, msgspec.msgpack.encode([])),
    "stream of a non-chunk": lambda valid: entry(STREAM, msgspec.msgpack.encode([{"id": 3}])),
    "embedding kind": lambda valid: entry(EMBEDDING, struct.pack("<cI", b"f", 1) + b"\0" * 32),
    "unknown kind": lambda valid: entry(9, valid[HEADER.size :]),
    "chat kind with a list": lambda valid: entry(CHAT, msgspec.msgpack.encode([1, 2, 3])),
    "chat of the wrong shape": lambda valid: entry(
        CHAT, msgspec.msgpack.encode({"id": 1, "choices": "nope"})
    ),
    "truncated payload": lambda valid: valid[: HEADER.size + (len(valid) - HEADER.size) // 2],
    "truncated header": lambda valid: valid[: HEADER.size - 3],
    "header only": lambda valid: valid[: HEADER.size],
    "empty": lambda valid: b"",
    "not ours": lambda valid: b'{"id": "x", "choices": []}',
}


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    name = f"test-hostile-{uuid.uuid4().hex}"
    yield name
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{name}:*"))
        if keys:
            client.delete(*keys)


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
async def cache_and_writer(
    request: pytest.FixtureRequest, llm: None
) -> tuple[Cache, Writer, Callable[[str], Awaitable[bytes | None]]]:
    """A cache installed as ``llmstash.cache``, a function writing raw bytes under a key of it,
    and one reading them back."""
    if request.param == "local":
        cache = Cache()

        async def write(key: str, data: bytes) -> None:
            await cache.astore({key: data}, None)

        async def read(key: str) -> bytes | None:
            return await cache.backend.get(key)

    else:
        url = request.getfixturevalue("redis_url")
        namespace = request.getfixturevalue("namespace")
        cache = Cache(type="redis", url=url, namespace=namespace, lookup_timeout=2.0)
        raw = redis.Redis.from_url(url)
        request.addfinalizer(raw.close)

        async def write(key: str, data: bytes) -> None:
            await cache.aflush_writes()
            raw.set(key, data)

        async def read(key: str) -> bytes | None:
            await cache.aflush_writes()
            value: bytes | None = raw.get(key)
            return value

    llmstash.cache = cache
    return cache, write, read


def chat_kwargs(provider: FakeProvider, text: str) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "api_base": provider.openai_base,
        "api_key": KEY,
    }


async def ask(kwargs: dict[str, Any], mode: str) -> tuple[bool, str]:
    """The call in ``mode``: whether it was a hit, and its text."""
    if mode == "stream":
        stream = await llmstash.acompletion(**kwargs, stream=True)
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return stream.cache_hit, text
    r = await llmstash.acompletion(**kwargs)
    return r._hidden_params["cache_hit"], r.choices[0].message.content


def warnings_from_llmstash(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name.startswith("llmstash") and r.levelno >= logging.WARNING
    ]


@pytest.mark.parametrize("mode", ["plain", "stream"])
@pytest.mark.parametrize("hostile", list(HOSTILE))
async def test_hostile_bytes_under_a_chat_key_are_a_logged_miss(
    provider, cache_and_writer, caplog, hostile, mode
):
    cache, write, read = cache_and_writer
    kwargs = chat_kwargs(provider, f"hostile {hostile} {mode}")
    first = await llmstash.acompletion(**kwargs)
    key = first._hidden_params["cache_key"]
    valid = await read(key)
    assert valid is not None and valid.startswith(MAGIC)
    await write(key, HOSTILE[hostile](valid))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="llmstash"):
        hit, text = await ask(kwargs, mode)
    assert hit is False
    assert text == f"Echo: hostile {hostile} {mode}"
    assert provider.request_count == 2
    assert warnings_from_llmstash(caplog), "no log line for the unreadable entry"
    # The miss replaced the hostile bytes: the next identical call hits.
    again, _ = await ask(kwargs, "plain")
    assert again is True
    assert provider.request_count == 2


@pytest.mark.parametrize("hostile", ["chat entry", "truncated", "stream of zero chunks"])
async def test_hostile_bytes_under_an_embedding_key_are_a_logged_miss(
    provider, cache_and_writer, caplog, hostile
):
    cache, write, read = cache_and_writer
    kwargs = {
        "model": "openai/text-embedding-3-small",
        "api_base": provider.openai_base,
        "api_key": KEY,
    }
    words = [f"hostile-{uuid.uuid4().hex}", f"fine-{uuid.uuid4().hex}"]
    first = await llmstash.aembedding(input=words, **kwargs)
    [key] = cache.input_cache_keys([words[0]], **kwargs, input=words)
    valid = await read(key)
    assert valid is not None and valid.startswith(MAGIC)
    chat = await llmstash.acompletion(**chat_kwargs(provider, "a chat entry"))
    bad = {
        "chat entry": await read(chat._hidden_params["cache_key"]),
        "truncated": valid[: len(valid) - 5],
        "stream of zero chunks": entry(STREAM, msgspec.msgpack.encode([])),
    }[hostile]
    assert bad is not None
    await write(key, bad)
    provider.reset()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="llmstash"):
        again = await llmstash.aembedding(input=words, **kwargs)
    assert provider.request_count == 1
    assert provider.requests[0].json["input"] == [words[0]]  # the other input was a hit
    assert [d.embedding.tolist() for d in again.data] == [d.embedding.tolist() for d in first.data]
    assert warnings_from_llmstash(caplog), "no log line for the unreadable entry"
