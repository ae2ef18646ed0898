from __future__ import annotations

from typing import Any

import httpx
import pytest

from llmstash import exceptions
from llmstash.exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from llmstash.providers import AnthropicProvider, AzureProvider, OpenAIProvider, Route
from llmstash.providers._http import error_message, event_error

KEY = "zz-custom-key-VALUE-31337"  # not sk- shaped: only the route's key redaction catches it
ROUTES: dict[str, tuple[Any, Route]] = {
    "openai": (OpenAIProvider, Route(
        provider="openai", model="gpt-4o", upstream_model="gpt-4o",
        api_base="http://t/v1", api_key=KEY,
    )),
    "azure": (AzureProvider, Route(
        provider="azure", model="azure/d", upstream_model="d",
        api_base="http://t", api_key=KEY, api_version="2024-10-21",
    )),
    "anthropic": (AnthropicProvider, Route(
        provider="anthropic", model="anthropic/c", upstream_model="c",
        api_base="http://t", api_key=KEY,
    )),
}  # fmt: skip


async def failing_call(name: str, status: int, **response: object) -> BaseException:
    provider_cls, route = ROUTES[name]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, **response)  # type: ignore[arg-type]

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(Exception) as info:
            await provider_cls().chat(
                http, route, [{"role": "user", "content": "x"}], {}, timeout=5, num_retries=0
            )
    return info.value


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, APIStatusError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, ServiceUnavailableError),
        (529, ServiceUnavailableError),
    ],
)
@pytest.mark.parametrize("provider", sorted(ROUTES))
async def test_status_to_class(provider: str, status: int, cls: type[APIStatusError]) -> None:
    exc = await failing_call(provider, status, json={"error": {"message": "it broke"}})
    assert type(exc) is cls
    assert isinstance(exc, APIStatusError)
    assert exc.status_code == status
    assert exc.message == "it broke"
    assert exc.llm_provider == provider
    assert exc.model == ROUTES[provider][1].model
    assert exc.response is not None and exc.response.status_code == status


async def test_anthropic_error_body() -> None:
    exc = await failing_call(
        "anthropic",
        529,
        json={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    assert isinstance(exc, ServiceUnavailableError)
    assert exc.message == "Overloaded"


async def test_context_window_and_content_policy_from_400() -> None:
    exc = await failing_call(
        "openai",
        400,
        json={
            "error": {
                "message": "This model's maximum context length is 8192 tokens.",
                "code": "context_length_exceeded",
            }
        },
    )
    assert isinstance(exc, ContextWindowExceededError)
    exc = await failing_call(
        "azure",
        400,
        json={
            "error": {
                "code": "content_filter",
                "message": "filtered by Azure OpenAI's content management policy",
            }
        },
    )
    assert isinstance(exc, ContentPolicyViolationError)


@pytest.mark.parametrize("provider", sorted(ROUTES))
async def test_key_never_in_errors(provider: str) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}. Bearer {KEY}"}}
    exc = await failing_call(provider, 401, json=body)
    assert isinstance(exc, AuthenticationError)
    for text in (str(exc), repr(exc), exc.message, str(exc.args)):
        assert KEY not in text
    assert "***" in exc.message


async def test_key_never_in_plain_text_errors() -> None:
    exc = await failing_call("openai", 500, text=f"upstream said {KEY}")
    assert KEY not in str(exc) and KEY not in repr(exc)


async def test_key_never_in_validation_errors() -> None:
    exc = await failing_call("openai", 200, text=f"<html>{KEY}</html>")
    assert isinstance(exc, APIResponseValidationError)
    assert KEY not in str(exc) and KEY not in repr(exc)


async def test_200_with_error_body_becomes_that_error() -> None:
    exc = await failing_call(
        "openai", 200, json={"error": {"message": "slow down", "type": "rate_limit_error"}}
    )
    assert isinstance(exc, RateLimitError)
    assert exc.response is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "openai style"}}', "openai style"),
        (b'{"type": "error", "error": {"type": "x", "message": "anthropic"}}', "anthropic"),
        (b'{"error": "plain string"}', "plain string"),
        (b'{"message": "top level"}', "top level"),
        (b'{"detail": "fastapi style"}', "fastapi style"),
        (b'{"detail": [{"loc": ["body"], "msg": "bad"}]}', '[{"loc":["body"],"msg":"bad"}]'),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "HTTP 502 with an empty body"),
    ],
)
def test_error_message_extraction(body: bytes, message: str) -> None:
    assert error_message(body, 502) == message


def test_error_message_is_truncated() -> None:
    assert len(error_message(b"x" * 10_000, 500)) == 2000


@pytest.mark.parametrize(
    ("error", "cls", "status"),
    [
        ({"type": "overloaded_error", "message": "m"}, ServiceUnavailableError, 529),
        ({"type": "rate_limit_error", "message": "m"}, RateLimitError, 429),
        ({"type": "invalid_request_error", "message": "m"}, BadRequestError, 400),
        ({"type": "server_error", "message": "m"}, InternalServerError, 500),
        ({"type": "mystery", "message": "m"}, InternalServerError, 500),
        ({"code": 503, "message": "m"}, ServiceUnavailableError, 503),
        ("just a string", InternalServerError, 500),
    ],
)
def test_event_error(error: object, cls: type[APIStatusError], status: int) -> None:
    exc = event_error({"error": error}, ROUTES["anthropic"][1])
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.response is None


def test_event_error_redacts_key() -> None:
    exc = event_error({"error": {"message": f"key {KEY}"}}, ROUTES["openai"][1])
    assert KEY not in str(exc)


async def test_key_never_in_connection_errors() -> None:
    _, route = ROUTES["openai"]

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"could not reach proxy with {KEY}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(APIConnectionError) as info:
            await OpenAIProvider().chat(http, route, [], {}, timeout=5, num_retries=0)
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert "ConnectError" in str(info.value)


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (exceptions.BadRequestError, 400),
        (exceptions.ContextWindowExceededError, 400),
        (exceptions.AuthenticationError, 401),
        (exceptions.PermissionDeniedError, 403),
        (exceptions.NotFoundError, 404),
        (exceptions.UnprocessableEntityError, 422),
        (exceptions.RateLimitError, 429),
        (exceptions.InternalServerError, 500),
        (exceptions.ServiceUnavailableError, 503),
    ],
)
def test_errors_built_by_hand_carry_their_class_status(
    cls: type[exceptions.APIStatusError], status: int
) -> None:
    # As in LiteLLM, users build these for mock_response and tests without a status code.
    err = cls("slow down", model="gpt-4o-mini", llm_provider="openai")
    assert err.status_code == status
    assert f"({status})" in str(err)
    assert cls("x", status_code=418).status_code == 418
