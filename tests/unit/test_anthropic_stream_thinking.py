"""Anthropic streams keep thinking blocks whole: the chunk convention for thinking text,
signatures and redacted thinking, and thinking blocks sent back on the next turn."""

from __future__ import annotations

import json
from typing import Any

from openai.types.chat import ChatCompletionChunk

from llmstash.providers import Route
from llmstash.providers._sse import ServerSentEvent
from llmstash.providers.anthropic import StreamParser, messages_body, parse_messages_response
from llmstash.types import ModelResponseStream

ROUTE = Route(
    provider="anthropic",
    model="anthropic/claude-x",
    upstream_model="claude-x",
    api_base="http://an.test",
    api_key="sk-ant-thinking-SECRET",
)
START = {
    "type": "message_start",
    "message": {
        "id": "msg_t",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 7, "output_tokens": 1},
    },
}


def ev(kind: str, **data: Any) -> dict[str, Any]:
    return {"type": kind, **data}


def start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return ev("content_block_start", index=index, content_block=block)


def delta(index: int, **data: Any) -> dict[str, Any]:
    return ev("content_block_delta", index=index, delta=data)


def thinking(index: int, *texts: str, signature: str) -> list[dict[str, Any]]:
    return [
        start(index, {"type": "thinking", "thinking": ""}),
        *(delta(index, type="thinking_delta", thinking=text) for text in texts),
        delta(index, type="signature_delta", signature=signature),
        ev("content_block_stop", index=index),
    ]


def text(index: int, *texts: str) -> list[dict[str, Any]]:
    return [
        start(index, {"type": "text", "text": ""}),
        *(delta(index, type="text_delta", text=t) for t in texts),
        ev("content_block_stop", index=index),
    ]


def end(stop_reason: str = "end_turn") -> list[dict[str, Any]]:
    return [
        ev("message_delta", delta={"stop_reason": stop_reason}, usage={"output_tokens": 9}),
        ev("message_stop"),
    ]


def run(events: list[dict[str, Any]]) -> list[ModelResponseStream]:
    parse = StreamParser(ROUTE)
    out: list[ModelResponseStream] = []
    for event in events:
        items = parse(ServerSentEvent(event=event["type"], data=json.dumps(event)))
        if items is None:
            break
        out.extend(items)
    return out


def fold_thinking(chunks: list[ModelResponseStream]) -> list[dict[str, Any]]:
    """The thinking blocks a stream adds up to, by the convention: thinking text appends to the
    open thinking block (opening one if none), a signature closes it, a redacted block stands
    alone."""
    blocks: list[dict[str, Any]] = []
    open_block: dict[str, Any] | None = None
    for chunk in chunks:
        for item in chunk.choices[0].delta.thinking_blocks or ():
            if item["type"] == "redacted_thinking":
                blocks.append(dict(item))
                open_block = None
                continue
            if open_block is None:
                open_block = {"type": "thinking", "thinking": ""}
                blocks.append(open_block)
            open_block["thinking"] += item["thinking"]
            if "signature" in item:
                open_block["signature"] = item["signature"]
                open_block = None
    return blocks


def test_each_thinking_delta_carries_its_text_twice() -> None:
    chunks = run([START, *thinking(0, "Let me ", "think.", signature="sig-A"), *end()])
    deltas = [c.choices[0].delta for c in chunks]
    assert deltas[1].reasoning_content == "Let me "
    assert deltas[1].thinking_blocks == [{"type": "thinking", "thinking": "Let me "}]
    assert deltas[2].reasoning_content == "think."
    assert deltas[2].thinking_blocks == [{"type": "thinking", "thinking": "think."}]
    assert deltas[1].content is None and deltas[2].content is None


def test_a_signature_delta_closes_the_block() -> None:
    chunks = run([START, *thinking(0, "hm", signature="EqQBCgIYAhIM"), *end()])
    signed = chunks[2].choices[0].delta
    assert signed.thinking_blocks == [
        {"type": "thinking", "thinking": "", "signature": "EqQBCgIYAhIM"}
    ]
    assert signed.reasoning_content is None
    assert signed.content is None
    # block start and stop add no chunk: role, one thinking delta, the signature, the finish
    assert len(chunks) == 4


