"""OpenAI's Chat Completions and Embeddings APIs, and servers that speak them.

Request building and response parsing are plain functions; :class:`OpenAIProvider` only joins
them to the sending loop. Responses are decoded from bytes straight into the response structs.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any

import anyio
import httpx
import msgspec

from ..types import (
    Embedding,
    EmbeddingResponse,
    FloatVector,
    ModelResponse,
    ModelResponseStream,
    Usage,
)
from ..types._json import ResponsesAPIResponse, ResponsesAPIStreamEvent, TextCompletionResponse
from ..types._models import decode_json
from ._base import Route
from ._http import EventParser, Sender, build_post, event_error, invalid_body, split_extras
from ._sse import ServerSentEvent

__all__ = [
    "OpenAIProvider",
    "chat_body",
    "embedding_body",
    "new_stream_parser",
    "parse_chat_response",
    "parse_embedding_response",
    "parse_responses_event",
    "parse_responses_response",
    "parse_stream_event",
    "parse_text_completion",
    "parse_text_completion_event",
    "responses_body",
    "text_completion_body",
]


def chat_body(
    route: Route, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], *, stream: bool
) -> dict[str, Any]:
    """The JSON body of a chat completion: the caller's params as given, plus model, messages
    and (for streams) ``"stream": true``."""
    body = {**params, "model": route.upstream_model, "messages": list(messages)}
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return body


def parse_chat_response(body: bytes, route: Route) -> ModelResponse:
    """Decode a chat completion body, keeping fields the types do not declare
    (``model_extra``); lenient about a missing ``id``/``created`` and null token counts."""
    try:
        return decode_json(body, ModelResponse)
    except msgspec.DecodeError as exc:
        raise invalid_body(body, route, exc) from exc


def parse_stream_event(
    event: ServerSentEvent, route: Route
) -> Sequence[ModelResponseStream] | None:
    """One SSE event of a chat stream: a chunk, nothing (empty data), or ``None`` at ``[DONE]``.

    An ``{"error": ...}`` event raises the error it describes.
    """
    data = event.data
    if data == "[DONE]":
        return None
    if not data:
        return ()
    try:
        return (decode_json(data, ModelResponseStream),)
    except msgspec.DecodeError as exc:
        raise invalid_body(data, route, exc) from exc


def new_stream_parser(route: Route) -> Callable[[], EventParser[ModelResponseStream]]:
    """A factory of event parsers for one stream (OpenAI's parser keeps no state)."""

    def parse(event: ServerSentEvent) -> Sequence[ModelResponseStream] | None:
        return parse_stream_event(event, route)

    return lambda: parse


def embedding_body(
    route: Route,
    inputs: Sequence[str],
    params: Mapping[str, Any],
    *,
    default_format: str | None = "base64",
) -> dict[str, Any]:
    """The JSON body of an embeddings request.

    Without an ``encoding_format`` from the caller, ``default_format`` is asked for: base64
    packed float32 is a quarter of the bytes of JSON floats and decodes without building floats.
    """
    body = {**params, "model": route.upstream_model, "input": list(inputs)}
    if default_format and params.get("encoding_format") is None:
        body["encoding_format"] = default_format
    return body


class _RawEmbedding(msgspec.Struct):
    embedding: str | list[float]
    index: int = 0


class _RawEmbeddingResponse(msgspec.Struct):
    data: list[_RawEmbedding]
    model: str = ""
    usage: Usage | None = None


def parse_embedding_response(body: bytes, route: Route, *, keep_base64: bool) -> EmbeddingResponse:
    """Decode an embeddings body, ``data`` sorted by index.

    Vectors become :class:`FloatVector` (base64 wrapped as packed float32, JSON floats as
    float64), or stay base64 strings when ``keep_base64`` (the caller asked for base64).
    """
    try:
        raw = msgspec.json.decode(body, type=_RawEmbeddingResponse)
        data = [
            Embedding(
                embedding=(
                    item.embedding
                    if keep_base64 and isinstance(item.embedding, str)
                    else FloatVector.frombase64(item.embedding)
                    if isinstance(item.embedding, str)
                    else FloatVector(item.embedding)
                ),
                index=item.index,
            )
            for item in raw.data
        ]
    except (msgspec.DecodeError, ValueError) as exc:
        raise invalid_body(body, route, exc) from exc
    if any(data[i].index > data[i + 1].index for i in range(len(data) - 1)):
        data.sort(key=attrgetter("index"))
    return EmbeddingResponse(
        data=data, model=raw.model or route.upstream_model, usage=raw.usage or Usage()
    )


def responses_body(
    route: Route, input: Any, params: Mapping[str, Any], *, stream: bool
) -> dict[str, Any]:
    """The JSON body of a Responses API request: the caller's params as given (``instructions``,
    ``tools``, ``reasoning``, ``previous_response_id``, ...), plus model, input and (for
    streams) ``"stream": true``."""
    body = {**params, "model": route.upstream_model, "input": input}
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return body


def text_completion_body(
    route: Route, prompt: Any, params: Mapping[str, Any], *, stream: bool
) -> dict[str, Any]:
    """The JSON body of a (legacy) completions request."""
    body = {**params, "model": route.upstream_model, "prompt": prompt}
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return body


def _json_object(data: bytes | str, route: Route, required: str) -> dict[str, Any]:
    """A provider's JSON object that has the list field ``required`` (``output``,
    ``choices``); an error body raises the error it describes."""
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise invalid_body(data, route, exc) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get(required), list):
        raise invalid_body(data, route, ValueError(f"no {required!r} list"))
    return raw


