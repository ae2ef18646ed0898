"""Redaction in every spelling, and credential-free errors from the sending loop.

The transport failures here are raised by an ``httpx.MockTransport`` handler worded as httpx's
own (``Illegal header value b'...'``): a header that h11 refuses can no longer be built by the
adapters, so only a stand-in can show that such an error would still reach nobody.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from llmstash._callbacks import scrub_kwargs
from llmstash.exceptions import APIConnectionError, AuthenticationError, redact, secret_forms
from llmstash.providers import AnthropicProvider, AzureProvider, OpenAIProvider, Route
from llmstash.providers._http import clean_secret

KEY = "zq81-custom-KEY-value-7736"
TOKEN = "tok-Ab3De5Gh7Jk9Lm2No4"

ROUTES: dict[str, tuple[Any, Route]] = {
    "openai": (OpenAIProvider, Route(
        provider="openai", model="gpt-4o", upstream_model="gpt-4o",
        api_base="http://t/v1", api_key=KEY,
    )),
    "azure-key": (AzureProvider, Route(
        provider="azure", model="azure/d", upstream_model="d",
        api_base="http://t", api_key=KEY, api_version="2024-10-21",
    )),
    "azure-token": (AzureProvider, Route(
        provider="azure", model="azure/d", upstream_model="d",
        api_base="http://t", azure_ad_token=KEY, api_version="2024-10-21",
    )),
    "azure-provider": (AzureProvider, Route(
        provider="azure", model="azure/d", upstream_model="d",
        api_base="http://t", azure_ad_token_provider=lambda: KEY, api_version="v1",
    )),
    "anthropic": (AnthropicProvider, Route(
        provider="anthropic", model="anthropic/c", upstream_model="c",
        api_base="http://t", api_key=KEY,
    )),
}  # fmt: skip


def texts(exc: BaseException) -> list[str]:
    found = ["".join(traceback.format_exception(exc))]
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is not None:
            found += [str(item), repr(item), repr(item.args)]
            todo += [item.__cause__, item.__context__]
    return found


def assert_clean(exc: BaseException, *secrets: str) -> None:
    for text in texts(exc):
        for secret in secrets:
            for piece in (secret, secret[:12], secret[-12:]):
                assert piece not in text, f"{piece!r} in {text[:200]!r}"


@pytest.mark.parametrize(
    "spelling",
    [
        KEY,
        repr(KEY + "\n"),
        repr((KEY + "\n").encode()),
        repr(f"Bearer {KEY}\n".encode()),
        KEY[:15] + "…",
        "..." + KEY[-13:],
        f'{{"key": "{KEY}"}}',
    ],
)
def test_redact_masks_every_spelling(spelling: str) -> None:
    text = redact(f"Illegal header value {spelling} (sent)", KEY + "\n")
    assert KEY[:12] not in text and KEY[-12:] not in text
    assert text.startswith("Illegal header value ") and text.endswith(" (sent)")


def test_redact_masks_pieces_of_a_secret_split_by_control_characters() -> None:
    secret = "first-half-ABCDEF\nsecond-half-GHIJKL"
    text = redact(repr(secret.encode()) + " and " + repr(secret), secret)
    assert "first-half" not in text and "second-half" not in text


def test_redact_leaves_short_secrets_and_other_text_alone() -> None:
    assert redact("a key k was sent", "k") == "a key k was sent"
    assert redact("HTTP 401 Unauthorized", KEY) == "HTTP 401 Unauthorized"
    assert secret_forms("abc\n")[0] in ("abc\n", "abc\\n")


@pytest.mark.parametrize("value", [KEY, f" {KEY}\n", f"{KEY}\r\n", f"\t{KEY} "])
def test_clean_secret_strips(value: str) -> None:
    assert clean_secret(value, "api_key") == KEY


def test_clean_secret_unwraps_secret_str() -> None:
    from pydantic import SecretStr

    assert clean_secret(SecretStr(KEY + "\n"), "api_key") == KEY
    with pytest.raises(ValueError, match="must be a string"):
        clean_secret(42, "api_key")


@pytest.mark.parametrize("value", [None, "", " \n"])
def test_clean_secret_empty_is_none(value: str | None) -> None:
    assert clean_secret(value, "api_key") is None


@pytest.mark.parametrize("inner", ["\n", "\x00", "\x1b", "\x7f", "é", "\u2028"])
def test_clean_secret_refuses_inner_control_characters_without_showing_them(inner: str) -> None:
    with pytest.raises(ValueError, match="api_key") as info:
        clean_secret(KEY[:13] + inner + KEY[13:], "api_key")
    assert_clean(info.value, KEY)


def raising(make: Callable[[httpx.Request], BaseException]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise make(request)

    return httpx.MockTransport(handler)


def header_error(request: httpx.Request) -> BaseException:
    auth = request.headers.get("authorization") or request.headers.get("api-key")
    auth = auth or request.headers["x-api-key"]
    return httpx.LocalProtocolError(f"Illegal header value {(auth + chr(10)).encode()!r}")


@pytest.mark.parametrize("name", sorted(ROUTES))
@pytest.mark.parametrize("stream", [False, True])
async def test_transport_error_carries_no_credential(name: str, stream: bool) -> None:
    provider_cls, route = ROUTES[name]
    async with httpx.AsyncClient(transport=raising(header_error)) as http:
        with pytest.raises(APIConnectionError) as info:
            if stream:
                async for _ in provider_cls().chat_stream(
                    http, route, [{"role": "user", "content": "x"}], {}, timeout=5, num_retries=0
                ):
                    pass
            else:
                await provider_cls().chat(
                    http, route, [{"role": "user", "content": "x"}], {}, timeout=5, num_retries=0
                )
    exc = info.value
    assert "LocalProtocolError" in str(exc)
    assert isinstance(exc.__cause__, httpx.LocalProtocolError)  # the kind of failure is kept
    assert exc.__context__ is None or exc.__context__ is exc.__cause__
    assert_clean(exc, KEY)


async def test_cause_is_kept_whole_when_it_holds_no_secret() -> None:
    original = httpx.ConnectError("connection refused")
    _, route = ROUTES["openai"]
    async with httpx.AsyncClient(transport=raising(lambda r: original)) as http:
        with pytest.raises(APIConnectionError) as info:
            await OpenAIProvider().chat(http, route, [], {}, timeout=5, num_retries=0)
    assert info.value.__cause__ is original


async def test_status_error_masks_every_credential_header() -> None:
    _, route = ROUTES["openai"]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": f"bad {TOKEN} / {KEY}"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(AuthenticationError) as info:
            await OpenAIProvider().chat(
                http,
                route,
                [],
                {"extra_headers": {"X-Custom-Token": TOKEN, "X-Trace": "visible"}},
                timeout=5,
                num_retries=0,
            )
    exc = info.value
    assert exc.response is not None
    sent = exc.response.request.headers
    assert sent["x-custom-token"] == "***" and sent["authorization"] == "***"
    assert sent["x-trace"] == "visible"
    assert_clean(exc, KEY, TOKEN)


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {TOKEN[:9]}\n{TOKEN[9:]}"}, {"X-Token": f"{TOKEN}\x00"}],
)
async def test_unsendable_header_is_refused_before_io(headers: dict[str, str]) -> None:
    calls = []
    _, route = ROUTES["openai"]

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(ValueError, match="header") as info:
            await OpenAIProvider().chat(
                http, route, [], {"extra_headers": headers}, timeout=5, num_retries=0
            )
    assert calls == []
    assert_clean(info.value, TOKEN)


def test_scrub_kwargs_masks_credentials_and_copies() -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Trace": "t"}
    optional = {"extra_headers": headers, "azure_ad_token": TOKEN, "temperature": 0}
    kwargs = {"model": "m", "api_key": KEY, "optional_params": optional, "extra_headers": headers}
    scrubbed = scrub_kwargs(kwargs)
    assert KEY not in repr(scrubbed) and TOKEN not in repr(scrubbed)
    assert scrubbed["extra_headers"] == {"Authorization": "***", "X-Trace": "t"}
    assert scrubbed["optional_params"]["temperature"] == 0
    # the caller's dicts are untouched: they are what is sent
    assert kwargs["api_key"] == KEY and headers["Authorization"] == f"Bearer {TOKEN}"
    assert optional["azure_ad_token"] == TOKEN
    clean = {"model": "m", "optional_params": {"temperature": 0}}
    assert scrub_kwargs(clean) is clean
