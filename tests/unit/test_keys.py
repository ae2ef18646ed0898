"""Cache keys: golden values, canonical form, and what does (not) change them."""

from __future__ import annotations

import pytest

from llmstash.caching import Cache
from llmstash.caching._keys import canonical_json, make_key
from llmstash.types import Message

MSGS = [{"role": "user", "content": "hi"}]

# Pinned keys: if one changes, cached entries written by an earlier release stop hitting.
# Change them only together with KEY_VERSION.
GOLDEN = [
    (
        {"model": "gpt-4o-mini", "messages": MSGS},
        None,
        "llmstash:v2:63c79dc424921f8c470d13eb9d3230e9bd005cf624ae0d23a696cf9258781bbb",
    ),
    (
        {"model": "gpt-4o-mini", "messages": MSGS, "temperature": 0.2},
        None,
        "llmstash:v2:97903e35e8a3f3963358551983e63ec919e18da3ad78a9103d7107155dd557aa",
    ),
    (
        {"model": "gpt-4o-mini", "messages": MSGS},
        "tenant-a",
        "tenant-a:llmstash:v2:63c79dc424921f8c470d13eb9d3230e9bd005cf624ae0d23a696cf9258781bbb",
    ),
    (
        {"model": "text-embedding-3-small", "input": "hello"},
        None,
        "llmstash:v2:ff53faed76e557b0acf213646c100979db81dcecb9f425bb4fd6f6e6b14a7647",
    ),
]


@pytest.mark.parametrize(("kwargs", "namespace", "expected"), GOLDEN)
def test_golden_keys(kwargs, namespace, expected):
    assert make_key(kwargs, namespace) == expected


def test_key_shape():
    key = make_key({"model": "m", "messages": MSGS})
    prefix, version, digest = key.rsplit(":", 2)
    assert prefix == "llmstash" and version == "v2" and len(digest) == 64
    assert make_key({"model": "m", "messages": MSGS}, "ns").startswith("ns:llmstash:v2:")


def test_dict_order_does_not_matter():
    a = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 1}
    b = {"temperature": 1, "messages": [{"content": "x", "role": "user"}], "model": "m"}
    assert make_key(a) == make_key(b)


@pytest.mark.parametrize(
    "extra",
    [
        {"api_key": "sk-secret-one"},
        {"timeout": 3},
        {"num_retries": 5},
        {"stream": True},
        {"stream_options": {"include_usage": True}},
        {"metadata": {"user": "x"}},
        {"caching": True},
        {"cache": {"no-store": True}},
        {"ttl": 10},
        {"mock_response": "hello"},
        {"temperature": None},
    ],
)
def test_what_does_not_change_the_key(extra):
    base = {"model": "m", "messages": MSGS}
    assert make_key({**base, **extra}) == make_key(base)


@pytest.mark.parametrize(
    "extra",
    [
        {"temperature": 0.5},
        {"seed": 1},
        {"max_tokens": 10},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"response_format": {"type": "json_object"}},
        {"reasoning_effort": "high"},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"top_k": 3},  # provider-specific parameters count too
        {"api_base": "http://other-server/v1"},  # the same model name on another server
        {"model": "other"},
        {"messages": [{"role": "user", "content": "hi!"}]},
    ],
)
def test_what_changes_the_key(extra):
    base = {"model": "m", "messages": MSGS}
    assert make_key({**base, **extra}) != make_key(base)


def test_api_key_never_in_key():
    key = make_key({"model": "m", "messages": MSGS, "api_key": "sk-abcdefgh12345"})
    assert "sk-" not in key


def test_message_objects_key_like_dicts():
    as_obj = [Message(content="hi", role="user")]
    from llmstash.types import to_builtins

    as_dict = [to_builtins(as_obj[0])]
    assert make_key({"model": "m", "messages": as_dict}) == make_key(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )


def test_canonical_json_sorts_and_keeps_nested_none():
    assert canonical_json({"b": 1, "a": {"d": None, "c": 2}}) == b'{"a":{"c":2,"d":null},"b":1}'


