"""``litellm.types.utils`` under :func:`llmstash.install_as_litellm`: llmstash's response types
under the names LiteLLM gives them, so ``isinstance(r, litellm.types.utils.ModelResponse)``
holds for what llmstash returns."""

from __future__ import annotations

from ..types import (
    ChatCompletionDeltaToolCall,
    ChatCompletionMessageToolCall,
    Choices,
    Delta,
    Embedding,
    EmbeddingResponse,
    Function,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
    Usage,
)

__all__ = [
    "ChatCompletionDeltaToolCall",
    "ChatCompletionMessageToolCall",
    "Choices",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "Function",
    "Message",
    "ModelResponse",
    "ModelResponseStream",
    "StreamingChoices",
    "Usage",
]
