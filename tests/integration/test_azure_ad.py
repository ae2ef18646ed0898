"""Azure OpenAI with Azure AD (Entra ID) tokens and the v1 API, over real HTTP against the fake
provider.

A token (given, from ``AZURE_AD_TOKEN`` or from a provider called for every request) is sent as
``Authorization: Bearer`` with no ``api-key`` header and never in the body; a real
``*.openai.azure.com`` base with only a token is not refused. ``api_version="v1"``/``"preview"``
use the ``/openai/v1/...`` routes with the deployment as the body's ``model``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import pytest

import llmstash
from llmstash.exceptions import InvalidRequestError
from llmstash.integrations.custom_logger import CustomLogger
from llmstash.providers import AzureProvider, resolve
from llmstash.testing import FakeProvider

MESSAGES = [{"role": "user", "content": "what is a cache?"}]
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJjb2duaXRpdmUifQ.c2lnbmF0dXJl"
KEY = "0123456789abcdef0123456789abcdef"
AZURE_HOST = "https://my-resource.openai.azure.com"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_API_KEY", "AZURE_API_BASE", "AZURE_API_VERSION", "AZURE_AD_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def sent_json(provider: FakeProvider, index: int = -1) -> dict[str, Any]:
    data: dict[str, Any] = provider.requests[index].json
    return data


async def test_token_is_a_bearer_header_not_an_api_key_nor_in_the_body(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    azure, route = resolve("azure/my-gpt", api_base=provider.azure_base, azure_ad_token=TOKEN)
    assert isinstance(azure, AzureProvider)
    assert TOKEN not in repr(route)
    response = await azure.chat(http, route, MESSAGES, {}, timeout=10, num_retries=0)
    assert response.choices[0].message.content == "Echo: what is a cache?"
    (request,) = provider.requests
    assert request.path == "/openai/deployments/my-gpt/chat/completions"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "api-key" not in request.headers
    assert TOKEN.encode() not in request.body


async def test_token_in_params_never_reaches_the_body(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    """Until a caller routes ``azure_ad_token=`` to :func:`resolve`, it may still sit among the
    parameters: the adapter drops it from the body rather than send it to the server."""
    azure, route = resolve("azure/my-gpt", api_base=provider.azure_base, azure_ad_token=TOKEN)
    params = {"azure_ad_token": TOKEN, "azure_ad_token_provider": lambda: TOKEN, "seed": 1}
    await azure.chat(http, route, MESSAGES, params, timeout=10, num_retries=0)
    assert sent_json(provider) == {"model": "my-gpt", "messages": MESSAGES, "seed": 1}


@pytest.mark.parametrize(
    "credential",
    [
        {"azure_ad_token": TOKEN},
        {"azure_ad_token_provider": lambda: TOKEN},
        {"env": TOKEN},
    ],
    ids=["token", "provider", "env"],
)
def test_real_azure_host_with_only_a_token_is_not_refused(
    monkeypatch: pytest.MonkeyPatch, credential: dict[str, Any]
) -> None:
    if "env" in credential:
        monkeypatch.setenv("AZURE_AD_TOKEN", credential.pop("env") + "\n")
    _, route = resolve("azure/my-gpt", api_base=AZURE_HOST, **credential)
    assert route.api_key is None
    assert route.azure_ad_token == TOKEN or route.azure_ad_token_provider is not None


def test_real_azure_host_with_no_credential_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="azure_ad_token"):
        resolve("azure/my-gpt", api_base=AZURE_HOST)


def test_one_credential_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    # An explicit key wins over an explicit token; explicit arguments win over the environment.
    _, route = resolve("azure/d", api_base=AZURE_HOST, api_key=KEY, azure_ad_token=TOKEN)
    assert (route.api_key, route.azure_ad_token) == (KEY, None)
    monkeypatch.setenv("AZURE_API_KEY", "env-key-0123456789")
    _, route = resolve("azure/d", api_base=AZURE_HOST, azure_ad_token=TOKEN)
    assert (route.api_key, route.azure_ad_token) == (None, TOKEN)
    _, route = resolve("azure/d", api_base=AZURE_HOST, azure_ad_token_provider=lambda: TOKEN)
    assert route.api_key is None and route.azure_ad_token_provider is not None
    monkeypatch.setenv("AZURE_AD_TOKEN", TOKEN)
    _, route = resolve("azure/d", api_base=AZURE_HOST)
    assert (route.api_key, route.azure_ad_token) == ("env-key-0123456789", None)
    monkeypatch.delenv("AZURE_API_KEY")
    _, route = resolve("azure/d", api_base=AZURE_HOST)
    assert (route.api_key, route.azure_ad_token) == (None, TOKEN)


def test_provider_that_is_not_callable_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="azure_ad_token_provider"):
        resolve("azure/d", api_base=AZURE_HOST, azure_ad_token_provider=TOKEN)  # type: ignore[arg-type]


class Tokens:
    """A token provider handing out a new token on every call, as a refreshing credential."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"{TOKEN}-{self.calls}"


