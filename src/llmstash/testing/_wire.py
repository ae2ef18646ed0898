"""What the fake provider says, in each provider's wire format: pure functions, no I/O.

A chat request becomes an :class:`Answer` (the reply text, or one tool call; Anthropic thinking;
OpenAI logprobs), which is then rendered as an OpenAI/Azure body, an Anthropic body, or either
provider's stream of SSE events. :class:`ExtraFields` adds vendor fields to OpenAI-format answers.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import struct
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any

import msgspec

_encode = msgspec.json.encode
_PIECE = re.compile(r"\s*\S+|\s+")
_FINGERPRINT = "fp_llmstash_fake"
_OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
REDACTED_THINKING_TRIGGER = (
    "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_"
    "46C9A13E193C177646C7398A98432ECCCE4C1253D5E2D82641AC0E52CC2876CB"
)
"""A user message containing this string, with thinking on, gets a ``redacted_thinking`` block
too (the string Anthropic documents for testing redacted thinking)."""
_MIN_THINKING_BUDGET = 1024
_MAX_TOP_LOGPROBS = 20
_MODEL_CREATED = 1700000000
_MODEL_CREATED_AT = "2025-01-01T00:00:00Z"


class InvalidRequest(Exception):
    """A request the real provider would refuse: the status and message of its error body."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param


@dataclasses.dataclass(frozen=True)
class Answer:
    """What to say to one chat request, before it is put in a provider's format.

    ``thinking`` is the Anthropic thinking text (``None``: no thinking block) and
    ``redacted_thinking`` the data of a ``redacted_thinking`` block after it. ``top_logprobs``
    is ``None`` unless the OpenAI request asked for ``logprobs``; then it is the number of
    alternatives per token.
    """

    model: str
    prompt_tokens: int
    text: str = ""
    tool_name: str | None = None
    tool_query: str = ""
    thinking: str | None = None
    redacted_thinking: str | None = None
    top_logprobs: int | None = None

    @property
    def tool_arguments(self) -> str:
        """The tool call's arguments as the JSON string OpenAI sends."""
        return json.dumps({"query": self.tool_query}, ensure_ascii=False)

    @property
    def completion_tokens(self) -> int:
        """Words in the reply (the tool arguments, for a tool call) and in the thinking."""
        said = words(self.tool_arguments if self.tool_name else self.text)
        return said + words(self.thinking or "")

    @property
    def thinking_signature(self) -> str:
        """The ``signature`` of the thinking block (see :func:`thinking_signature`)."""
        return thinking_signature(self.thinking or "")


@dataclasses.dataclass(frozen=True)
class ExtraFields:
    """Vendor fields added to OpenAI-format chat answers, as set by
    :meth:`FakeProvider.set_extra_fields`: ``response`` at the top level (on every chunk of a
    stream), ``message`` in ``choices[i].message`` and ``usage`` in ``usage``."""

    response: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    message: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    usage: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def thinking_signature(thinking: str) -> str:
    """The deterministic ``signature`` the fake gives a thinking block with this text, and
    checks when the block is sent back."""
    digest = hashlib.sha256(b"llmstash-fake-thinking\0" + thinking.encode()).digest()
    return base64.b64encode(digest).decode()


def _redacted_data(question: str) -> str:
    digest = hashlib.sha256(b"llmstash-fake-redacted\0" + question.encode()).digest()
    return base64.b64encode(digest).decode()


def thinking_text(question: str) -> str:
    """The fake model's thinking before it answers ``question``."""
    return f"The user asks: {question} I will answer briefly."


def words(text: str) -> int:
    """The fake tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def pieces(text: str) -> list[str]:
    """Split ``text`` into word-sized stream deltas that join back to exactly ``text``."""
    return _PIECE.findall(text)


def reason_phrase(status: int) -> str:
    """The reason phrase of an HTTP status line."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else "Error"


def openai_error(status: int, message: str, *, param: str | None = None) -> bytes:
    """An error body in OpenAI's format (Azure OpenAI uses the same shape)."""
    if status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", {401: "invalid_api_key", 404: "not_found"}.get(status)
    error = {"message": message, "type": kind, "param": param, "code": code}
    return _encode({"error": error})


def anthropic_error(status: int, message: str) -> bytes:
    """An error body in Anthropic's format."""
    default = "api_error" if status >= 500 else "invalid_request_error"
    kind = _ANTHROPIC_ERROR_TYPES.get(status, default)
    return _encode({"type": "error", "error": {"type": kind, "message": message}})


