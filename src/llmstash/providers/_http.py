"""Sending provider requests: retries with backoff, timeouts, and mapping failures to errors.

The decisions are plain functions (:func:`retry_delay`, :func:`should_retry_status`,
:func:`error_message`); :class:`Sender` is the thin loop that applies them over an
``httpx.AsyncClient``. Sleeping and randomness are injected so tests check the delays without
waiting.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

import anyio
import httpx
import msgspec

from .._config import DEFAULT_RETRY_BASE_DELAY, DEFAULT_RETRY_MAX_DELAY
from ..exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    InvalidRequestError,
    make_status_error,
    redact,
)
from ._base import Route
from ._sse import ServerSentEvent, aiter_sse

__all__ = [
    "MAX_RETRY_AFTER",
    "Sender",
    "build_post",
    "encode_body",
    "error_message",
    "event_error",
    "invalid_body",
    "retry_after_header",
    "retry_delay",
    "should_retry_status",
    "split_extras",
    "status_error",
]

T = TypeVar("T")

MAX_RETRY_AFTER = 60.0
"""Longest wait a ``Retry-After`` header can impose, in seconds."""

_MAX_MESSAGE = 2000

EventParser = Callable[[ServerSentEvent], Sequence[T] | None]
"""Turns one SSE event into chunks; ``None`` means the stream is complete."""


def retry_delay(
    attempt: int,
    retry_after: str | None,
    *,
    base: float = DEFAULT_RETRY_BASE_DELAY,
    max_delay: float = DEFAULT_RETRY_MAX_DELAY,
    rand: Callable[[], float] = random.random,
    now: Callable[[], float] = time.time,
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    A ``Retry-After`` value (delta-seconds or an HTTP-date) is obeyed, up to
    :data:`MAX_RETRY_AFTER`. Otherwise: exponential backoff ``base * 2**attempt`` capped at
    ``max_delay``, with equal jitter (a uniform draw from the upper half), so that clients that
    failed together do not retry together yet each still waits a meaningful time.
    """
    if retry_after:
        seconds = _parse_retry_after(retry_after.strip(), now)
        if seconds is not None:
            return min(seconds, MAX_RETRY_AFTER)
    ceiling = min(max_delay, base * 2.0 ** min(attempt, 62))
    return ceiling / 2 + rand() * ceiling / 2


def _parse_retry_after(value: str, now: Callable[[], float]) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now())
    if seconds != seconds or seconds < 0:  # NaN or negative: ignore the header
        return None
    return seconds


def retry_after_header(headers: httpx.Headers) -> str | None:
    """The wait the server asked for: ``retry-after-ms`` (OpenAI) turned to seconds, else
    ``retry-after``."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return str(float(ms) / 1000)
        except ValueError:
            pass
    value: str | None = headers.get("retry-after")
    return value


def should_retry_status(status_code: int, headers: httpx.Headers | None = None) -> bool:
    """408, 409, 429 and every 5xx (Anthropic's 529 included) are worth another try; an explicit
    ``x-should-retry`` header from the server overrides that."""
    if headers is not None:
        hint = headers.get("x-should-retry")
        if hint == "true":
            return True
        if hint == "false":
            return False
    return status_code in (408, 409, 429) or status_code >= 500


def error_message(body: bytes, status_code: int) -> str:
    """The provider's own words from an error body.

    Understands ``{"error": {"message": ...}}`` (OpenAI, Azure, Anthropic),
    ``{"error": "..."}``, ``{"message": ...}`` and ``{"detail": ...}``; falls back to the text.
    """
    text: str | None = None
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            found = err.get("message") or err.get("detail")
            if found:
                text = found if isinstance(found, str) else msgspec.json.encode(found).decode()
        elif isinstance(err, str) and err:
            text = err
    if text is None:
        text = body.decode("utf-8", "replace").strip()
    text = text[:_MAX_MESSAGE]
    return text or f"HTTP {status_code} with an empty body"


_SECRET_HEADERS = ("authorization", "api-key", "x-api-key")


def _masked_request(request: httpx.Request) -> httpx.Request:
    """A copy of ``request`` whose credential headers read ``***``: an error's response
    (``exc.response.request``) must not carry the key."""
    headers = httpx.Headers(request.headers)
    for name in _SECRET_HEADERS:
        if name in headers:
            headers[name] = "***"
    return httpx.Request(request.method, request.url, headers=headers)


def status_error(response: httpx.Response, route: Route) -> APIStatusError:
    """The error for a response with an error status; its body must have been read."""
    message = redact(error_message(response.content, response.status_code), route.api_key)
    response.request = _masked_request(response.request)
    return make_status_error(
        response.status_code,
        message,
        response=response,
        model=route.model,
        llm_provider=route.provider,
    )


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The JSON request body; a parameter that cannot be sent as JSON is the caller's mistake."""
    try:
        return msgspec.json.encode(body)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidRequestError(f"request parameters are not JSON-serializable: {exc}") from exc


def build_post(
    http: httpx.AsyncClient,
    url: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    *,
    timeout: float,
    params: Mapping[str, str] | None = None,
) -> httpx.Request:
    """A JSON POST with its own timeout (connect, read, write and pool, each ``timeout``)."""
    return http.build_request(
        "POST",
        url,
        headers={"content-type": "application/json", **headers},
        content=encode_body(body),
        params=params,
        timeout=httpx.Timeout(timeout),
    )


_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "tokens": 429,
    "api_error": 500,
    "server_error": 500,
    "overloaded_error": 529,
}