async def test_sync_provider_is_called_for_every_request(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    tokens = Tokens()
    azure, route = resolve(
        "azure/my-gpt", api_base=provider.azure_base, azure_ad_token_provider=tokens
    )
    await azure.chat(http, route, MESSAGES, {}, timeout=10, num_retries=0)
    await azure.chat(http, route, MESSAGES, {}, timeout=10, num_retries=0)
    stream = azure.chat_stream(http, route, MESSAGES, {}, timeout=10, num_retries=0)
    assert [c async for c in stream]
    _, embed_route = resolve(
        "azure/emb", api_base=provider.azure_base, azure_ad_token_provider=tokens,
        call_type="embedding",
    )  # fmt: skip
    await azure.embed(http, embed_route, ["a", "b"], {}, timeout=10, num_retries=0)
    assert tokens.calls == 4
    seen = [r.headers["authorization"] for r in provider.requests]
    assert seen == [f"Bearer {TOKEN}-{n}" for n in range(1, 5)]
    assert all("api-key" not in r.headers for r in provider.requests)


async def test_async_provider_and_a_fresh_token_per_retry(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        return f"{TOKEN}-async-{calls}\n"  # stripped like any credential

    azure, route = resolve(
        "azure/my-gpt", api_base=provider.azure_base, azure_ad_token_provider=fetch
    )
    provider.fail_next(status=503)
    from llmstash.providers.azure import AzureProvider as Azure

    async def no_sleep(delay: float) -> None:
        return None

    await Azure(sleep=no_sleep).chat(http, route, MESSAGES, {}, timeout=10, num_retries=1)
    assert [r.headers["authorization"] for r in provider.requests] == [
        f"Bearer {TOKEN}-async-1",
        f"Bearer {TOKEN}-async-2",
    ]
    assert azure.name == "azure"


@pytest.mark.parametrize("bad", [None, "", "  \n", "tok\nen-0123456789", 42])
async def test_bad_token_from_the_provider_is_refused_before_io(
    provider: FakeProvider, http: httpx.AsyncClient, bad: Any
) -> None:
    azure, route = resolve(
        "azure/my-gpt", api_base=provider.azure_base, azure_ad_token_provider=lambda: bad
    )
    with pytest.raises(InvalidRequestError, match="azure_ad_token_provider") as info:
        await azure.chat(http, route, MESSAGES, {}, timeout=10, num_retries=0)
    assert provider.request_count == 0
    if isinstance(bad, str) and bad.strip():
        assert "0123456789" not in str(info.value)


async def test_env_token_through_acompletion(
    llm: None, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_AD_TOKEN", TOKEN + "\n")
    response = await llmstash.acompletion(
        model="azure/my-gpt", messages=MESSAGES, api_base=provider.azure_base
    )
    assert response.choices[0].message.content == "Echo: what is a cache?"
    request = provider.requests[-1]
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "api-key" not in request.headers
    assert TOKEN.encode() not in request.body


@pytest.mark.parametrize("kind", ["token", "provider"])
async def test_token_arguments_through_acompletion(
    llm: None, provider: FakeProvider, kind: str
) -> None:
    tokens = Tokens()
    credential: dict[str, Any] = (
        {"azure_ad_token": TOKEN} if kind == "token" else {"azure_ad_token_provider": tokens}
    )
    seen: list[str] = []

    class Recorder(CustomLogger):
        async def async_log_success_event(self, kwargs: Any, *args: Any) -> None:
            seen.append(repr(kwargs))

    llmstash.callbacks = [Recorder()]
    for _ in range(2):
        await llmstash.acompletion(
            model="azure/my-gpt", messages=MESSAGES, api_base=provider.azure_base, **credential
        )
    await llmstash.aflush_callbacks()
    sent = [r.headers["authorization"] for r in provider.requests]
    if kind == "token":
        assert sent == [f"Bearer {TOKEN}"] * 2
    else:
        assert sent == [f"Bearer {TOKEN}-1", f"Bearer {TOKEN}-2"]
    for request in provider.requests:
        assert "api-key" not in request.headers
        assert TOKEN.encode() not in request.body
    assert len(seen) == 2
    assert all(TOKEN[:20] not in text for text in seen)


# The v1 API ---------------------------------------------------------------------------------


class Capture:
    """A narrow stand-in for the server: records the request, answers OpenAI-shaped JSON."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/embeddings"):
            return httpx.Response(
                200, json={"data": [{"embedding": [0.5], "index": 0}], "model": "m"}
            )
        return httpx.Response(
            200,
            json={
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "hi"},
                     "finish_reason": "stop"}
                ],
            },
        )  # fmt: skip


@pytest.mark.parametrize(
    ("version", "query"), [("v1", ""), ("V1", ""), ("preview", "api-version=preview")]
)
@pytest.mark.parametrize("endpoint", ["chat/completions", "embeddings"])
async def test_v1_routes(version: str, query: str, endpoint: str) -> None:
    capture = Capture()
    call_type: Literal["chat", "embedding"] = "embedding" if endpoint == "embeddings" else "chat"
    azure, route = resolve(
        "azure/my-deploy", api_base=AZURE_HOST + "/", api_version=version,
        azure_ad_token=TOKEN, call_type=call_type,
    )  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.MockTransport(capture)) as http:
        if call_type == "chat":
            await azure.chat(http, route, MESSAGES, {}, timeout=10, num_retries=0)
        else:
            await azure.embed(http, route, ["x"], {}, timeout=10, num_retries=0)
    (request,) = capture.requests
    assert f"{request.url.scheme}://{request.url.host}{request.url.path}" == (
        f"{AZURE_HOST}/openai/v1/{endpoint}"
    )
    assert request.url.query.decode() == query
    assert json.loads(request.content)["model"] == "my-deploy"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_v1_base_url_from_azure_docs_selects_v1() -> None:
    """Azure's docs give the openai client ``base_url=https://<res>.openai.azure.com/openai/v1/``;
    as ``api_base`` it means the v1 API on that resource."""
    _, route = resolve("azure/d", api_base=f"{AZURE_HOST}/openai/v1/", api_key=KEY)
    assert (route.api_base, route.api_version) == (AZURE_HOST, "v1")
    _, route = resolve("azure/d", api_base=f"{AZURE_HOST}/openai/v1", api_key=KEY,
                       api_version="preview")  # fmt: skip
    assert (route.api_base, route.api_version) == (AZURE_HOST, "preview")
    _, route = resolve("azure/d", api_base=f"{AZURE_HOST}/openai", api_key=KEY)
    assert route.api_base == AZURE_HOST
    url = AzureProvider().url(route, "chat/completions")
    assert url == f"{AZURE_HOST}/openai/deployments/d/chat/completions"


@pytest.mark.parametrize("version", ["v1", "preview"])
async def test_v1_against_the_fake(llm: None, provider: FakeProvider, version: str) -> None:
    response = await llmstash.acompletion(
        model="azure/my-deploy",
        messages=MESSAGES,
        api_base=provider.azure_base,
        api_version=version,
        api_key=KEY,
        num_retries=0,
    )
    assert response.choices[0].message.content == "Echo: what is a cache?"
    request = provider.requests[-1]
    assert request.path == "/openai/v1/chat/completions"
    assert request.query == ({} if version == "v1" else {"api-version": "preview"})
    assert request.json["model"] == "my-deploy"
