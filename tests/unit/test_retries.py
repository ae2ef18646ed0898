from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from llmstash.exceptions import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
)
from llmstash.providers import AnthropicProvider, OpenAIProvider, Route
from llmstash.providers._http import MAX_RETRY_AFTER, retry_delay, should_retry_status
from llmstash.types import ModelResponseStream

ROUTE = Route(
    provider="openai",
    model="gpt-4o",
    upstream_model="gpt-4o",
    api_base="http://test/v1",
    api_key="sk-retry-SECRET-0000",
)
ANTHROPIC_ROUTE = Route(
    provider="anthropic",
    model="anthropic/claude-x",
    upstream_model="claude-x",
    api_base="http://test",
    api_key="sk-ant-retry-SECRET",
)
OK_BODY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
}
MESSAGES = [{"role": "user", "content": "hello"}]


# retry_delay -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(0, 0.0, 0.25), (0, 1.0, 0.5), (1, 0.0, 0.5), (2, 1.0, 2.0), (3, 0.5, 3.0), (10, 1.0, 8.0)],
)
def test_backoff_is_exponential_with_equal_jitter(
    attempt: int, rand: float, expected: float
) -> None:
    delay = retry_delay(attempt, None, base=0.5, max_delay=8.0, rand=lambda: rand)
    assert delay == pytest.approx(expected)


def test_backoff_never_exceeds_max_delay() -> None:
    assert retry_delay(1000, None, base=0.5, max_delay=8.0, rand=lambda: 1.0) == 8.0


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), ("0", 0.0), ("1.5", 1.5)])
def test_retry_after_seconds(header: str, expected: float) -> None:
    assert retry_delay(0, header, rand=lambda: 1.0) == expected


def test_retry_after_is_capped() -> None:
    assert retry_delay(0, "3600", rand=lambda: 1.0) == MAX_RETRY_AFTER


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 7, usegmt=True)
    assert retry_delay(0, header, now=lambda: now) == pytest.approx(7.0)
    past = email.utils.formatdate(now - 100, usegmt=True)
    assert retry_delay(0, past, now=lambda: now) == 0.0


@pytest.mark.parametrize("header", ["soon", "-5", "nan", ""])
def test_unusable_retry_after_falls_back_to_backoff(header: str) -> None:
    assert retry_delay(1, header, base=0.5, rand=lambda: 1.0) == 1.0


@pytest.mark.parametrize(
    ("status", "retried"),
    [(400, False), (401, False), (403, False), (404, False), (422, False), (408, True)]
    + [(409, True), (429, True), (500, True), (502, True), (503, True), (529, True)],
)
def test_which_statuses_are_retried(status: int, retried: bool) -> None:
    assert should_retry_status(status) is retried


def test_x_should_retry_header_overrides() -> None:
    assert should_retry_status(400, httpx.Headers({"x-should-retry": "true"}))
    assert not should_retry_status(500, httpx.Headers({"x-should-retry": "false"}))


# the send loop -----------------------------------------------------------------------------


Handler = Callable[[httpx.Request], httpx.Response]


