"""The errors llmstash raises, one tree, named as OpenAI's and LiteLLM's are.

```
LLMStashError                      anything llmstash raises on purpose
├── InvalidRequestError            the caller's mistake, found before any network I/O (ValueError)
├── ClientClosedError              a Client used after aclose() (RuntimeError)
├── APIError                       a provider call failed; carries model and llm_provider
│   ├── APIConnectionError         no HTTP response: refused, reset, DNS
│   │   └── APITimeoutError        the request timed out (alias: Timeout)
│   ├── APIResponseValidationError the provider answered 2xx with a body we cannot read
│   └── APIStatusError             the provider answered with an error status
│       ├── BadRequestError              400
│       │   ├── ContextWindowExceededError   the prompt is longer than the model takes
│       │   └── ContentPolicyViolationError  refused by the provider's content filter
│       ├── AuthenticationError          401
│       ├── PermissionDeniedError        403
│       ├── NotFoundError                404
│       ├── UnprocessableEntityError     422
│       ├── RateLimitError               429
│       └── InternalServerError          5xx
│           └── ServiceUnavailableError  503 (and Anthropic's 529 "overloaded")
└── CacheError                     the cache misbehaved; the Client turns these into a miss
    ├── CacheBackendError          the backend failed or timed out
    └── CacheDataError             an entry's bytes do not decode to the expected shape
```

No message, ``repr`` or attribute of these errors holds an API key: provider error bodies are
scrubbed of anything that looks like one before they become a message.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CacheBackendError",
    "CacheDataError",
    "CacheError",
    "ClientClosedError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "EventLoopMismatchError",
    "InternalServerError",
    "InvalidRequestError",
    "LLMStashError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Timeout",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "is_secret_header",
    "make_status_error",
    "redact",
    "secret_forms",
]

# Things that look like credentials: OpenAI/Anthropic style keys, bearer tokens and JWTs (Azure
# AD tokens), however they are quoted.
_SECRET_RE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{6,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}"
    r"|eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}(?:\.[A-Za-z0-9_\-]*)?)"
)
_SPLIT_RE = re.compile(r"[\s\x00-\x1f\x7f]+")
_MIN_SECRET = 4
"""Shorter strings are never masked: they would mask half of every message."""
_MIN_PIECE = 8
"""Pieces of a secret (between whitespace or control characters) at least this long are
masked on their own."""


_MIN_WINDOW = 12
"""A run of this many characters of a secret found in a message is masked (with the rest of
the run): a server echoing half a key leaks it as surely as the whole."""
_SECRET_HEADERS = frozenset(
    ("authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie")
)
_SECRET_HEADER_WORDS = ("key", "token", "secret", "auth", "password", "credential", "signature")


def is_secret_header(name: str) -> bool:
    """Whether a header (by name) carries a credential: ``authorization``, ``api-key``,
    ``x-api-key``, cookies, and any name that speaks of a key, token, secret or password."""
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or any(word in lowered for word in _SECRET_HEADER_WORDS)


def secret_forms(secret: str) -> list[str]:
    """Every spelling of ``secret`` a message may hold, longest first: as given, stripped, as
    ``repr`` shows it (``\\n`` for a newline), as the ``repr`` of its bytes (httpx's header
    errors), and each long piece between whitespace or control characters."""
    forms: set[str] = set()
    for value in (secret, secret.strip()):
        forms.add(value)
        forms.add(repr(value)[1:-1])
        forms.add(repr(value.encode("utf-8", "backslashreplace"))[2:-1])
        forms.add(value.encode("unicode_escape").decode("ascii"))
    forms.update(p for p in _SPLIT_RE.split(secret) if len(p) >= _MIN_PIECE)
    return sorted((f for f in forms if len(f) >= _MIN_SECRET), key=len, reverse=True)


def _mask_runs(text: str, secret: str) -> str:
    """Mask every run of at least :data:`_MIN_WINDOW` consecutive characters of ``secret``."""
    i = 0
    while i + _MIN_WINDOW <= len(secret):
        start = text.find(secret[i : i + _MIN_WINDOW])
        if start < 0:
            i += 1
            continue
        j, end = i + _MIN_WINDOW, start + _MIN_WINDOW
        while j < len(secret) and end < len(text) and text[end] == secret[j]:
            j, end = j + 1, end + 1
        text = f"{text[:start]}***{text[end:]}"
    return text


def redact(text: str, *secrets: str | None) -> str:
    """Return ``text`` with the given secrets masked, in every spelling :func:`secret_forms`
    knows and any long run of their characters, and anything shaped like an API key or token.
    Only error paths pay for it."""
    for secret in secrets:
        if secret and len(secret.strip()) >= _MIN_SECRET:
            for form in secret_forms(secret):
                if form in text:
                    text = text.replace(form, "***")
            for piece in _SPLIT_RE.split(secret):
                text = _mask_runs(text, piece)
    return _SECRET_RE.sub("***", text)


class LLMStashError(Exception):
    """Base class of every error llmstash raises on purpose."""


class InvalidRequestError(LLMStashError, ValueError):
    """The call cannot be made as written (bad model, messages, missing key); no I/O happened."""


class ClientClosedError(LLMStashError, RuntimeError):
    """A :class:`llmstash.Client` was used after ``aclose()``."""


class EventLoopMismatchError(ClientClosedError):
    """A :class:`llmstash.Client` was used on an event loop it cannot serve: while another
    running loop uses it, or with an ``http_client`` of a loop that has closed."""


class APIError(LLMStashError):
    """A provider call failed.

    Attributes: ``message``, ``model``, ``llm_provider``, ``status_code`` (``None`` when no
    HTTP response arrived).
    """

    status_code: int | None = None

    def __init__(self, message: str, *, model: str | None = None, llm_provider: str | None = None):
        super().__init__(message)
        self.message = message
        self.model = model
        self.llm_provider = llm_provider

    def __str__(self) -> str:
        where = ", ".join(
            f"{k}={v}" for k, v in (("provider", self.llm_provider), ("model", self.model)) if v
        )
        prefix = f"{type(self).__name__}"
        if self.status_code is not None:
            prefix += f" ({self.status_code})"
        return f"{prefix}: {self.message}" + (f" [{where}]" if where else "")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, model={self.model!r}, "
            f"llm_provider={self.llm_provider!r})"
        )


class APIConnectionError(APIError):
    """No HTTP response arrived: the connection was refused, reset or could not be made."""


class APITimeoutError(APIConnectionError):
    """The request did not complete within its timeout."""


Timeout = APITimeoutError
"""LiteLLM's name for :class:`APITimeoutError`."""