def test_a_redacted_block_comes_whole_from_its_start() -> None:
    events = [
        START,
        start(0, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}),
        ev("content_block_stop", index=0),
        *text(1, "Hi"),
        *end(),
    ]
    chunks = run(events)
    redacted = chunks[1].choices[0].delta
    assert redacted.thinking_blocks == [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}
    ]
    assert redacted.reasoning_content is None
    assert chunks[2].choices[0].delta.content == "Hi"


def test_empty_thinking_deltas_and_block_starts_give_no_chunks() -> None:
    events = [
        START,
        start(0, {"type": "thinking", "thinking": ""}),
        delta(0, type="thinking_delta", thinking=""),
        delta(0, type="signature_delta", signature="s"),
        ev("content_block_stop", index=0),
        *end(),
    ]
    chunks = run(events)
    assert [c.choices[0].delta.thinking_blocks for c in chunks] == [
        None,
        [{"type": "thinking", "thinking": "", "signature": "s"}],
        None,
    ]


def test_the_stream_folds_to_the_thinking_blocks_of_the_plain_answer() -> None:
    """Two thinking blocks (interleaved thinking), a redacted one, text and a tool call."""
    events = [
        START,
        *thinking(0, "First ", "thought.", signature="sig-1"),
        start(1, {"type": "redacted_thinking", "data": "opaque=="}),
        ev("content_block_stop", index=1),
        *text(2, "Checking."),
        *thinking(3, "Second ", "thought.", signature="sig-2"),
        start(4, {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}),
        delta(4, type="input_json_delta", partial_json='{"city": "Paris"}'),
        ev("content_block_stop", index=4),
        *end("tool_use"),
    ]
    chunks = run(events)
    plain = parse_messages_response(
        json.dumps(
            {
                "id": "msg_t",
                "model": "claude-x",
                "content": [
                    {"type": "thinking", "thinking": "First thought.", "signature": "sig-1"},
                    {"type": "redacted_thinking", "data": "opaque=="},
                    {"type": "text", "text": "Checking."},
                    {"type": "thinking", "thinking": "Second thought.", "signature": "sig-2"},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 7, "output_tokens": 9},
            }
        ).encode(),
        ROUTE,
    )
    message = plain.choices[0].message
    assert fold_thinking(chunks) == message.thinking_blocks
    reasoning = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks)
    assert reasoning == message.reasoning_content == "First thought.Second thought."


def test_thinking_chunks_are_valid_openai_chunks() -> None:
    events = [
        START,
        *thinking(0, "hm", signature="sig"),
        start(1, {"type": "redacted_thinking", "data": "x"}),
        ev("content_block_stop", index=1),
        *end(),
    ]
    for chunk in run(events):
        dumped = chunk.model_dump()
        validated = ChatCompletionChunk.model_validate(dumped)
        assert validated.id == "msg_t"
        assert dumped["choices"][0]["delta"].get("thinking_blocks") == (
            chunk.choices[0].delta.thinking_blocks
        )


def test_thinking_blocks_go_back_first_on_the_next_turn() -> None:
    """The assistant turn that called a tool goes back with its thinking blocks (signatures
    intact, redacted data included) before its text and tool_use, as thinking with tools
    requires."""
    blocks = [
        {"type": "thinking", "thinking": "I should look it up.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque=="},
    ]
    call = {
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
    }
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "I should look it up.",
            "thinking_blocks": blocks,
            "tool_calls": [call],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
    ]
    params = {
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"type": "function", "function": {"name": "weather"}}],
    }
    body = messages_body(ROUTE, messages, params, stream=False)
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            *blocks,
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
    }
    assert body["messages"][2]["content"][0]["type"] == "tool_result"
    assert "reasoning_content" not in json.dumps(body)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