def parse_responses_response(body: bytes, route: Route) -> ResponsesAPIResponse:
    """A Responses API answer, every field kept as sent."""
    return ResponsesAPIResponse(_json_object(body, route, "output"))


def parse_responses_event(
    event: ServerSentEvent, route: Route
) -> Sequence[ResponsesAPIStreamEvent] | None:
    """One SSE event of a Responses API stream: the typed event (its ``type`` and fields as
    sent), nothing for an empty event, ``None`` at a ``[DONE]`` (some compatible servers send
    one). An ``error`` event raises the error it describes."""
    data = event.data
    if data == "[DONE]":
        return None
    if not data:
        return ()
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise invalid_body(data, route, exc) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        if isinstance(raw, dict) and raw.get("error"):
            raise event_error(raw, route)
        raise invalid_body(data, route, ValueError("an event without a 'type'"))
    if raw["type"] == "error":
        code = raw.get("code")
        raise event_error(
            {"error": {"type": code, "code": code, "message": raw.get("message")}}, route
        )
    return (ResponsesAPIStreamEvent(raw),)


def parse_text_completion(body: bytes | str, route: Route) -> TextCompletionResponse:
    """A text completion (or one streamed chunk), every field kept as sent."""
    return TextCompletionResponse(_json_object(body, route, "choices"))


def parse_text_completion_event(
    event: ServerSentEvent, route: Route
) -> Sequence[TextCompletionResponse] | None:
    """One SSE event of a streamed text completion: a chunk, nothing, or ``None`` at
    ``[DONE]``; an ``{"error": ...}`` event raises the error it describes."""
    data = event.data
    if data == "[DONE]":
        return None
    if not data:
        return ()
    return (parse_text_completion(data, route),)


