"""Credentials never leak: not in an exception's text or repr, its chained causes, a formatted
traceback, a log record or callback kwargs, for every provider. Keys with stray whitespace
(secret files end with a newline) are stripped; keys with inner control characters are refused
before any I/O.

Real HTTP against the fake provider; each failure mode is provoked for real (a server that
echoes the key back in its error, a refused connection, an unsendable header).
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

import llmstash
from llmstash.exceptions import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    InternalServerError,
    InvalidRequestError,
)
from llmstash.integrations.custom_logger import CustomLogger
from llmstash.testing import FakeProvider

MESSAGES = [{"role": "user", "content": "hello there"}]

# Not sk- shaped (Azure keys are 32 hex digits): only redaction of the key itself catches it.
AZURE_KEY = "0123456789abcdef0123456789abcdef"
OPENAI_KEY = "sk-proj-Zq8TvN2wXyLmK4pRs7UvB1cD"
ANTHROPIC_KEY = "sk-ant-api03-Qw9ErTy7UiOp3AsDf"
COMPAT_KEY = "local-secret-Hj5Kl7Mn9Pq2Rs4T"
AD_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOi.eyJhdWQiOiJjb2duaXRpdmUi.SflKxwRJSMeKKF2QT4fwpM"
HEADER_TOKEN = "hdr-token-Vb3Nm5Qw7Er9Ty1U"

ENV_VARS = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "AZURE_API_KEY",
    "AZURE_API_BASE",
    "AZURE_API_VERSION",
    "AZURE_AD_TOKEN",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_API_BASE",
    "ANTHROPIC_BASE_URL",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def pieces(secret: str) -> list[str]:
    """The secret, stripped, and long pieces of it: a leak of half a key is still a leak."""
    core = secret.strip()
    found = [core, core[:12], core[-12:]]
    found += [p for p in core.replace("\r", "\n").replace("\t", "\n").split("\n") if len(p) >= 8]
    return found


def exception_texts(exc: BaseException) -> Iterator[str]:
    """Every text an exception shows: str, repr and args of it and of its chain, and the
    formatted traceback."""
    yield "".join(traceback.format_exception(exc))
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield str(item)
        yield repr(item)
        yield repr(item.args)
        response = getattr(item, "response", None)
        if response is not None:
            yield repr(dict(response.request.headers))
        todo += [item.__cause__, item.__context__]


def assert_clean(secret: str, texts: Any) -> None:
    for text in texts:
        for piece in pieces(secret):
            assert piece not in text, f"{piece!r} leaked in {text[:300]!r}"


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    handler = logging.Formatter()
    return [handler.format(r) for r in caplog.records] + [caplog.text]


def call_kwargs(provider: FakeProvider, name: str, key: str) -> tuple[str, dict[str, Any]]:
    """Model and keyword arguments for a call to the fake as ``name`` with ``key``."""
    if name == "openai":
        return "gpt-4o-mini", {"api_base": provider.openai_base, "api_key": key}
    if name == "azure":
        return "azure/chat-deploy", {"api_base": provider.azure_base, "api_key": key}
    if name == "anthropic":
        return "anthropic/claude-3-5-haiku", {"api_base": provider.anthropic_base, "api_key": key}
    return "my-local-model", {"api_base": provider.openai_base, "api_key": key}


KEYS = {
    "openai": OPENAI_KEY,
    "azure": AZURE_KEY,
    "anthropic": ANTHROPIC_KEY,
    "compatible": COMPAT_KEY,
}
SENT_HEADER = {
    "openai": ("authorization", "Bearer {}"),
    "azure": ("api-key", "{}"),
    "anthropic": ("x-api-key", "{}"),
    "compatible": ("authorization", "Bearer {}"),
}


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\t\n"])
@pytest.mark.parametrize("name", sorted(KEYS))
async def test_key_with_surrounding_whitespace_is_stripped(
    llm: None, provider: FakeProvider, name: str, suffix: str
) -> None:
    key = KEYS[name]
    model, kwargs = call_kwargs(provider, name, " " + key + suffix)
    response = await llmstash.acompletion(model=model, messages=MESSAGES, **kwargs)
    assert response.choices[0].message.content
    header, form = SENT_HEADER[name]
    assert provider.requests[-1].headers[header] == form.format(key)


@pytest.mark.parametrize(
    ("name", "env"),
    [
        ("openai", "OPENAI_API_KEY"),
        ("azure", "AZURE_API_KEY"),
        ("anthropic", "ANTHROPIC_API_KEY"),
    ],
)
async def test_key_from_environment_is_stripped(
    llm: None, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, name: str, env: str
) -> None:
    key = KEYS[name]
    monkeypatch.setenv(env, key + "\n")
    model, kwargs = call_kwargs(provider, name, key)
    del kwargs["api_key"]
    await llmstash.acompletion(model=model, messages=MESSAGES, **kwargs)
    header, form = SENT_HEADER[name]
    assert provider.requests[-1].headers[header] == form.format(key)


@pytest.mark.parametrize("inner", ["\n", "\r", "\x00", "\x7f", "é"])
@pytest.mark.parametrize("name", sorted(KEYS))
async def test_key_with_inner_control_character_is_refused_before_io(
    llm: None, provider: FakeProvider, caplog: pytest.LogCaptureFixture, name: str, inner: str
) -> None:
    caplog.set_level(logging.DEBUG)
    key = KEYS[name][:14] + inner + KEYS[name][14:]
    model, kwargs = call_kwargs(provider, name, key)
    with pytest.raises(InvalidRequestError, match="api_key") as info:
        await llmstash.acompletion(model=model, messages=MESSAGES, **kwargs)
    assert provider.request_count == 0
    assert_clean(key, exception_texts(info.value))
    assert_clean(key, log_texts(caplog))


@pytest.mark.parametrize("name", sorted(KEYS))
async def test_key_echoed_by_the_server_is_not_in_the_error(
    llm: None, provider: FakeProvider, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.DEBUG)
    key = KEYS[name]
    body = {"error": {"message": f"Incorrect API key provided: {key}. Or {key!r}, {key[:20]}…"}}
    provider.fail_next(status=401, body=body)
    model, kwargs = call_kwargs(provider, name, key + "\n")
    with pytest.raises(AuthenticationError) as info:
        await llmstash.acompletion(model=model, messages=MESSAGES, num_retries=0, **kwargs)
    logging.getLogger("app").exception("call failed", exc_info=info.value)
    assert_clean(key, exception_texts(info.value))
    assert_clean(key, log_texts(caplog))


@pytest.mark.parametrize("name", sorted(KEYS))
async def test_no_key_after_a_refused_connection(
    llm: None, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = KEYS[name]
    bases = {
        "openai": f"http://127.0.0.1:{port}/v1",
        "azure": f"http://127.0.0.1:{port}",
        "anthropic": f"http://127.0.0.1:{port}",
        "compatible": f"http://127.0.0.1:{port}/v1",
    }
    model, kwargs = call_kwargs(Nowhere(bases[name]), name, key)  # type: ignore[arg-type]
    with pytest.raises(APIConnectionError) as info:
        await llmstash.acompletion(model=model, messages=MESSAGES, num_retries=0, **kwargs)
    logging.getLogger("app").exception("call failed", exc_info=info.value)
    assert_clean(key, exception_texts(info.value))
    assert_clean(key, log_texts(caplog))


class Nowhere:
    """Base URLs of a server that is not there."""

    def __init__(self, base: str) -> None:
        self.openai_base = self.azure_base = self.anthropic_base = base


@pytest.mark.parametrize("name", sorted(KEYS))
@pytest.mark.parametrize("header", ["Authorization", "X-Custom-Token"])
async def test_unsendable_header_token_is_not_in_the_error(
    llm: None, provider: FakeProvider, caplog: pytest.LogCaptureFixture, name: str, header: str
) -> None:
    """A token with an inner newline passed in ``extra_headers``: httpx's own error spells the
    header value as bytes (``b'Bearer ...\\n...'``); it must reach nobody."""
    caplog.set_level(logging.DEBUG)
    key = KEYS[name]
    token = HEADER_TOKEN[:10] + "\n" + HEADER_TOKEN[10:]
    model, kwargs = call_kwargs(provider, name, key)
    with pytest.raises((InvalidRequestError, APIError)) as info:
        await llmstash.acompletion(
            model=model,
            messages=MESSAGES,
            num_retries=0,
            extra_headers={header: f"Bearer {token}"},
            **kwargs,
        )
    logging.getLogger("app").exception("call failed", exc_info=info.value)
    assert provider.request_count == 0
    for secret in (token, key):
        assert_clean(secret, exception_texts(info.value))
        assert_clean(secret, log_texts(caplog))


async def test_header_tokens_are_not_in_errors_or_callback_kwargs(
    llm: None, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """``headers={"Authorization": "Bearer ..."}`` (LiteLLM's name) to an OpenAI-compatible
    server that echoes it: not in the error, the logs or any hook's kwargs."""
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    class Recorder(CustomLogger):
        async def async_log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
            seen.append(repr(kwargs))

        async def async_log_failure_event(self, kwargs: Any, *args: Any) -> None:
            seen.append(repr(kwargs))
            seen.extend(exception_texts(kwargs["exception"]))

        async def async_log_success_event(self, kwargs: Any, *args: Any) -> None:
            seen.append(repr(kwargs))

    llmstash.callbacks = [Recorder()]
    provider.fail_next(status=500, body={"error": {"message": f"bad token Bearer {HEADER_TOKEN}"}})
    with pytest.raises(InternalServerError) as info:
        await llmstash.acompletion(
            model="my-local-model",
            messages=MESSAGES,
            api_base=provider.openai_base,
            headers={"Authorization": f"Bearer {HEADER_TOKEN}", "X-Api-Key": COMPAT_KEY},
            num_retries=0,
        )
    await llmstash.acompletion(
        model="my-local-model",
        messages=MESSAGES,
        api_base=provider.openai_base,
        headers={"Authorization": f"Bearer {HEADER_TOKEN}", "X-Api-Key": COMPAT_KEY},
    )
    await llmstash.aflush_callbacks()
    assert provider.requests[-1].headers["authorization"] == f"Bearer {HEADER_TOKEN}"
    assert len(seen) >= 5
    for secret in (HEADER_TOKEN, COMPAT_KEY):
        assert_clean(secret, exception_texts(info.value))
        assert_clean(secret, seen)
        assert_clean(secret, log_texts(caplog))


async def test_azure_ad_token_from_environment_never_leaks(
    llm: None,
    provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AZURE_AD_TOKEN", AD_TOKEN + "\n")
    provider.fail_next(status=401, body={"error": {"message": f"token {AD_TOKEN} expired"}})
    with pytest.raises(AuthenticationError) as info:
        await llmstash.acompletion(
            model="azure/chat-deploy",
            messages=MESSAGES,
            api_base=provider.azure_base,
            num_retries=0,
        )
    sent = provider.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {AD_TOKEN}"
    assert AD_TOKEN.encode() not in sent.body
    logging.getLogger("app").exception("call failed", exc_info=info.value)
    assert_clean(AD_TOKEN, exception_texts(info.value))
    assert_clean(AD_TOKEN, log_texts(caplog))