def _text(content: Any) -> str:
    """The text of a message's content: a string, or a list of text (or tool_result) parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "tool_result":
            texts.append(_text(part.get("content")))
    return " ".join(texts)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _is_tool_result(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") == "tool_result" for part in content
    )


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest("Each message must be an object with a 'role'.", param="messages")
    return messages


def _chosen_tool(body: Mapping[str, Any], names: list[str]) -> str | None:
    """The tool the fake model calls: the one named by ``tool_choice``, else the first."""
    choice = body.get("tool_choice")
    if not names or choice == "none":
        return None
    if isinstance(choice, dict):
        if choice.get("type") == "none":
            return None
        function = choice.get("function")
        named = function.get("name") if isinstance(function, dict) else choice.get("name")
        if isinstance(named, str):
            return named
    return names[0]


def openai_answer(body: Mapping[str, Any], *, model: str | None, reply: str | None) -> Answer:
    """Validate an OpenAI chat request and decide the answer.

    ``model`` is the Azure deployment (which names the model); for OpenAI it is ``None`` and the
    body must name one. ``reply`` is the fixed reply text set by the test, if any.
    """
    if model is None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("you must provide a model parameter", param="model")
    messages = _messages(body)
    for message in messages:
        if message["role"] not in _OPENAI_ROLES:
            raise InvalidRequest(f"Invalid role {message['role']!r}.", param="messages")
    prompt_tokens = sum(words(_text(message.get("content"))) for message in messages)
    question = _last_user_text(messages)
    tools = body.get("tools")
    names = [
        tool["function"]["name"]
        for tool in tools or ()
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]
    top_logprobs = _top_logprobs(body)
    tool = _chosen_tool(body, names) if messages[-1]["role"] == "user" else None
    if tool is not None:
        return Answer(
            model, prompt_tokens, tool_name=tool, tool_query=question, top_logprobs=top_logprobs
        )
    text = reply if reply is not None else "Echo: " + question
    return Answer(model, prompt_tokens, text=text, top_logprobs=top_logprobs)


def _top_logprobs(body: Mapping[str, Any]) -> int | None:
    """``None`` unless the request asks for ``logprobs``; then the alternatives per token."""
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise InvalidRequest("Invalid type for 'logprobs': expected a boolean.", param="logprobs")
    top = body.get("top_logprobs")
    if top is None:
        return 0 if logprobs else None
    if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= _MAX_TOP_LOGPROBS:
        raise InvalidRequest(
            f"Invalid 'top_logprobs': must be an integer from 0 to {_MAX_TOP_LOGPROBS}.",
            param="top_logprobs",
        )
    if not logprobs:
        raise InvalidRequest(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
            "'top_logprobs' is used.",
            param="top_logprobs",
        )
    return top


def _thinking_on(body: Mapping[str, Any], max_tokens: int) -> bool:
    """Whether the Anthropic request turns thinking on; refuses what the real API refuses."""
    thinking = body.get("thinking")
    if thinking is None:
        return False
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise InvalidRequest(
            "thinking: Input tag does not match any of the expected tags: 'enabled', "
            "'disabled', 'adaptive'"
        )
    if kind == "disabled":
        return False
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise InvalidRequest("thinking.enabled.budget_tokens: Field required")
        if budget < _MIN_THINKING_BUDGET:
            raise InvalidRequest(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to "
                f"{_MIN_THINKING_BUDGET}"
            )
        if max_tokens <= budget:
            raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`.")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        raise InvalidRequest("Thinking may not be enabled when tool_choice forces tool use.")
    return True


def _check_thinking_history(messages: list[dict[str, Any]], thinking_on: bool) -> None:
    """Refuse thinking blocks that come back altered (their signature no longer matches), and,
    with thinking on, a tool result whose assistant turn does not start with thinking."""
    for i, message in enumerate(messages):
        content = message.get("content")
        if message["role"] != "assistant" or not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") != "thinking":
                continue
            text, signature = block.get("thinking"), block.get("signature")
            if not isinstance(text, str) or signature != thinking_signature(text):
                raise InvalidRequest(
                    f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                )
    if not thinking_on or not _is_tool_result(messages[-1]):
        return
    for i in range(len(messages) - 2, -1, -1):
        if messages[i]["role"] != "assistant":
            continue
        content = messages[i].get("content")
        first = content[0] if isinstance(content, list) and content else None
        found = first.get("type") if isinstance(first, dict) else "text"
        if found not in ("thinking", "redacted_thinking"):
            raise InvalidRequest(
                f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, "
                f"but found `{found}`. When `thinking` is enabled, a final `assistant` message "
                "must start with a thinking block (preceding the lastmost set of `tool_use` and "
                "`tool_result` blocks). We recommend you include thinking blocks from previous "
                "turns. To avoid this requirement, disable `thinking`."
            )
        return


def anthropic_answer(body: Mapping[str, Any], *, reply: str | None) -> Answer:
    """Validate an Anthropic Messages request and decide the answer."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise InvalidRequest("max_tokens: Field required")
    messages = _messages(body)
    for message in messages:
        if message["role"] == "system":
            raise InvalidRequest(
                'messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if message["role"] not in ("user", "assistant"):
            raise InvalidRequest(
                f"messages: Input tag {message['role']!r} found using 'role' does not match any "
                "of the expected tags: 'user', 'assistant'"
            )
    prompt_tokens = words(_text(body.get("system"))) + sum(
        words(_text(message.get("content"))) for message in messages
    )
    question = _last_user_text(messages)
    last = messages[-1]
    names = [
        tool["name"]
        for tool in body.get("tools") or ()
        if isinstance(tool, dict) and isinstance(tool.get("name"), str)
    ]
    thinking_on = _thinking_on(body, max_tokens)
    _check_thinking_history(messages, thinking_on)
    asks = last["role"] == "user" and not _is_tool_result(last)
    thinking = redacted = None
    if thinking_on and asks:  # a turn thinks once, at its start, not after a tool result
        thinking = thinking_text(question)
        if REDACTED_THINKING_TRIGGER in question:
            redacted = _redacted_data(question)
    tool = _chosen_tool(body, names) if asks else None
    if tool is not None:
        return Answer(
            model,
            prompt_tokens,
            tool_name=tool,
            tool_query=question,
            thinking=thinking,
            redacted_thinking=redacted,
        )
    text = reply if reply is not None else "Echo: " + question
    return Answer(model, prompt_tokens, text=text, thinking=thinking, redacted_thinking=redacted)


def _openai_usage(answer: Answer, extras: ExtraFields | None) -> dict[str, Any]:
    completion = answer.completion_tokens
    usage: dict[str, Any] = {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": answer.prompt_tokens + completion,
    }
    if extras is not None:
        usage.update(extras.usage)
    return usage


def _logprob(token: str, position: int) -> float:
    """A deterministic log probability in (-1, 0] for the token at ``position``."""
    seed = hashlib.shake_256(f"{position}:{token}".encode()).digest(2)
    return -round(int.from_bytes(seed, "little") / 65536, 6)


def token_logprobs(text: str, top: int) -> list[dict[str, Any]]:
    """The ``logprobs.content`` entries of ``text``: one per token (the stream pieces), each
    with ``top`` alternatives in ``top_logprobs`` (the token itself first, then ``token~1``,
    ``token~2``, ... one unit of log probability apart)."""
    entries = []
    for position, token in enumerate(pieces(text)):
        logprob = _logprob(token, position)
        alternatives = [token] + [f"{token}~{k}" for k in range(1, top)]
        entries.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": alt, "logprob": round(logprob - k, 6), "bytes": list(alt.encode())}
                    for k, alt in enumerate(alternatives[:top])
                ],
            }
        )
    return entries


