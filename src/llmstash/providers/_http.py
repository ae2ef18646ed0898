"""Sending provider requests: retries with backoff, timeouts, and mapping failures to errors.

The decisions are plain functions (:func:`retry_delay`, :func:`should_retry_status`,
:func:`error_message`); :class:`Sender` is the thin loop that applies them over an
``httpx.AsyncClient``. Sleeping and randomness are injected so tests check the delays without
waiting.
"""

from __future__ import annotations

import email.utils
import inspect
import random
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

import anyio
import httpx
import msgspec

from .._config import DEFAULT_RETRY_BASE_DELAY, DEFAULT_RETRY_MAX_DELAY
from .._log import DEBUG, log_attempt, logger
from ..exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    InvalidRequestError,
    is_secret_header,
    make_status_error,
    redact,
)
from ._base import Route
from ._sse import ServerSentEvent, aiter_sse

__all__ = [
    "MAX_RETRY_AFTER",
    "Sender",
    "build_post",
    "clean_secret",
    "encode_body",
    "error_message",
    "event_error",
    "fresh_token",
    "invalid_body",
    "request_secrets",
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


def error_message(body: bytes, status_code: int, *, secrets: Sequence[str | None] = ()) -> str:
    """The provider's own words from an error body, with ``secrets`` masked.

    Understands ``{"error": {"message": ...}}`` (OpenAI, Azure, Anthropic),
    ``{"error": "..."}``, ``{"message": ...}`` and ``{"detail": ...}``; falls back to the text.
    Secrets are masked before the text is cut to length, so a cut never leaves half a key.
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
    text = redact(text, *secrets)[:_MAX_MESSAGE]
    return text or f"HTTP {status_code} with an empty body"


_SENDABLE = re.compile(r"[\x20-\x7e]*")
"""What a credential may hold once stripped: printable ASCII (spaces included)."""
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def clean_secret(value: object, what: str) -> str | None:
    """A credential as it can be sent: surrounding whitespace stripped (a key read from a secret
    file ends with a newline), ``None`` when nothing is left.

    A pydantic ``SecretStr`` is unwrapped. A value that is not a string, or that holds a control
    or non-ASCII character inside, is refused with :class:`InvalidRequestError`, which names
    ``what`` but never shows the value.
    """
    if value is None:
        return None
    reveal = getattr(value, "get_secret_value", None)  # pydantic's SecretStr
    if callable(reveal) and not isinstance(value, str):
        value = reveal()
    if not isinstance(value, str):
        raise InvalidRequestError(f"{what} must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        return None
    if _SENDABLE.fullmatch(value) is None:
        raise InvalidRequestError(
            f"{what} contains a control or non-ASCII character (the value is not shown); "
            "check where it is read from"
        )
    return value


def request_secrets(request: httpx.Request) -> list[str]:
    """The credentials a request carries in its headers (for a ``Bearer`` value, the token
    too), to be masked in anything said about the request."""
    found: list[str] = []
    for raw_name, raw_value in request.headers.raw:
        if is_secret_header(raw_name.decode("latin-1")):
            value = raw_value.decode("latin-1")
            found.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                found.append(token)
    return found


def _route_secrets(route: Route) -> tuple[str | None, str | None]:
    return route.api_key, route.azure_ad_token


def _masked_request(request: httpx.Request) -> httpx.Request:
    """A copy of ``request`` whose credential headers read ``***``: an error's response
    (``exc.response.request``) must not carry the key."""
    headers = httpx.Headers(
        [
            (name, "***" if is_secret_header(name) else value)
            for name, value in request.headers.multi_items()
        ]
    )
    return httpx.Request(request.method, request.url, headers=headers)


def status_error(
    response: httpx.Response, route: Route, secrets: Sequence[str | None] = ()
) -> APIStatusError:
    """The error for a response with an error status; its body must have been read. The
    request's credentials, the route's and ``secrets`` are masked in the message."""
    masked = (*request_secrets(response.request), *_route_secrets(route), *secrets)
    message = error_message(response.content, response.status_code, secrets=masked)
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


def _sendable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with surrounding whitespace stripped from values; a name or value that HTTP
    cannot carry is refused before any I/O, naming the header but never showing the value."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or _HEADER_NAME.fullmatch(name) is None:
            raise InvalidRequestError(f"{name!r} is not a valid HTTP header name")
        if not isinstance(value, str):
            raise InvalidRequestError(
                f"the value of header {name!r} must be a string, got {type(value).__name__}"
            )
        value = value.strip()
        if _HEADER_VALUE.fullmatch(value) is None:
            raise InvalidRequestError(
                f"the value of header {name!r} contains a control or non-ASCII character (the "
                "value is not shown)"
            )
        out[name] = value
    return out


def build_post(
    http: httpx.AsyncClient,
    url: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    *,
    timeout: float,
    params: Mapping[str, str] | None = None,
) -> httpx.Request:
    """A JSON POST with its own timeout (connect, read, write and pool, each ``timeout``).
    Header values are stripped; one HTTP cannot carry is an :class:`InvalidRequestError`."""
    return http.build_request(
        "POST",
        url,
        headers={"content-type": "application/json", **_sendable_headers(headers)},
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
        redact(message or "error event in the response stream", *_route_secrets(route)),
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
        redact(f"unexpected response body ({exc}): {text[:200]!r}", *_route_secrets(route)),
        model=route.model,
        llm_provider=route.provider,
    )


_CREDENTIAL_PARAMS = ("api_key", "azure_ad_token", "azure_ad_token_provider")
"""Credentials that may reach a provider adapter among the parameters; never sent in a body."""


def split_extras(
    params: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """``params`` without ``extra_headers``/``extra_body``, and those two (openai-python's and
    LiteLLM's names for headers and body fields sent as given). Credentials among ``params``
    (``api_key``, ``azure_ad_token``, ...) are dropped: they travel in headers, never in a
    body."""
    rest = dict(params)
    headers = rest.pop("extra_headers", None) or {}
    body = rest.pop("extra_body", None) or {}
    for name in _CREDENTIAL_PARAMS:
        rest.pop(name, None)
    if not isinstance(headers, Mapping):
        raise InvalidRequestError(
            f"extra_headers must be a dict of header names to values, got {type(headers).__name__}"
        )
    if not isinstance(body, Mapping):
        raise InvalidRequestError(
            f"extra_body must be a dict of fields to send, got {type(body).__name__}"
        )
    return rest, dict(headers), dict(body)


def _retryable_transport(exc: httpx.TransportError) -> bool:
    return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is not None and id(item) not in seen:
            seen.add(id(item))
            yield item
            todo += [item.__cause__, item.__context__]


def _scrubbed_cause(exc: httpx.TransportError, secrets: Sequence[str | None]) -> BaseException:
    """``exc`` itself when nothing in it or its chain holds a secret; otherwise a copy of the
    same class with the secrets masked in its message, without the chain or traceback (whose
    frames hold the raw header bytes)."""
    for item in _chain(exc):
        texts = (str(item), repr(item), repr(item.args))
        if any(redact(text, *secrets) != text for text in texts):
            break
    else:
        return exc
    message = redact(str(exc), *secrets)
    try:
        return type(exc)(message)
    except Exception:  # an httpx error class with another signature
        return httpx.TransportError(message)


def _transport_error(
    exc: httpx.TransportError, route: Route, request: httpx.Request
) -> APIConnectionError:
    """The error for a request that got no response, its message and ``__cause__`` free of
    credentials (httpx spells a bad header value as ``b'Bearer ...'``). Raise it outside the
    ``except`` block, so that the raw exception is not its ``__context__`` either."""
    secrets = (*request_secrets(request), *_route_secrets(route))
    cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    detail = redact(str(exc), *secrets) or type(exc).__name__
    what = "timed out" if cls is APITimeoutError else "failed"
    error = cls(
        f"request to {route.provider} {what}: {type(exc).__name__}: {detail}",
        model=route.model,
        llm_provider=route.provider,
    )
    error.__cause__ = _scrubbed_cause(exc, secrets)
    return error


async def fresh_token(route: Route) -> str | None:
    """A token from ``route.azure_ad_token_provider`` (sync or async), asked again for every
    attempt so that tokens are refreshed; ``None`` without a provider."""
    provider = route.azure_ad_token_provider
    if provider is None:
        return None
    value = provider()
    if inspect.isawaitable(value):
        value = await value
    token = clean_secret(value, "the token azure_ad_token_provider returned")
    if token is None:
        raise InvalidRequestError("azure_ad_token_provider returned an empty token")
    return token


async def _authorize(request: httpx.Request, route: Route) -> None:
    """Put a fresh token from the route's token provider, if any, on ``request``."""
    if route.azure_ad_token_provider is not None:
        request.headers["authorization"] = f"Bearer {await fresh_token(route)}"


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
        debug = logger.isEnabledFor(DEBUG)
        while True:
            await _authorize(request, route)
            failure: httpx.TransportError | None = None
            sent = time.perf_counter()
            try:
                response = await http.send(request)
            except httpx.TransportError as exc:
                failure = exc
            if debug:
                status = type(failure).__name__ if failure is not None else response.status_code
                elapsed = time.perf_counter() - sent
                log_attempt(request.method, request.url, status, elapsed, attempt)
            if failure is not None:
                if attempt < num_retries and _retryable_transport(failure):
                    await self._backoff(attempt, None)
                    attempt += 1
                    continue
                # Raised here, outside the except block: the raw error is no __context__.
                raise _transport_error(failure, route, request)
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
        debug = logger.isEnabledFor(DEBUG)
        while True:
            yielded = False
            response: httpx.Response | None = None
            failure: httpx.TransportError | None = None
            retry_after = None
            try:
                await _authorize(request, route)
                sent = time.perf_counter()
                try:
                    response = await http.send(request, stream=True)
                finally:
                    if debug:
                        status = "error" if response is None else response.status_code
                        elapsed = time.perf_counter() - sent
                        log_attempt(request.method, request.url, status, elapsed, attempt)
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
                failure = exc
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
            if failure is not None and (
                yielded or attempt >= num_retries or not _retryable_transport(failure)
            ):
                # Raised here, outside the except block: the raw error is no __context__.
                raise _transport_error(failure, route, request)
            await self._backoff(attempt, retry_after)
            attempt += 1


def _headers_of(response: httpx.Response | None) -> httpx.Headers | None:
    return response.headers if response is not None and not response.is_success else None