class APIResponseValidationError(APIError):
    """The provider answered with a success status but a body llmstash cannot read."""


class APIStatusError(APIError):
    """The provider answered with an error status. ``response`` is the ``httpx.Response``.

    ``status_code`` defaults to the class's own status (429 for :class:`RateLimitError`, …),
    so ``RateLimitError("slow down", model="gpt-4o-mini")`` works as in LiteLLM."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        response: httpx.Response | None = None,
        model: str | None = None,
        llm_provider: str | None = None,
    ):
        super().__init__(message, model=model, llm_provider=llm_provider)
        if status_code is not None:
            self.status_code = status_code
        self.response = response


class BadRequestError(APIStatusError):
    """400: the provider rejected the request."""

    status_code = 400


class UnsupportedParamsError(BadRequestError, InvalidRequestError):
    """The call asks a provider for something it does not offer (the Responses API of a
    provider without one, ...); raised before any I/O. LiteLLM's name; it is a
    :class:`BadRequestError` (status 400) and an :class:`InvalidRequestError`."""

    def __init__(self, message: str, *, model: str | None = None, llm_provider: str | None = None):
        super().__init__(message, status_code=400, model=model, llm_provider=llm_provider)


class ContextWindowExceededError(BadRequestError):
    """400: the prompt does not fit the model's context window."""


class ContentPolicyViolationError(BadRequestError):
    """400: the provider's content filter refused the request."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""

    status_code = 401


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or resource."""

    status_code = 403


class NotFoundError(APIStatusError):
    """404: no such model, deployment or endpoint."""

    status_code = 404


class UnprocessableEntityError(APIStatusError):
    """422: the request was well-formed but semantically wrong."""

    status_code = 422


class RateLimitError(APIStatusError):
    """429: too many requests or tokens; retried with backoff before it reaches you."""

    status_code = 429


class InternalServerError(APIStatusError):
    """5xx: the provider failed; retried with backoff before it reaches you."""

    status_code = 500


class ServiceUnavailableError(InternalServerError):
    """503 (or Anthropic's 529): the provider is overloaded or down."""

    status_code = 503


class CacheError(LLMStashError):
    """The cache misbehaved. The Client logs these and treats them as a miss."""


class CacheBackendError(CacheError):
    """The cache backend failed, refused or timed out."""


class CacheDataError(CacheError):
    """A cached entry's bytes do not decode to the shape expected."""


_STATUS_TABLE: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    529: ServiceUnavailableError,
}

_CONTEXT_HINTS = (
    "context_length_exceeded",
    "context length",
    "maximum context",
    "too many tokens",
    "prompt is too long",
)
_POLICY_HINTS = ("content_policy", "content_filter", "content management policy")


def make_status_error(
    status_code: int,
    message: str,
    *,
    response: httpx.Response | None = None,
    model: str | None = None,
    llm_provider: str | None = None,
) -> APIStatusError:
    """Pick the error class for an HTTP status (and, for 400, the body's wording)."""
    cls = _STATUS_TABLE.get(status_code)
    if cls is None:
        cls = InternalServerError if status_code >= 500 else APIStatusError
    if cls is BadRequestError:
        lowered = message.lower()
        if any(h in lowered for h in _CONTEXT_HINTS):
            cls = ContextWindowExceededError
        elif any(h in lowered for h in _POLICY_HINTS):
            cls = ContentPolicyViolationError
    return cls(
        redact(message),
        status_code=status_code,
        response=response,
        model=model,
        llm_provider=llm_provider,
    )