def _choice_logprobs(answer: Answer) -> dict[str, Any] | None:
    if answer.top_logprobs is None or answer.tool_name is not None:
        return None
    return {"content": token_logprobs(answer.text, answer.top_logprobs), "refusal": None}


def openai_chat(answer: Answer, extras: ExtraFields | None = None) -> bytes:
    """A ``chat.completion`` body, with ``extras`` added where they belong."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
    if answer.tool_name is not None:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": "call_" + uuid.uuid4().hex,
                "type": "function",
                "function": {"name": answer.tool_name, "arguments": answer.tool_arguments},
            }
        ]
    if extras is not None:
        message.update(extras.message)
    choice = {
        "index": 0,
        "message": message,
        "logprobs": _choice_logprobs(answer),
        "finish_reason": "stop" if answer.tool_name is None else "tool_calls",
    }
    body: dict[str, Any] = {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model,
        "choices": [choice],
        "usage": _openai_usage(answer, extras),
        "system_fingerprint": _FINGERPRINT,
    }
    if extras is not None:
        body.update(extras.response)
    return _encode(body)


_STREAMED_REASONING = ("reasoning_content", "reasoning")


def _extra_deltas(extras: ExtraFields | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The deltas that stream the message extras: word pieces of the text-valued reasoning
    fields (one delta carrying every field that has the same text, as vLLM sends both), and
    one delta with every other field whole."""
    if extras is None:
        return [], {}
    reasoning: dict[str, list[str]] = {}
    whole: dict[str, Any] = {}
    for key, value in extras.message.items():
        if key in _STREAMED_REASONING and isinstance(value, str):
            reasoning.setdefault(value, []).append(key)
        else:
            whole[key] = value
    deltas = [
        dict.fromkeys(keys, piece) for text, keys in reasoning.items() for piece in pieces(text)
    ]
    return deltas, whole


