"""Streams and whole responses, turned into each other. Pure functions, no I/O.

A streamed miss is stored as its chunks; a plain call served from that entry needs the
assembled :class:`ModelResponse` (:func:`assemble_chunks`), and a streamed call served from a
plain entry needs chunks (:func:`response_to_chunks`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .types import (
    ChatCompletionDeltaToolCall,
    ChatCompletionMessageToolCall,
    Choices,
    Delta,
    Function,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
    Usage,
)

__all__ = ["assemble_chunks", "response_to_chunks"]


class _ToolCallParts:
    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []


class _ChoiceParts:
    __slots__ = (
        "content",
        "finish_reason",
        "function_args",
        "function_name",
        "reasoning",
        "refusal",
        "role",
        "saw_content",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: list[str] = []
        self.saw_content = False
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, _ToolCallParts] = {}
        self.function_name: str | None = None
        self.function_args: list[str] | None = None
        self.finish_reason: str | None = None

    def add(self, choice: StreamingChoices) -> None:
        delta = choice.delta
        if delta.role:
            self.role = delta.role
        if delta.content is not None:
            self.saw_content = True
            if delta.content:
                self.content.append(delta.content)
        if delta.reasoning_content:
            self.reasoning.append(delta.reasoning_content)
        if delta.refusal:
            self.refusal.append(delta.refusal)
        if delta.tool_calls:
            for frag in delta.tool_calls:
                call = self.tool_calls.get(frag.index)
                if call is None:
                    call = self.tool_calls[frag.index] = _ToolCallParts()
                if frag.id:
                    call.id = frag.id
                if frag.type:
                    call.type = frag.type
                if frag.function is not None:
                    if frag.function.name:
                        call.name = frag.function.name
                    if frag.function.arguments:
                        call.arguments.append(frag.function.arguments)
        if delta.function_call is not None:
            if delta.function_call.name:
                self.function_name = delta.function_call.name
            if self.function_args is None:
                self.function_args = []
            if delta.function_call.arguments:
                self.function_args.append(delta.function_call.arguments)
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason

    def message(self) -> Message:
        tool_calls = [
            ChatCompletionMessageToolCall(
                id=call.id or "",
                type=call.type or "function",
                function=Function(name=call.name, arguments="".join(call.arguments)),
            )
            for _, call in sorted(self.tool_calls.items())
        ] or None
        text = "".join(self.content)
        if not text and (tool_calls or not self.saw_content):
            content = None
        else:
            content = text
        return Message(
            content=content,
            role=self.role,
            tool_calls=tool_calls,
            function_call=(
                Function(name=self.function_name, arguments="".join(self.function_args))
                if self.function_args is not None
                else None
            ),
            refusal="".join(self.refusal) or None,
            reasoning_content="".join(self.reasoning) or None,
        )


def assemble_chunks(chunks: Sequence[ModelResponseStream]) -> ModelResponse:
    """The :class:`ModelResponse` a stream adds up to.

    Per choice index: content, reasoning and refusal text concatenated; tool-call fragments
    merged by their ``index`` (id, name, then the argument pieces in order); the last
    ``finish_reason`` seen. ``usage`` comes from the last chunk that carries it; ``id``,
    ``model``, ``created`` and ``system_fingerprint`` from the first chunk that has them (Azure
    may open with an empty content-filter chunk). Streams carry no thinking signatures, logprobs
    or annotations, so those are not restored. Raises ``ValueError`` for an empty sequence.
    """
    if not chunks:
        raise ValueError("cannot assemble a response from zero chunks")
    first = chunks[0]
    resp_id, model, created, fingerprint = first.id, first.model, first.created, None
    usage: Usage | None = None
    parts: dict[int, _ChoiceParts] = {}
    for chunk in chunks:
        if not resp_id and chunk.id:
            resp_id = chunk.id
        if not model and chunk.model:
            model = chunk.model
        if not created and chunk.created:
            created = chunk.created
        if fingerprint is None and chunk.system_fingerprint:
            fingerprint = chunk.system_fingerprint
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            acc = parts.get(choice.index)
            if acc is None:
                acc = parts[choice.index] = _ChoiceParts()
            acc.add(choice)
    choices = [
        Choices(index=index, message=acc.message(), finish_reason=acc.finish_reason)
        for index, acc in sorted(parts.items())
    ]
    return ModelResponse(
        id=resp_id,
        choices=choices,
        created=created,
        model=model,
        usage=usage,
        system_fingerprint=fingerprint,
        service_tier=first.service_tier,
    )


def response_to_chunks(resp: ModelResponse) -> list[ModelResponseStream]:
    """A whole response replayed as a stream that :func:`assemble_chunks` turns back into it.

    For each choice: a role chunk (``content=""`` when the message has content, as OpenAI
    opens its streams), a reasoning chunk, one content chunk, a refusal chunk, one chunk per
    tool call (id, name and all arguments), then a finish chunk; ``usage`` rides on the very last
    chunk. What a stream cannot carry (thinking blocks, annotations, logprobs) is left out, and
    ``content=""`` beside tool calls comes back as ``None``.
    """

    def chunk(index: int, delta: Delta, finish_reason: str | None = None) -> ModelResponseStream:
        return _chunk(
            resp, [StreamingChoices(index=index, delta=delta, finish_reason=finish_reason)]
        )

    out: list[ModelResponseStream] = []
    for choice in resp.choices:
        msg = choice.message
        i = choice.index
        out.append(chunk(i, Delta(role=msg.role, content="" if msg.content is not None else None)))
        if msg.reasoning_content:
            out.append(chunk(i, Delta(reasoning_content=msg.reasoning_content)))
        if msg.content:
            out.append(chunk(i, Delta(content=msg.content)))
        if msg.refusal:
            out.append(chunk(i, Delta(refusal=msg.refusal)))
        if msg.function_call is not None:
            out.append(chunk(i, Delta(function_call=msg.function_call)))
        for n, call in enumerate(msg.tool_calls or ()):
            frag = ChatCompletionDeltaToolCall(
                index=n,
                id=call.id,
                type=call.type,
                function=Function(name=call.function.name, arguments=call.function.arguments),
            )
            out.append(chunk(i, Delta(tool_calls=[frag])))
        out.append(chunk(i, Delta(), choice.finish_reason))
    if not out:
        out.append(_chunk(resp, []))
    out[-1].usage = resp.usage
    return out


def _chunk(resp: ModelResponse, choices: list[StreamingChoices]) -> ModelResponseStream:
    return ModelResponseStream(
        id=resp.id,
        choices=choices,
        created=resp.created,
        model=resp.model,
        system_fingerprint=resp.system_fingerprint,
        service_tier=resp.service_tier,
    )