def scripted(*steps: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    script: Iterator[httpx.Response | Exception] = iter(steps)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = next(script)
        if isinstance(step, Exception):
            raise step
        return step

    return handler, seen


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def chat(
    *steps: httpx.Response | Exception, num_retries: int = 2
) -> tuple[Any, list[httpx.Request], list[float]]:
    handler, seen = scripted(*steps)
    sleeps = Sleeps()
    provider = OpenAIProvider(sleep=sleeps, rand=lambda: 1.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        try:
            result = await provider.chat(
                http, ROUTE, MESSAGES, {}, timeout=5.0, num_retries=num_retries
            )
        except Exception as exc:
            return exc, seen, sleeps.delays
    return result, seen, sleeps.delays


async def test_429_is_retried_after_retry_after() -> None:
    result, seen, delays = await chat(
        httpx.Response(429, headers={"retry-after": "2"}, json={"error": {"message": "slow"}}),
        httpx.Response(200, json=OK_BODY),
    )
    assert result.choices[0].message.content == "hi"
    assert len(seen) == 2
    assert delays == [2.0]


async def test_retry_after_ms_wins() -> None:
    _, _, delays = await chat(
        httpx.Response(429, headers={"retry-after-ms": "250", "retry-after": "9"}),
        httpx.Response(200, json=OK_BODY),
    )
    assert delays == [0.25]


async def test_5xx_backoff_grows() -> None:
    result, seen, delays = await chat(
        httpx.Response(500),
        httpx.Response(503),
        httpx.Response(200, json=OK_BODY),
    )
    assert result.id == "chatcmpl-1"
    assert len(seen) == 3
    assert delays == [0.5, 1.0]


async def test_retries_run_out() -> None:
    exc, seen, delays = await chat(
        httpx.Response(529, json={"error": {"message": "overloaded"}}),
        httpx.Response(529, json={"error": {"message": "overloaded"}}),
        httpx.Response(529, json={"error": {"message": "overloaded"}}),
    )
    assert isinstance(exc, ServiceUnavailableError)
    assert exc.status_code == 529
    assert "overloaded" in exc.message
    assert len(seen) == 3
    assert len(delays) == 2


async def test_zero_retries_means_one_attempt() -> None:
    exc, seen, delays = await chat(httpx.Response(500), num_retries=0)
    assert isinstance(exc, InternalServerError)
    assert len(seen) == 1
    assert delays == []


async def test_400_is_not_retried() -> None:
    exc, seen, delays = await chat(
        httpx.Response(400, json={"error": {"message": "bad temperature"}}),
        httpx.Response(200, json=OK_BODY),
    )
    assert isinstance(exc, BadRequestError)
    assert exc.message == "bad temperature"
    assert exc.response is not None and exc.response.status_code == 400
    assert len(seen) == 1
    assert delays == []


async def test_connect_error_is_retried_then_mapped() -> None:
    exc, seen, delays = await chat(
        httpx.ConnectError("refused"),
        httpx.ConnectError("refused"),
        httpx.ConnectError("refused"),
    )
    assert isinstance(exc, APIConnectionError)
    assert not isinstance(exc, APITimeoutError)
    assert isinstance(exc.__cause__, httpx.ConnectError)
    assert exc.llm_provider == "openai" and exc.model == "gpt-4o"
    assert len(seen) == 3
    assert len(delays) == 2


async def test_timeout_is_retried_then_mapped() -> None:
    result, seen, _ = await chat(httpx.ReadTimeout("slow"), httpx.Response(200, json=OK_BODY))
    assert result.id == "chatcmpl-1"
    exc, seen, _ = await chat(httpx.ReadTimeout("slow"), num_retries=0)
    assert isinstance(exc, APITimeoutError)
    assert isinstance(exc.__cause__, httpx.ReadTimeout)


async def test_unsupported_protocol_is_not_retried() -> None:
    exc, seen, _ = await chat(httpx.UnsupportedProtocol("nope"))
    assert isinstance(exc, APIConnectionError)
    assert len(seen) == 1


async def test_timeout_is_set_per_request() -> None:
    _, seen, _ = await chat(httpx.Response(200, json=OK_BODY))
    assert seen[0].extensions["timeout"] == httpx.Timeout(5.0).as_dict()


# streams -----------------------------------------------------------------------------------


def sse(*events: str) -> bytes:
    return "".join(f"data: {e}\n\n" for e in events).encode()


CHUNK = (
    '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    '"choices":[{"index":0,"delta":{"content":"%s"}}]}'
)


def stream_response(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "text/event-stream"}, content=body)