def openai_chat_stream(
    answer: Answer, *, include_usage: bool, extras: ExtraFields | None = None
) -> Iterator[bytes]:
    """The SSE events of a streamed ``chat.completion.chunk`` sequence, ``[DONE]`` last.

    With ``include_usage`` every chunk has ``"usage": null`` and a last chunk with no choices
    carries the usage, as OpenAI does; without it no chunk has a ``usage`` key. With logprobs
    asked, the role chunk carries ``{"content": [], "refusal": null}`` and each content chunk
    the entry of its token. ``extras.response`` rides on every chunk; the message extras are
    streamed by :func:`_extra_deltas` before the content (reasoning) and after it (the rest).
    """
    head: dict[str, Any] = {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": answer.model,
        "system_fingerprint": _FINGERPRINT,
    }
    tail = dict(extras.response) if extras is not None else {}

    def chunk(
        delta: dict[str, Any], finish_reason: str | None = None, logprobs: Any = None
    ) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        data: dict[str, Any] = {**head, "choices": [choice]}
        if include_usage:
            data["usage"] = None
        data.update(tail)
        return b"data: " + _encode(data) + b"\n\n"

    reasoning, whole = _extra_deltas(extras)
    if answer.tool_name is None:
        entries = None
        if answer.top_logprobs is not None:
            entries = token_logprobs(answer.text, answer.top_logprobs)
        opening: dict[str, Any] | None = None
        if entries is not None:
            opening = {"content": [], "refusal": None}
        yield chunk({"role": "assistant", "content": ""}, logprobs=opening)
        for delta in reasoning:
            yield chunk(delta)
        for position, piece in enumerate(pieces(answer.text)):
            logprobs = None
            if entries is not None:
                logprobs = {"content": [entries[position]], "refusal": None}
            yield chunk({"content": piece}, logprobs=logprobs)
        if whole:
            yield chunk(whole)
        yield chunk({}, "stop")
    else:
        call = {
            "index": 0,
            "id": "call_" + uuid.uuid4().hex,
            "type": "function",
            "function": {"name": answer.tool_name, "arguments": ""},
        }
        if reasoning:
            yield chunk({"role": "assistant", "content": None})
            for delta in reasoning:
                yield chunk(delta)
            yield chunk({"tool_calls": [call]})
        else:
            yield chunk({"role": "assistant", "content": None, "tool_calls": [call]})
        for piece in pieces(answer.tool_arguments):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        if whole:
            yield chunk(whole)
        yield chunk({}, "tool_calls")
    if include_usage:
        usage = {**head, "choices": [], "usage": _openai_usage(answer, extras), **tail}
        yield b"data: " + _encode(usage) + b"\n\n"
    yield b"data: [DONE]\n\n"


def _anthropic_blocks(answer: Answer) -> list[dict[str, Any]]:
    """The content blocks of the answer, whole: thinking, redacted thinking, text or tool use."""
    blocks: list[dict[str, Any]] = []
    if answer.thinking is not None:
        blocks.append(
            {
                "type": "thinking",
                "thinking": answer.thinking,
                "signature": answer.thinking_signature,
            }
        )
    if answer.redacted_thinking is not None:
        blocks.append({"type": "redacted_thinking", "data": answer.redacted_thinking})
    if answer.tool_name is None:
        blocks.append({"type": "text", "text": answer.text})
    else:
        blocks.append(
            {
                "type": "tool_use",
                "id": "toolu_" + uuid.uuid4().hex,
                "name": answer.tool_name,
                "input": {"query": answer.tool_query},
            }
        )
    return blocks


def anthropic_message(answer: Answer) -> bytes:
    """A Messages API ``message`` body."""
    return _encode(
        {
            "id": "msg_" + uuid.uuid4().hex,
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": _anthropic_blocks(answer),
            "stop_reason": "end_turn" if answer.tool_name is None else "tool_use",
            "stop_sequence": None,
            "usage": {
                "input_tokens": answer.prompt_tokens,
                "output_tokens": answer.completion_tokens,
            },
        }
    )


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode({"type": name, **data}) + b"\n\n"


