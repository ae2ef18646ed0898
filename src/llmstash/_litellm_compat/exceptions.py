"""``litellm.exceptions`` under :func:`llmstash.install_as_litellm`.

Every error llmstash raises, under LiteLLM's names, and the few LiteLLM error classes llmstash
has no counterpart for. Those exist so that code which names them (``except
litellm.BudgetExceededError``, a table mapping LiteLLM's errors to its own) keeps working; llmstash
never raises them, except where noted.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
    UnprocessableEntityError,
    UnsupportedParamsError,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "AuthenticationError",
    "AzureOpenAIError",
    "BadGatewayError",
    "BadRequestError",
    "BudgetExceededError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "InternalServerError",
    "InvalidRequestError",
    "JSONSchemaValidationError",
    "NotFoundError",
    "OpenAIError",
    "PermissionDeniedError",
    "RateLimitError",
    "RouterRateLimitError",
    "ServiceUnavailableError",
    "Timeout",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
]


class BadGatewayError(InternalServerError):
    """502, as LiteLLM names it. llmstash reports a 502 as :class:`InternalServerError`; this
    subclass exists for code that names it."""


class JSONSchemaValidationError(APIResponseValidationError):
    """LiteLLM's error for an answer that fails client-side JSON-schema validation, which
    llmstash does not do; never raised."""


class OpenAIError(APIError):
    """LiteLLM's error of its OpenAI provider internals; never raised by llmstash (OpenAI's
    failures arrive as the classes named by status)."""


class AzureOpenAIError(APIError):
    """LiteLLM's error of its Azure provider internals; never raised by llmstash."""


class BudgetExceededError(Exception):
    """LiteLLM's error for a spend over ``max_budget``. llmstash keeps no budget, so it never
    raises this."""

    def __init__(self, current_cost: float, max_budget: float, message: str | None = None):
        self.current_cost = current_cost
        self.max_budget = max_budget
        self.message = message or f"Budget has been exceeded! Current cost: {current_cost}, " + (
            f"Max budget: {max_budget}"
        )
        super().__init__(self.message)


class RouterRateLimitError(ValueError):
    """LiteLLM's Router error when every deployment is cooling down; llmstash has no Router,
    so it never raises this."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args)
        for name, value in kwargs.items():
            setattr(self, name, value)
