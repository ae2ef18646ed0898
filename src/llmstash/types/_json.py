"""Objects backed by the provider's JSON, for the Responses API and text completion.

A Responses API answer can hold dozens of kinds of output items and stream events, and new ones
appear often. Rather than a type per kind (and a silently dropped field whenever a new one
arrives), these objects keep the JSON exactly as the provider sent it and give it the same
manners as the chat types: attribute access at every level (``r.output[0].content[0].text``),
dict-style access (``r["output"][0]["content"][0]["text"]``), ``model_dump()`` (the JSON as
sent, which ``openai.types.responses.Response.model_validate`` accepts), ``model_dump_json()``,
and equality by content. Fields a type names but the provider left out read as ``None``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import msgspec

__all__ = [
    "JSONObject",
    "ResponsesAPIResponse",
    "ResponsesAPIStreamEvent",
    "TextCompletionResponse",
]


def _wrap(value: Any) -> Any:
    if type(value) is dict:
        return JSONObject(value)
    if type(value) is list:
        return [_wrap(v) for v in value]
    return value


def _copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    if isinstance(value, JSONObject):
        return value.model_dump()
    return value


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


class JSONObject:
    """A JSON object with attribute and dict-style access; nested objects read as
    :class:`JSONObject` too. Setting an attribute or key sets the JSON field."""

    __slots__ = ("__dict__", "_data")

    FIELDS: ClassVar[frozenset[str]] = frozenset()
    """Field names that read as ``None`` when the provider left them out."""

    def __init__(self, data: dict[str, Any] | None = None, /, **fields: Any) -> None:
        object.__setattr__(self, "_data", data if data is not None else {})
        if fields:
            self._data.update({k: _copy(v) for k, v in fields.items()})

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not attributes of the class or instance.
        if name.startswith("__"):
            raise AttributeError(name)
        data = object.__getattribute__(self, "_data")
        try:
            return _wrap(data[name])
        except KeyError:
            if name in type(self).FIELDS:
                return None
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._data[name] = _copy(value)

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = _copy(value)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        # As pydantic models iterate: (name, value) pairs.
        return ((k, _wrap(v)) for k, v in self._data.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JSONObject):
            return type(self) is type(other) and self._data == other._data
        if isinstance(other, dict):
            return bool(self._data == other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def get(self, key: str, default: Any = None) -> Any:
        """``dict.get``: the field's value, or ``default``."""
        value = self._data.get(key)
        return default if value is None else _wrap(value)

    def keys(self) -> list[str]:
        """The field names the provider sent."""
        return list(self._data)

    def model_dump(self, *, exclude_none: bool = False) -> dict[str, Any]:
        """A plain dict: the JSON as the provider sent it (a copy)."""
        out: dict[str, Any] = _copy(self._data)
        return _drop_none(out) if exclude_none else out

    def model_dump_json(self, *, indent: int | None = None) -> str:
        """The object as a JSON string (``indent``: pretty-printed with that many spaces)."""
        data = msgspec.json.encode(self._data)
        if indent is not None:
            data = msgspec.json.format(data, indent=indent)
        return data.decode()

    def json(self) -> dict[str, Any]:
        """LiteLLM's name for ``model_dump()``."""
        return self.model_dump()

    def to_dict(self) -> dict[str, Any]:
        """Alias of ``model_dump()``."""
        return self.model_dump()

    @property
    def _hidden_params(self) -> dict[str, Any]:
        """Per-call bookkeeping (``cache_hit``, ``cache_key``, ...), outside equality."""
        hidden: dict[str, Any] = self.__dict__.setdefault("_llmstash_hidden", {})
        return hidden

    @_hidden_params.setter
    def _hidden_params(self, value: dict[str, Any]) -> None:
        self.__dict__["_llmstash_hidden"] = value


class ResponsesAPIResponse(JSONObject):
    """An OpenAI Responses API answer (``object: "response"``), every field as sent.

    ``output_text`` joins the text of the message items, as the ``openai`` package's
    ``Response.output_text`` does; ``usage`` has ``input_tokens``, ``output_tokens`` and
    ``total_tokens``."""

    __slots__ = ()

    FIELDS = frozenset(
        {
            "id",
            "object",
            "created_at",
            "status",
            "model",
            "output",
            "usage",
            "error",
            "incomplete_details",
            "instructions",
            "metadata",
            "parallel_tool_calls",
            "temperature",
            "tool_choice",
            "tools",
            "top_p",
            "max_output_tokens",
            "previous_response_id",
            "reasoning",
            "store",
            "text",
            "truncation",
            "user",
            "service_tier",
        }
    )

    @property
    def output_text(self) -> str:
        """The text of every ``output_text`` part of the message items, joined."""
        return "".join(
            part.get("text") or ""
            for item in self._data.get("output") or ()
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or ()
            if isinstance(part, dict) and part.get("type") == "output_text"
        )


class ResponsesAPIStreamEvent(JSONObject):
    """One event of a streamed Responses API answer: ``type`` (``"response.created"``,
    ``"response.output_text.delta"``, ..., ``"response.completed"``), ``sequence_number``, and
    the event's own fields (``delta``, ``item``, ``response``, ...), every field as sent."""

    __slots__ = ()

    FIELDS = frozenset(
        {
            "type",
            "sequence_number",
            "response",
            "item",
            "item_id",
            "output_index",
            "content_index",
            "part",
            "delta",
            "text",
            "logprobs",
        }
    )

    @property
    def response(self) -> ResponsesAPIResponse | None:
        """The answer an event carries (``response.created``, ``response.completed``, ...), as
        a :class:`ResponsesAPIResponse`; ``None`` for events without one."""
        value = self._data.get("response")
        return ResponsesAPIResponse(value) if isinstance(value, dict) else value


class TextCompletionResponse(JSONObject):
    """A text completion (``object: "text_completion"``) or one streamed chunk of it:
    ``choices[i].text``, ``finish_reason``, ``logprobs``; ``usage`` with ``prompt_tokens``,
    ``completion_tokens`` and ``total_tokens``; every field as sent."""

    __slots__ = ()

    FIELDS = frozenset(
        {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
    )