def event_error(payload: Mapping[str, Any], route: Route) -> APIStatusError:
    """The error for an ``{"error": {...}}`` event inside a stream that began with 2xx.

    The status is the one the error ``type`` (or a numeric ``code``) stands for, 500 when
    unknown; ``response`` is ``None``, since the HTTP response itself succeeded.
    """
    err = payload.get("error")
    status = 500
    message = ""
    if isinstance(err, Mapping):
        code = err.get("code")
        if isinstance(code, int) and 400 <= code <= 599:
            status = code
        else:
            status = _ERROR_TYPE_STATUS.get(str(err.get("type") or code), 500)
        message = str(err.get("message") or err.get("type") or "")
    elif isinstance(err, str):
        message = err
    return make_status_error(
        status,
        redact(message or "error event in the response stream", route.api_key),
        model=route.model,
        llm_provider=route.provider,
    )


def invalid_body(body: bytes | str, route: Route, exc: Exception) -> APIError:
    """The error for a success response whose body cannot be read; an ``{"error": ...}``
    body (some proxies answer errors with 200) becomes the error it describes."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict) and data.get("error"):
        return event_error(data, route)
    text = body if isinstance(body, str) else body[:200].decode("utf-8", "replace")
    return APIResponseValidationError(
        redact(f"unexpected response body ({exc}): {text[:200]!r}", route.api_key),
        model=route.model,
        llm_provider=route.provider,
    )


def split_extras(
    params: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """``params`` without ``extra_headers``/``extra_body``, and those two (openai-python's and
    LiteLLM's names for headers and body fields sent as given)."""
    rest = dict(params)
    headers = rest.pop("extra_headers", None) or {}
    body = rest.pop("extra_body", None) or {}
    return rest, dict(headers), dict(body)


def _retryable_transport(exc: httpx.TransportError) -> bool:
    return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


def _transport_error(exc: httpx.TransportError, route: Route) -> APIConnectionError:
    cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    detail = redact(str(exc), route.api_key) or type(exc).__name__
    what = "timed out" if cls is APITimeoutError else "failed"
    return cls(
        f"request to {route.provider} {what}: {type(exc).__name__}: {detail}",
        model=route.model,
        llm_provider=route.provider,
    )


class Sender:
    """Sends requests with retries. Stateless apart from the injected ``sleep`` and ``rand``.

    ``num_retries`` is the number of retries after the first attempt. Connection failures and
    timeouts (``httpx.TimeoutException``, ``NetworkError``, ``RemoteProtocolError``) and the
    statuses of :func:`should_retry_status` are retried; any other 4xx is raised at once.
    """

    __slots__ = ("_rand", "_sleep")

    def __init__(
        self,
        *,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._sleep = sleep
        self._rand = rand

    async def _backoff(self, attempt: int, retry_after: str | None) -> None:
        await self._sleep(retry_delay(attempt, retry_after, rand=self._rand))

    async def send(
        self, http: httpx.AsyncClient, request: httpx.Request, route: Route, *, num_retries: int
    ) -> httpx.Response:
        """Send ``request`` until it succeeds or retries run out; the body is read."""
        attempt = 0
        while True:
            try:
                response = await http.send(request)
            except httpx.TransportError as exc:
                if attempt < num_retries and _retryable_transport(exc):
                    await self._backoff(attempt, None)
                    attempt += 1
                    continue
                raise _transport_error(exc, route) from exc
            if response.is_success:
                return response
            if attempt < num_retries and should_retry_status(
                response.status_code, response.headers
            ):
                await self._backoff(attempt, retry_after_header(response.headers))
                attempt += 1
                continue
            raise status_error(response, route)

    async def stream(
        self,
        http: httpx.AsyncClient,
        request: httpx.Request,
        route: Route,
        new_parser: Callable[[], EventParser[T]],
        *,
        num_retries: int,
    ) -> AsyncGenerator[T, None]:
        """Send a streaming request and yield what ``new_parser()`` makes of its events.

        Until the first item is yielded, a failure (error status, connection error, or an error
        event the parser raises as a retryable :class:`APIStatusError`) is retried with a fresh
        parser; after it, failures are raised. The response is closed however iteration ends.
        """
        attempt = 0
        while True:
            yielded = False
            response: httpx.Response | None = None
            try:
                response = await http.send(request, stream=True)
                if not response.is_success:
                    await response.aread()
                    raise status_error(response, route)
                parse = new_parser()
                async with aclosing(aiter_sse(response.aiter_bytes())) as events:
                    async for event in events:
                        items = parse(event)
                        if items is None:
                            return
                        for item in items:
                            yielded = True
                            yield item
                return
            except httpx.TransportError as exc:
                if yielded or attempt >= num_retries or not _retryable_transport(exc):
                    raise _transport_error(exc, route) from exc
                retry_after = None
            except APIStatusError as exc:
                if (
                    yielded
                    or attempt >= num_retries
                    or not should_retry_status(exc.status_code or 0, _headers_of(exc.response))
                ):
                    raise
                headers = _headers_of(exc.response)
                retry_after = retry_after_header(headers) if headers is not None else None
            finally:
                if response is not None:
                    await response.aclose()
            await self._backoff(attempt, retry_after)
            attempt += 1


def _headers_of(response: httpx.Response | None) -> httpx.Headers | None:
    return response.headers if response is not None and not response.is_success else None
