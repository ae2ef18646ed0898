"""OpenAI-shaped response objects.

They are ``msgspec.Struct`` classes: decoding a cached entry straight from bytes into them takes
about a microsecond, where building a pydantic model from a dict costs tens. They read like
LiteLLM's objects: attribute access, dict-style access at every level (``r["choices"][0]``),
``model_dump()``, and equality by content.

Bookkeeping that is not part of the answer (``_hidden_params``: cache hit, cache key, the
provider used) lives in the instance ``__dict__``, so it takes no part in equality or encoding.
"""

from __future__ import annotations

import array
import base64
import builtins
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, overload

import msgspec

__all__ = [
    "ChatCompletionDeltaToolCall",
    "ChatCompletionMessageToolCall",
    "Choices",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "FloatVector",
    "Function",
    "Message",
    "ModelResponse",
    "ModelResponseStream",
    "StreamingChoices",
    "Usage",
    "decode_json",
    "to_builtins",
]


class FloatVector(Sequence[float]):
    """An embedding vector kept packed (float32 or float64) until it is read.

    Building a Python list of 1,536 floats costs tens of microseconds; most callers hand the
    vector on to a vector store or numpy, which take the packed form for free. A
    ``FloatVector`` is a read-only sequence of floats: indexing, slicing, ``len``, iteration,
    ``==`` against any sequence of floats, ``tolist()`` and ``tobytes()``. ``model_dump()`` turns
    it into a plain list.

    A vector read from the cache is a view of the cached bytes, not a copy.
    """

    __slots__ = ("_arr", "_code")

    def __init__(self, values: Sequence[float] | array.array[float] | memoryview) -> None:
        if isinstance(values, array.array):
            self._arr: array.array[float] | memoryview = values
            self._code: str = values.typecode
        elif isinstance(values, memoryview):
            self._arr = values
            self._code = values.format
        else:
            self._arr = array.array("d", values)
            self._code = "d"

    @classmethod
    def frombytes(cls, data: bytes | memoryview, typecode: str = "f") -> FloatVector:
        """Wrap little-endian packed floats (``"f"``: float32, ``"d"``: float64) without
        copying them. ``ValueError`` if the length is not a whole number of floats."""
        if typecode not in ("f", "d"):
            raise ValueError(f"typecode must be 'f' or 'd', not {typecode!r}")
        if sys.byteorder != "little":  # pragma: no cover - every supported platform is LE
            arr = array.array(typecode)
            arr.frombytes(bytes(data))
            arr.byteswap()
            return cls(arr)
        view = memoryview(data)
        if view.nbytes % (4 if typecode == "f" else 8):
            raise ValueError("packed floats of a length that is not a whole number of floats")
        return cls(view.cast("B").cast("f" if typecode == "f" else "d"))

    @classmethod
    def frombase64(cls, data: str) -> FloatVector:
        """Decode OpenAI's ``encoding_format="base64"`` (packed little-endian float32)."""
        return cls.frombytes(base64.b64decode(data), "f")

    @property
    def typecode(self) -> str:
        """``"f"`` for float32 storage, ``"d"`` for float64."""
        return self._code

    def tobytes(self) -> bytes:
        """The packed little-endian bytes."""
        if sys.byteorder != "little":  # pragma: no cover
            arr = array.array(self._code, self._arr)
            arr.byteswap()
            return arr.tobytes()
        return self._arr.tobytes()

    def tolist(self) -> list[float]:
        """A plain list of Python floats."""
        return self._arr.tolist()  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._arr)

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> list[float]: ...
    def __getitem__(self, index: int | slice) -> float | list[float]:
        if isinstance(index, slice):
            return self._arr[index].tolist()  # type: ignore[return-value]
        return self._arr[index]

    def __iter__(self) -> Iterator[float]:
        return iter(self._arr)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FloatVector):
            return self._arr.tolist() == other._arr.tolist()
        if isinstance(other, (list, tuple, array.array)):
            return self._arr.tolist() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        n = len(self._arr)
        head = ", ".join(f"{v:.6g}" for v in self._arr[:3])
        return f"FloatVector([{head}{', ...' if n > 3 else ''}], len={n})"


_SCALARS = (str, int, float, bool, type(None))


