"""The fake provider serves the OpenAI format where the compatible providers do, and can go
without a key as a local server does."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from llmstash.testing import FakeProvider

AUTH = {"authorization": "Bearer sk-test"}
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def http():
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.mark.parametrize(
    "base", ["/v1", "", "/openai/v1", "/api/v1", "/inference/v1", "/v1beta/openai"]
)
def test_every_family_base_serves_chat_and_embeddings(http, provider: FakeProvider, base):
    chat = http.post(f"{provider.url}{base}/chat/completions", json=BODY, headers=AUTH)
    assert chat.status_code == 200
    assert chat.json()["choices"][0]["message"]["content"] == "Echo: hi"
    emb = http.post(
        f"{provider.url}{base}/embeddings", json={"model": "e", "input": ["a"]}, headers=AUTH
    )
    assert emb.status_code == 200
    assert len(emb.json()["data"]) == 1
    assert http.post(f"{provider.url}{base}/chat/completions", json=BODY).status_code == 401


def test_an_unknown_base_is_a_404(http, provider: FakeProvider):
    r = http.post(f"{provider.url}/nope/v1/chat/completions", json=BODY, headers=AUTH)
    assert r.status_code == 404


def test_require_auth_off_and_reset_restores_it(http, provider: FakeProvider):
    url = provider.openai_base + "/chat/completions"
    provider.require_auth = False
    assert http.post(url, json=BODY).status_code == 200
    provider.reset()
    assert provider.require_auth is True
    assert http.post(url, json=BODY).status_code == 401
    with FakeProvider(require_auth=False) as local:
        assert http.post(local.openai_base + "/chat/completions", json=BODY).status_code == 200
        local.reset()
        assert local.require_auth is False
        # Azure and Anthropic routes keep checking their credentials
        anthropic = {**BODY, "max_tokens": 10}
        r = http.post(
            local.url + "/v1/messages", json=anthropic, headers={"anthropic-version": "x"}
        )
        assert r.status_code == 401


def test_command_line_no_auth(http):
    command = [sys.executable, "-m", "llmstash.testing", "--port", "0", "--no-auth"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        try:
            url = process.stdout.readline().strip()
            assert http.post(url + "/v1/chat/completions", json=BODY).status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