def _block_stream(block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A whole content block as its ``content_block_start`` block and its deltas."""
    kind = block["type"]
    if kind == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces(block["thinking"])]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
        return {"type": "thinking", "thinking": ""}, deltas
    if kind == "text":
        return {"type": "text", "text": ""}, [
            {"type": "text_delta", "text": piece} for piece in pieces(block["text"])
        ]
    if kind == "tool_use":
        arguments = json.dumps(block["input"], ensure_ascii=False)
        return {**block, "input": {}}, [
            {"type": "input_json_delta", "partial_json": piece} for piece in pieces(arguments)
        ]
    return block, []  # redacted_thinking: whole in its start event


def anthropic_stream(answer: Answer) -> Iterator[bytes]:
    """The SSE events of a streamed Messages API answer, ``message_stop`` last.

    Each block is ``content_block_start``, its deltas, ``content_block_stop``: a thinking block
    streams ``thinking_delta`` pieces then one ``signature_delta``; a ``redacted_thinking``
    block comes whole in its start event; one ``ping`` follows the first start.
    """
    message: dict[str, Any] = {
        "id": "msg_" + uuid.uuid4().hex,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": answer.prompt_tokens, "output_tokens": 1},
    }
    yield _event("message_start", {"message": message})
    for index, whole in enumerate(_anthropic_blocks(answer)):
        block, deltas = _block_stream(whole)
        yield _event("content_block_start", {"index": index, "content_block": block})
        if index == 0:
            yield _event("ping", {})
        for delta in deltas:
            yield _event("content_block_delta", {"index": index, "delta": delta})
        yield _event("content_block_stop", {"index": index})
    stop_reason = "end_turn" if answer.tool_name is None else "tool_use"
    yield _event(
        "message_delta",
        {
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": answer.completion_tokens},
        },
    )
    yield _event("message_stop", {})


def _model_ids(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _owner(model: str) -> str:
    return "anthropic" if model.startswith("claude") else "openai"


def openai_model(model: str) -> dict[str, Any]:
    """One model in OpenAI's ``/v1/models`` format."""
    return {"id": model, "object": "model", "created": _MODEL_CREATED, "owned_by": _owner(model)}


def openai_models(ids: Iterable[str]) -> bytes:
    """``GET /v1/models`` in OpenAI's format."""
    return _encode({"object": "list", "data": [openai_model(m) for m in _model_ids(ids)]})


def anthropic_model(model: str) -> dict[str, Any]:
    """One model in Anthropic's ``/v1/models`` format; the display name is the id in words."""
    display = " ".join(word.capitalize() for word in model.split("-"))
    return {
        "type": "model",
        "id": model,
        "display_name": display,
        "created_at": _MODEL_CREATED_AT,
    }


def anthropic_models(ids: Iterable[str], query: Mapping[str, str]) -> bytes:
    """``GET /v1/models`` in Anthropic's paginated format (``limit``, ``after_id``,
    ``before_id``)."""
    models = _model_ids(ids)
    raw_limit = query.get("limit", "20")
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit: Input should be greater than or equal to 1 and at most 1000")
    after, before = query.get("after_id"), query.get("before_id")
    for cursor in (after, before):
        if cursor is not None and cursor not in models:
            raise InvalidRequest(f"model: {cursor}", status=404)
    if before is not None:
        end = models.index(before)
        page = models[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        start = models.index(after) + 1 if after is not None else 0
        page = models[start : start + limit]
        has_more = start + limit < len(models)
    return _encode(
        {
            "data": [anthropic_model(m) for m in page],
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
    )


def embedding_vector(text: str, dim: int) -> list[float]:
    """A deterministic vector for ``text``: ``dim`` multiples of 1/32768 in [-1, 1).

    Such values are exact in float32, so the float and base64 encodings carry the same numbers.
    """
    seed = hashlib.shake_256(text.encode()).digest(2 * dim)
    return [value / 32768 for value in struct.unpack(f"<{dim}h", seed)]


def embeddings(body: Mapping[str, Any], *, model: str | None, default_dim: int) -> bytes:
    """Validate an OpenAI embeddings request and answer it.

    ``model`` is the Azure deployment, or ``None`` for OpenAI (the body names the model).
    """
    if model is None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("you must provide a model parameter", param="model")
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise InvalidRequest(
            "'input' must be a string or a non-empty array of strings.", param="input"
        )
    dim = body.get("dimensions", default_dim)
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise InvalidRequest("'dimensions' must be a positive integer.", param="dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise InvalidRequest(
            "'encoding_format' must be 'float' or 'base64'.", param="encoding_format"
        )
    data = []
    for index, text in enumerate(inputs):
        vector: list[float] | str = embedding_vector(text, dim)
        if encoding == "base64":
            vector = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(words(text) for text in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return _encode({"object": "list", "data": data, "model": model, "usage": usage})
