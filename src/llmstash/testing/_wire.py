"""What the fake provider says, in each provider's wire format: pure functions, no I/O.

A chat request becomes an :class:`Answer` (the reply text, or one tool call), which is then
rendered as an OpenAI/Azure body, an Anthropic body, or either provider's stream of SSE events.
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
from collections.abc import Iterator, Mapping
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


class InvalidRequest(Exception):
    """A request the real provider would refuse: the status and message of its error body."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param


@dataclasses.dataclass(frozen=True)
class Answer:
    """What to say to one chat request, before it is put in a provider's format."""

    model: str
    prompt_tokens: int
    text: str = ""
    tool_name: str | None = None
    tool_query: str = ""

    @property
    def tool_arguments(self) -> str:
        """The tool call's arguments as the JSON string OpenAI sends."""
        return json.dumps({"query": self.tool_query}, ensure_ascii=False)

    @property
    def completion_tokens(self) -> int:
        """Words in the reply (the tool arguments, for a tool call)."""
        return words(self.tool_arguments if self.tool_name else self.text)


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
    tool = _chosen_tool(body, names) if messages[-1]["role"] == "user" else None
    if tool is not None:
        return Answer(model, prompt_tokens, tool_name=tool, tool_query=question)
    text = reply if reply is not None else "Echo: " + question
    return Answer(model, prompt_tokens, text=text)


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
    asks = last["role"] == "user" and not _is_tool_result(last)
    tool = _chosen_tool(body, names) if asks else None
    if tool is not None:
        return Answer(model, prompt_tokens, tool_name=tool, tool_query=question)
    text = reply if reply is not None else "Echo: " + question
    return Answer(model, prompt_tokens, text=text)


def _openai_usage(answer: Answer) -> dict[str, int]:
    completion = answer.completion_tokens
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": answer.prompt_tokens + completion,
    }


def openai_chat(answer: Answer) -> bytes:
    """A ``chat.completion`` body."""
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
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": "stop" if answer.tool_name is None else "tool_calls",
    }
    return _encode(
        {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": answer.model,
            "choices": [choice],
            "usage": _openai_usage(answer),
            "system_fingerprint": _FINGERPRINT,
        }
    )


def openai_chat_stream(answer: Answer, *, include_usage: bool) -> Iterator[bytes]:
    """The SSE events of a streamed ``chat.completion.chunk`` sequence, ``[DONE]`` last."""
    head = {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": answer.model,
        "system_fingerprint": _FINGERPRINT,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data: dict[str, Any] = {**head, "choices": [choice]}
        if include_usage:
            data["usage"] = None
        return b"data: " + _encode(data) + b"\n\n"

    if answer.tool_name is None:
        yield chunk({"role": "assistant", "content": ""})
        for piece in pieces(answer.text):
            yield chunk({"content": piece})
        yield chunk({}, "stop")
    else:
        call = {
            "index": 0,
            "id": "call_" + uuid.uuid4().hex,
            "type": "function",
            "function": {"name": answer.tool_name, "arguments": ""},
        }
        yield chunk({"role": "assistant", "content": None, "tool_calls": [call]})
        for piece in pieces(answer.tool_arguments):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls")
    if include_usage:
        yield b"data: " + _encode({**head, "choices": [], "usage": _openai_usage(answer)}) + b"\n\n"
    yield b"data: [DONE]\n\n"


def anthropic_message(answer: Answer) -> bytes:
    """A Messages API ``message`` body."""
    if answer.tool_name is None:
        content: dict[str, Any] = {"type": "text", "text": answer.text}
    else:
        content = {
            "type": "tool_use",
            "id": "toolu_" + uuid.uuid4().hex,
            "name": answer.tool_name,
            "input": {"query": answer.tool_query},
        }
    return _encode(
        {
            "id": "msg_" + uuid.uuid4().hex,
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": [content],
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


def anthropic_stream(answer: Answer) -> Iterator[bytes]:
    """The SSE events of a streamed Messages API answer, ``message_stop`` last."""
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
    if answer.tool_name is None:
        block: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces(answer.text)]
    else:
        block = {
            "type": "tool_use",
            "id": "toolu_" + uuid.uuid4().hex,
            "name": answer.tool_name,
            "input": {},
        }
        deltas = [
            {"type": "input_json_delta", "partial_json": piece}
            for piece in pieces(answer.tool_arguments)
        ]
    yield _event("content_block_start", {"index": 0, "content_block": block})
    yield _event("ping", {})
    for delta in deltas:
        yield _event("content_block_delta", {"index": 0, "delta": delta})
    yield _event("content_block_stop", {"index": 0})
    stop_reason = "end_turn" if answer.tool_name is None else "tool_use"
    yield _event(
        "message_delta",
        {
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": answer.completion_tokens},
        },
    )
    yield _event("message_stop", {})


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