def to_builtins(obj: Any) -> Any:
    """Plain dicts, lists and scalars for any llmstash response object, every field included
    (defaults and ``None`` too, as pydantic's ``model_dump()`` gives them)."""
    if type(obj) in _SCALARS:
        return obj
    if isinstance(obj, _Model):
        out = {
            name: to_builtins(getattr(obj, name))
            for name in obj.__struct_fields__
            if name != "model_extra"
        }
        extra = obj.model_extra
        if extra:
            for name, value in extra.items():
                out.setdefault(name, to_builtins(value))
        return out
    if isinstance(obj, (list, tuple)):
        return [to_builtins(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_builtins(v) for k, v in obj.items()}
    if isinstance(obj, FloatVector):
        return obj.tolist()
    return obj


# omit_defaults: stored bytes leave out fields at their defaults (most are None), a quarter of a
# typical entry; decoding fills them back in. model_dump() still gives every field.
class _Model(msgspec.Struct, dict=True, repr_omit_defaults=True, omit_defaults=True, kw_only=True):
    """Base of every response object: attribute and dict-style access, ``model_dump()``.

    Fields a provider sent that the type does not declare (Perplexity's ``citations``, vLLM's
    ``reasoning``, Azure's ``prompt_filter_results``, ...) are kept in ``model_extra`` (as
    pydantic's ``model_extra`` keeps them), readable as attributes and by key, and present in
    ``model_dump()``; they take part in equality and are stored with cached entries.
    """

    model_extra: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields or attributes.
        extra = self.model_extra
        if extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def _hidden_params(self) -> dict[str, Any]:
        """Per-call bookkeeping (``cache_hit``, ``cache_key``, ...), outside equality."""
        hidden: dict[str, Any] = self.__dict__.setdefault("_llmstash_hidden", {})
        return hidden

    @_hidden_params.setter
    def _hidden_params(self, value: dict[str, Any]) -> None:
        self.__dict__["_llmstash_hidden"] = value

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except (AttributeError, TypeError):
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or key == "model_extra":
            return False
        extra = self.model_extra
        return key in self.__struct_fields__ or (extra is not None and key in extra)

    def get(self, key: str, default: Any = None) -> Any:
        """``dict.get`` for LiteLLM-style code: the field's value, or ``default``."""
        value = getattr(self, key, None) if isinstance(key, str) else None
        return default if value is None else value

    def keys(self) -> tuple[str, ...]:
        """The field names (and any extra fields), as ``dict.keys`` would give them."""
        names = tuple(n for n in self.__struct_fields__ if n != "model_extra")
        extra = self.model_extra
        return names + tuple(k for k in extra if k not in names) if extra else names

    def model_dump(self, *, exclude_none: bool = False) -> dict[str, Any]:
        """A plain dict, accepted by the ``openai`` package's ``model_validate``."""
        out: dict[str, Any] = to_builtins(self)
        return _drop_none(out) if exclude_none else out

    def model_dump_json(self, *, indent: int | None = None, exclude_none: bool = False) -> str:
        """The object as a JSON string (``indent``: pretty-printed with that many spaces, as
        pydantic's ``model_dump_json(indent=...)``; ``exclude_none`` as in ``model_dump``)."""
        data = msgspec.json.encode(self.model_dump(exclude_none=exclude_none))
        if indent is not None:
            data = msgspec.json.format(data, indent=indent)
        return data.decode()

    def json(self) -> dict[str, Any]:
        """LiteLLM's name for ``model_dump()``."""
        return self.model_dump()

    def to_dict(self) -> dict[str, Any]:
        """Alias of ``model_dump()``."""
        return self.model_dump()


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


class Function(_Model):
    """The function a tool call invokes: its name and JSON-encoded arguments."""

    name: str | None = None
    arguments: str = ""


class ChatCompletionMessageToolCall(_Model):
    """A complete tool call in an assistant message."""

    id: str
    function: Function
    type: str = "function"


class Message(_Model):
    """An assistant message: text, tool calls, and (for reasoning models) its reasoning."""

    content: str | None = None
    role: str = "assistant"
    tool_calls: list[ChatCompletionMessageToolCall] | None = None
    function_call: Function | None = None
    refusal: str | None = None
    annotations: list[Any] | None = None
    audio: Any = None
    reasoning_content: str | None = None
    thinking_blocks: list[Any] | None = None


class Choices(_Model):
    """One completion choice."""

    index: int = 0
    message: Message = msgspec.field(default_factory=Message)
    finish_reason: str | None = "stop"
    logprobs: Any = None


class Usage(_Model):
    """Token counts of a call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: Any = None
    completion_tokens_details: Any = None


class ModelResponse(_Model):
    """A chat completion, shaped as OpenAI's ``ChatCompletion``."""

    id: str
    choices: list[Choices]
    created: int
    model: str = ""
    object: str = "chat.completion"
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


class ChatCompletionDeltaToolCall(_Model):
    """A fragment of a tool call in a streamed chunk."""

    index: int = 0
    id: str | None = None
    function: Function | None = None
    type: str | None = None


class Delta(_Model):
    """What one streamed chunk adds to the message."""

    content: str | None = None
    role: str | None = None
    tool_calls: list[ChatCompletionDeltaToolCall] | None = None
    function_call: Function | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    thinking_blocks: list[Any] | None = None


class StreamingChoices(_Model):
    """One choice of a streamed chunk."""

    index: int = 0
    delta: Delta = msgspec.field(default_factory=Delta)
    finish_reason: str | None = None
    logprobs: Any = None


class ModelResponseStream(_Model):
    """A streamed chunk, shaped as OpenAI's ``ChatCompletionChunk``."""

    id: str
    choices: list[StreamingChoices]
    created: int
    model: str = ""
    object: str = "chat.completion.chunk"
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


class Embedding(_Model):
    """One embedding vector and the index of its input.

    ``embedding`` is a :class:`FloatVector`, or a base64 string when the caller asked for
    ``encoding_format="base64"``.
    """

    embedding: Any
    index: int
    object: str = "embedding"


class EmbeddingResponse(_Model):
    """An embeddings result, shaped as OpenAI's ``CreateEmbeddingResponse``."""

    data: list[Embedding]
    model: str
    object: str = "list"
    usage: Usage = msgspec.field(default_factory=Usage)


# Code written for LiteLLM's pydantic objects marks a response after the fact with
# `object.__setattr__(response, "cache_hit", True)` (dspy's cache does). A msgspec Struct's own
# setattr slot makes Python refuse that; giving the top-level response types object's slot
# (after class creation, where msgspec does not put its own back) lets it through. The
# attribute lands in the instance __dict__, outside equality and encoding, like
# _hidden_params. Only these types: they always hold a list, so msgspec always tracks them for
# the garbage collector, and skipping its setattr (which re-tracks an untracked object) costs
# nothing.
for _cls in (ModelResponse, ModelResponseStream, EmbeddingResponse):
    type.__setattr__(_cls, "__setattr__", object.__setattr__)
    type.__setattr__(_cls, "__delattr__", object.__delattr__)
del _cls

_T = TypeVar("_T", bound=_Model)
_TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def decode_json(data: bytes | str, type: builtins.type[_T]) -> _T:
    """Decode a provider's JSON into ``type``, keeping every field it sent.

    Undeclared fields land in ``model_extra`` at every level. Lenient where the official
    ``openai`` client is: a missing ``id`` or ``created`` is filled in (a generated id, the
    current time), null token counts are 0. ``msgspec.ValidationError`` (a body without
    ``choices`` is not an answer) or ``msgspec.DecodeError`` for JSON of another shape.
    """
    raw = msgspec.json.decode(data)
    if not isinstance(raw, dict):
        raise msgspec.ValidationError(f"expected a JSON object, got {builtins.type(raw).__name__}")
    if "created" in type.__struct_fields__:
        if not isinstance(raw.get("id"), str):
            raw["id"] = f"chatcmpl-{uuid.uuid4().hex}"
        if not isinstance(raw.get("created"), int):
            raw["created"] = int(time.time())
        if raw.get("model") is None:
            raw.pop("model", None)
        if not isinstance(raw.get("choices"), list):
            # An error body, or not an answer at all.
            raise msgspec.ValidationError("Object missing required field `choices`")
    usage = raw.get("usage")
    if isinstance(usage, dict):
        for name in _TOKEN_FIELDS:
            if name in usage and usage[name] is None:
                usage[name] = 0
    obj = msgspec.convert(raw, type)
    _attach_extras(obj, raw)
    return obj


_SHAPES: dict[type, tuple[frozenset[str], tuple[tuple[str, bool], ...]]] = {}


def _shape(cls: type) -> tuple[frozenset[str], tuple[tuple[str, bool], ...]]:
    """A response type's field names, and its fields that hold response objects (``True``:
    a list of them); worked out once per type."""
    shape = _SHAPES.get(cls)
    if shape is None:
        import msgspec.inspect as mi

        nested: list[tuple[str, bool]] = []
        for field in mi.type_info(cls).fields:  # type: ignore[attr-defined]
            kind = field.type
            options = kind.types if isinstance(kind, mi.UnionType) else (kind,)
            for option in options:
                if isinstance(option, mi.StructType):
                    nested.append((field.name, False))
                elif isinstance(option, mi.ListType) and isinstance(
                    option.item_type, mi.StructType
                ):
                    nested.append((field.name, True))
        shape = _SHAPES[cls] = (frozenset(cls.__struct_fields__), tuple(nested))  # type: ignore[attr-defined]
    return shape


def _attach_extras(obj: _Model, raw: dict[str, Any]) -> None:
    fields, nested = _shape(type(obj))
    if not fields.issuperset(raw):
        obj.model_extra = {k: v for k, v in raw.items() if k not in fields}
    for name, is_list in nested:
        value = getattr(obj, name)
        sub = raw.get(name)
        if is_list:
            if value and type(sub) is list:
                for item, part in zip(value, sub, strict=False):
                    if type(part) is dict:
                        _attach_extras(item, part)
        elif value is not None and type(sub) is dict:
            _attach_extras(value, sub)
