"""Response types: OpenAI-shaped, with attribute and dict-style access."""

from ._json import JSONObject, ResponsesAPIResponse, ResponsesAPIStreamEvent, TextCompletionResponse
from ._models import (
    ChatCompletionDeltaToolCall,
    ChatCompletionMessageToolCall,
    Choices,
    Delta,
    Embedding,
    EmbeddingResponse,
    FloatVector,
    Function,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
    Usage,
    to_builtins,
)

__all__ = [
    "ChatCompletionDeltaToolCall",
    "ChatCompletionMessageToolCall",
    "Choices",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "FloatVector",
    "Function",
    "JSONObject",
    "Message",
    "ModelResponse",
    "ModelResponseStream",
    "ResponsesAPIResponse",
    "ResponsesAPIStreamEvent",
    "StreamingChoices",
    "TextCompletionResponse",
    "Usage",
    "to_builtins",
]