class OpenAIProvider:
    """OpenAI's API: ``POST {api_base}/chat/completions`` and ``{api_base}/embeddings`` with a
    bearer key (no ``Authorization`` header when there is no key).

    ``sleep`` and ``rand`` are injected into the retry loop (tests pass fakes).
    """

    name = "openai"
    supports_responses = True
    """Whether the provider serves the Responses API (``POST {api_base}/responses``)."""
    supports_text_completion = True
    """Whether the provider serves (legacy) text completions (``POST {api_base}/completions``)."""
    default_embedding_format: str | None = "base64"
    """Asked for when the caller gives no ``encoding_format``."""

    def __init__(
        self,
        *,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._sender = Sender(sleep=sleep, rand=rand)

    def url(self, route: Route, endpoint: str) -> str:
        """Where ``endpoint`` (``"chat/completions"``, ``"embeddings"``) is served."""
        return f"{route.api_base}/{endpoint}"

    def query(self, route: Route) -> dict[str, str] | None:
        """Query parameters every request carries."""
        return None

    def headers(self, route: Route) -> dict[str, str]:
        """Authentication headers."""
        return {"authorization": f"Bearer {route.api_key}"} if route.api_key else {}

    def _post(
        self,
        http: httpx.AsyncClient,
        route: Route,
        endpoint: str,
        body: dict[str, Any],
        extra_headers: Mapping[str, str],
        extra_body: Mapping[str, Any],
        timeout: float,
    ) -> httpx.Request:
        headers = self.headers(route)
        headers.update(extra_headers)
        body.update(extra_body)
        return build_post(
            http,
            self.url(route, endpoint),
            headers,
            body,
            timeout=timeout,
            params=self.query(route),
        )

    async def chat(
        self,
        http: httpx.AsyncClient,
        route: Route,
        messages: Sequence[dict[str, Any]],
        params: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the Provider protocol: an httpx timeout per request
        num_retries: int,
    ) -> ModelResponse:
        """One chat completion, retried on 408/409/429/5xx and connection errors."""
        rest, extra_headers, extra_body = split_extras(params)
        body = chat_body(route, messages, rest, stream=False)
        request = self._post(
            http, route, "chat/completions", body, extra_headers, extra_body, timeout
        )
        response = await self._sender.send(http, request, route, num_retries=num_retries)
        return parse_chat_response(response.content, route)

    def chat_stream(
        self,
        http: httpx.AsyncClient,
        route: Route,
        messages: Sequence[dict[str, Any]],
        params: dict[str, Any],
        *,
        timeout: float,
        num_retries: int,
    ) -> AsyncGenerator[ModelResponseStream, None]:
        """A streamed chat completion, ending at ``[DONE]``. The request is built (and a bad
        parameter raised) at once; nothing is sent until the first ``__anext__``."""
        rest, extra_headers, extra_body = split_extras(params)
        body = chat_body(route, messages, rest, stream=True)
        request = self._post(
            http, route, "chat/completions", body, extra_headers, extra_body, timeout
        )
        return self._sender.stream(
            http, request, route, new_stream_parser(route), num_retries=num_retries
        )

    async def embed(
        self,
        http: httpx.AsyncClient,
        route: Route,
        inputs: Sequence[str],
        params: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the Provider protocol: an httpx timeout per request
        num_retries: int,
    ) -> EmbeddingResponse:
        """Embeddings for ``inputs``, in input order."""
        rest, extra_headers, extra_body = split_extras(params)
        body = embedding_body(route, inputs, rest, default_format=self.default_embedding_format)
        request = self._post(http, route, "embeddings", body, extra_headers, extra_body, timeout)
        response = await self._sender.send(http, request, route, num_retries=num_retries)
        return parse_embedding_response(
            response.content, route, keep_base64=rest.get("encoding_format") == "base64"
        )

    async def responses(
        self,
        http: httpx.AsyncClient,
        route: Route,
        input: Any,
        params: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - an httpx timeout per request
        num_retries: int,
    ) -> ResponsesAPIResponse:
        """One Responses API answer, retried as chat completions are."""
        rest, extra_headers, extra_body = split_extras(params)
        body = responses_body(route, input, rest, stream=False)
        request = self._post(http, route, "responses", body, extra_headers, extra_body, timeout)
        response = await self._sender.send(http, request, route, num_retries=num_retries)
        return parse_responses_response(response.content, route)

    def responses_stream(
        self,
        http: httpx.AsyncClient,
        route: Route,
        input: Any,
        params: dict[str, Any],
        *,
        timeout: float,
        num_retries: int,
    ) -> AsyncGenerator[ResponsesAPIStreamEvent, None]:
        """A streamed Responses API answer: its typed events, as sent, until the server ends
        the stream. Nothing is sent until the first ``__anext__``."""
        rest, extra_headers, extra_body = split_extras(params)
        body = responses_body(route, input, rest, stream=True)
        request = self._post(http, route, "responses", body, extra_headers, extra_body, timeout)

        def parser() -> EventParser[ResponsesAPIStreamEvent]:
            return lambda event: parse_responses_event(event, route)

        return self._sender.stream(http, request, route, parser, num_retries=num_retries)

    async def text_completion(
        self,
        http: httpx.AsyncClient,
        route: Route,
        prompt: Any,
        params: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - an httpx timeout per request
        num_retries: int,
    ) -> TextCompletionResponse:
        """One text completion (``POST .../completions``)."""
        rest, extra_headers, extra_body = split_extras(params)
        body = text_completion_body(route, prompt, rest, stream=False)
        request = self._post(http, route, "completions", body, extra_headers, extra_body, timeout)
        response = await self._sender.send(http, request, route, num_retries=num_retries)
        return parse_text_completion(response.content, route)

    def text_completion_stream(
        self,
        http: httpx.AsyncClient,
        route: Route,
        prompt: Any,
        params: dict[str, Any],
        *,
        timeout: float,
        num_retries: int,
    ) -> AsyncGenerator[TextCompletionResponse, None]:
        """A streamed text completion, ending at ``[DONE]``."""
        rest, extra_headers, extra_body = split_extras(params)
        body = text_completion_body(route, prompt, rest, stream=True)
        request = self._post(http, route, "completions", body, extra_headers, extra_body, timeout)

        def parser() -> EventParser[TextCompletionResponse]:
            return lambda event: parse_text_completion_event(event, route)

        return self._sender.stream(http, request, route, parser, num_retries=num_retries)