def test_nested_none_in_a_parameter_is_part_of_the_key():
    schema = {"type": "object", "properties": {"x": {"type": "string", "default": None}}}
    bare = {"type": "object", "properties": {"x": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    fmt_bare = {"type": "json_schema", "json_schema": {"name": "s", "schema": bare}}
    assert make_key({"model": "m", "messages": MSGS, "response_format": fmt}) != make_key(
        {"model": "m", "messages": MSGS, "response_format": fmt_bare}
    )


def test_message_keys_set_to_none_count_as_absent():
    with_none = [{"role": "user", "content": "hi", "tool_calls": None, "name": None}]
    assert make_key({"model": "m", "messages": with_none}) == make_key(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )


def test_headers_are_part_of_the_key_except_credentials_and_tracing():
    base = {"model": "m", "messages": MSGS}
    plain = make_key(base)
    tenant_a = make_key({**base, "extra_headers": {"X-Tenant": "a"}})
    tenant_b = make_key({**base, "extra_headers": {"X-Tenant": "b"}})
    assert len({plain, tenant_a, tenant_b}) == 3
    assert make_key({**base, "extra_headers": {"x-tenant": "a"}}) == tenant_a  # case of names
    assert make_key({**base, "headers": {"X-Tenant": "a"}}) == tenant_a  # LiteLLM's headers=
    assert make_key({**base, "organization": "org-1"}) != plain
    beta = make_key({**base, "extra_headers": {"anthropic-beta": "x-2025"}})
    assert beta != plain
    noise = {
        "traceparent": "00-abc-def-01",
        "Authorization": "Bearer sk-1",
        "api-key": "k",
        "x-api-key": "k",
        "User-Agent": "me/1.0",
        "x-request-id": "r1",
    }
    assert make_key({**base, "extra_headers": noise}) == plain
    assert make_key({**base, "extra_headers": {**noise, "X-Tenant": "a"}}) == tenant_a


def test_unusual_values_do_not_break_the_key():
    class Schema:
        @classmethod
        def model_json_schema(cls):
            return {"type": "object"}

    key = make_key({"model": "m", "messages": MSGS, "response_format": Schema})
    assert key == make_key({"model": "m", "messages": MSGS, "response_format": Schema})


def test_cache_get_cache_key_uses_namespace_and_can_be_replaced():
    cache = Cache(namespace="team")
    assert cache.get_cache_key(model="m", messages=MSGS).startswith("team:llmstash:v2:")
    per_call = cache.get_cache_key(model="m", messages=MSGS, cache={"namespace": "other"})
    assert per_call.startswith("other:llmstash:v2:")
    seen: list[dict] = []

    def mine(*args, **kwargs):
        seen.append(kwargs)
        return "mine"

    cache.get_cache_key = mine  # type: ignore[method-assign]
    # The cache's own key paths go through the replacement, with the call's arguments.
    assert cache.chat_cache_key("m", MSGS, {"temperature": 0.5}, None) == "mine"
    assert seen[-1]["model"] == "m" and seen[-1]["messages"] == MSGS
    assert seen[-1]["temperature"] == 0.5
    assert cache.input_cache_keys(["x"], model="e") == ["mine"]
    assert seen[-1]["input"] == "x" and seen[-1]["model"] == "e"
    # (acompletion using it end to end: tests/integration/test_contract_gaps.py)


def test_batched_input_keys_match_single_keys():
    from llmstash.caching._keys import make_input_keys

    params = {"model": "text-embedding-3-small", "dimensions": 256, "api_key": "sk-x"}
    inputs = ["a", "b", [1, 2, 3]]
    batch = make_input_keys(params, inputs, "ns")
    assert batch == [make_key({**params, "input": x}, "ns") for x in inputs]
    assert len(set(batch)) == 3


def test_replaced_key_function_is_used_for_every_input():
    cache = Cache()
    cache.get_cache_key = lambda *a, **kw: f"k-{kw['input']}"  # type: ignore[method-assign]
    assert cache.input_cache_keys(["x", "y"], model="m") == ["k-x", "k-y"]


def test_non_string_dict_keys_key_as_json_sends_them():
    as_ints = make_key({"model": "m", "messages": MSGS, "logit_bias": {50256: -100, 11: 5}})
    as_strs = make_key({"model": "m", "messages": MSGS, "logit_bias": {"11": 5, "50256": -100}})
    assert as_ints == as_strs


def test_a_pydantic_model_class_anywhere_in_the_parameters_keys():
    class Schema:
        @classmethod
        def model_json_schema(cls):
            return {"type": "object"}

        def model_dump(self):  # an instance method: a class must not be dumped as a model
            return {"instance": True}

    fields = {"model": "m", "messages": MSGS, "extra_body": {"guided_json": Schema}}
    assert make_key(fields) == make_key(dict(fields))


def test_headers_override_extra_headers_as_the_call_sends_them():
    base = {"model": "m", "messages": MSGS}
    both = make_key({**base, "extra_headers": {"X-T": "a"}, "headers": {"X-T": "b"}})
    assert both == make_key({**base, "extra_headers": {"X-T": "b"}})
