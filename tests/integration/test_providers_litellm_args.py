"""LiteLLM call arguments that are not provider parameters reach the right place."""

from __future__ import annotations

import llmstash

MSGS = [{"role": "user", "content": "hi"}]


async def test_base_url_headers_and_sdk_only_arguments(provider, llm):
    r = await llmstash.acompletion(
        model="openai/gpt-4o-mini",
        messages=MSGS,
        base_url=provider.openai_base,  # LiteLLM's alias of api_base
        api_key="sk-test",
        headers={"X-Trace": "abc"},
        organization="org-1",
        drop_params=True,
        fallbacks=["gpt-4o"],
        metadata={"user": "u1"},
    )
    assert r.choices[0].message.content == "Echo: hi"
    sent = provider.requests[-1]
    assert sent.headers["x-trace"] == "abc"
    assert sent.headers["openai-organization"] == "org-1"
    for local in ("drop_params", "fallbacks", "metadata", "headers", "organization", "base_url"):
        assert local not in sent.json


async def test_pydantic_response_format_is_sent_as_a_json_schema(provider, llm):
    class Answer:
        @classmethod
        def model_json_schema(cls):
            return {"type": "object", "properties": {"a": {"type": "string"}}}

    await llmstash.acompletion(
        model="gpt-4o-mini",
        messages=MSGS,
        api_base=provider.openai_base,
        api_key="sk-t",
        response_format=Answer,
    )
    fmt = provider.requests[-1].json["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Answer"
    assert fmt["json_schema"]["schema"]["properties"]["a"] == {"type": "string"}