async def collect_stream(
    provider: Any, route: Route, *steps: httpx.Response | Exception, num_retries: int = 2
) -> tuple[Exception | None, list[ModelResponseStream], list[httpx.Request]]:
    handler, seen = scripted(*steps)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        chunks: list[ModelResponseStream] = []
        try:
            async with aclosing(
                provider.chat_stream(http, route, MESSAGES, {}, timeout=5, num_retries=num_retries)
            ) as stream:
                async for chunk in stream:
                    chunks.append(chunk)  # noqa: PERF401 - keep what arrived before a failure
        except Exception as exc:
            return exc, chunks, seen
    return None, chunks, seen


async def test_stream_retried_before_first_chunk() -> None:
    sleeps = Sleeps()
    provider = OpenAIProvider(sleep=sleeps, rand=lambda: 1.0)
    exc, chunks, seen = await collect_stream(
        provider,
        ROUTE,
        httpx.Response(429, headers={"retry-after": "1"}),
        stream_response(sse(CHUNK % "a", CHUNK % "b", "[DONE]")),
    )
    assert exc is None
    assert [c.choices[0].delta.content for c in chunks] == ["a", "b"]
    assert len(seen) == 2
    assert sleeps.delays == [1.0]


async def test_stream_error_event_before_first_chunk_is_retried() -> None:
    sleeps = Sleeps()
    provider = AnthropicProvider(sleep=sleeps, rand=lambda: 1.0)
    overloaded = (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    start = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        b'"model":"claude-x","content":[],"usage":{"input_tokens":3,"output_tokens":0}}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    exc, chunks, seen = await collect_stream(
        provider, ANTHROPIC_ROUTE, stream_response(overloaded), stream_response(start)
    )
    assert exc is None
    assert len(seen) == 2
    assert chunks[0].id == "msg_1"
    assert len(sleeps.delays) == 1


async def test_stream_not_retried_after_first_chunk() -> None:
    sleeps = Sleeps()
    provider = OpenAIProvider(sleep=sleeps)
    error = '{"error":{"message":"server fell over","type":"server_error"}}'
    exc, chunks, seen = await collect_stream(
        provider,
        ROUTE,
        stream_response(sse(CHUNK % "a", error)),
        stream_response(sse(CHUNK % "never", "[DONE]")),
    )
    assert isinstance(exc, InternalServerError)
    assert "server fell over" in exc.message
    assert [c.choices[0].delta.content for c in chunks] == ["a"]
    assert len(seen) == 1
    assert sleeps.delays == []


async def test_stream_400_not_retried() -> None:
    sleeps = Sleeps()
    exc, chunks, seen = await collect_stream(
        OpenAIProvider(sleep=sleeps),
        ROUTE,
        httpx.Response(400, json={"error": {"message": "nope"}}),
    )
    assert isinstance(exc, BadRequestError)
    assert len(seen) == 1


async def test_stream_rate_limit_exhausted() -> None:
    exc, _, seen = await collect_stream(
        OpenAIProvider(sleep=Sleeps()),
        ROUTE,
        httpx.Response(429),
        httpx.Response(429),
        num_retries=1,
    )
    assert isinstance(exc, RateLimitError)
    assert len(seen) == 2


class TrackedStream(httpx.AsyncByteStream):
    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part

    async def aclose(self) -> None:
        self.closed = True


async def test_stream_response_closed_when_consumer_stops_early() -> None:
    body = TrackedStream([sse(CHUNK % "a"), sse(CHUNK % "b"), sse("[DONE]")])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        stream = OpenAIProvider().chat_stream(http, ROUTE, MESSAGES, {}, timeout=5, num_retries=0)
        first = await stream.__anext__()
        assert first.choices[0].delta.content == "a"
        assert not body.closed
        await stream.aclose()
        assert body.closed


async def test_stream_response_closed_at_done_without_reading_the_rest() -> None:
    body = TrackedStream([sse(CHUNK % "a", "[DONE]"), b"garbage that is never parsed"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        stream = OpenAIProvider().chat_stream(http, ROUTE, MESSAGES, {}, timeout=5, num_retries=0)
        chunks = [c async for c in stream]
    assert len(chunks) == 1
    assert body.closed
