"""The one table of call arguments: what each is for, and whether it is part of a cache key.

The engine (``_request.py``) takes its own arguments and the SDK-only ones out of a call before
anything is sent; the key builder (``caching/_keys.py``) leaves out every argument of the table
except the few that change the answer. Any argument not in the table is a provider parameter:
sent to the provider and part of the key.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = ["KEYED", "NOT_IN_KEY", "PARAMS", "Kind"]


class Kind(enum.Enum):
    """What an argument is for."""

    ENGINE = "engine"
    """Read by llmstash (routing, credentials, retries, caching, pricing); never sent as is."""
    SDK = "sdk"
    """LiteLLM's own bookkeeping: accepted, never sent to a provider, otherwise unused."""


PARAMS: Final[Mapping[str, Kind]] = {
    # the engine's own
    "caching": Kind.ENGINE,
    "cache": Kind.ENGINE,
    "ttl": Kind.ENGINE,
    "stream": Kind.ENGINE,
    "mock_response": Kind.ENGINE,
    "api_base": Kind.ENGINE,
    "base_url": Kind.ENGINE,
    "api_key": Kind.ENGINE,
    "api_version": Kind.ENGINE,
    "azure_ad_token": Kind.ENGINE,
    "azure_ad_token_provider": Kind.ENGINE,
    "timeout": Kind.ENGINE,
    "request_timeout": Kind.ENGINE,
    "num_retries": Kind.ENGINE,
    "max_retries": Kind.ENGINE,
    "metadata": Kind.ENGINE,
    "custom_llm_provider": Kind.ENGINE,
    "headers": Kind.ENGINE,
    "organization": Kind.ENGINE,
    "fallbacks": Kind.ENGINE,
    "max_parallel_requests": Kind.ENGINE,
    "input_cost_per_token": Kind.ENGINE,
    "output_cost_per_token": Kind.ENGINE,
    # LiteLLM SDK and proxy bookkeeping
    "litellm_call_id": Kind.SDK,
    "litellm_logging_obj": Kind.SDK,
    "litellm_metadata": Kind.SDK,
    "litellm_trace_id": Kind.SDK,
    "litellm_session_id": Kind.SDK,
    "litellm_parent_otel_span": Kind.SDK,
    "litellm_params": Kind.SDK,
    "logger_fn": Kind.SDK,
    "proxy_server_request": Kind.SDK,
    "preset_cache_key": Kind.SDK,
    "caching_groups": Kind.SDK,
    "no-log": Kind.SDK,
    "no_log": Kind.SDK,
    "tags": Kind.SDK,
    "mock_delay": Kind.SDK,
    "mock_timeout": Kind.SDK,
    "mock_tool_calls": Kind.SDK,
    "deployment_id": Kind.SDK,
    "drop_params": Kind.SDK,
    "additional_drop_params": Kind.SDK,
    "context_window_fallback_dict": Kind.SDK,
    "model_list": Kind.SDK,
    "model_info": Kind.SDK,
    "retry_strategy": Kind.SDK,
    "retry_policy": Kind.SDK,
    "cooldown_time": Kind.SDK,
    "callbacks": Kind.SDK,
    "success_callback": Kind.SDK,
    "failure_callback": Kind.SDK,
    "use_litellm_proxy": Kind.SDK,
    "acompletion": Kind.SDK,
    "client": Kind.SDK,
    "_skip_mcp_handler": Kind.SDK,
    "aembedding": Kind.SDK,
    # LiteLLM arguments for its other providers, routing and pricing: never sent to a provider
    # here (several are credentials, which must not reach the body, the key or callbacks)
    "stream_timeout": Kind.SDK,
    "client_id": Kind.SDK,
    "client_secret": Kind.SDK,
    "tenant_id": Kind.SDK,
    "azure_username": Kind.SDK,
    "azure_password": Kind.SDK,
    "azure_scope": Kind.SDK,
    "aws_access_key_id": Kind.SDK,
    "aws_secret_access_key": Kind.SDK,
    "aws_session_token": Kind.SDK,
    "aws_region_name": Kind.SDK,
    "aws_profile_name": Kind.SDK,
    "aws_role_name": Kind.SDK,
    "aws_bedrock_runtime_endpoint": Kind.SDK,
    "vertex_credentials": Kind.SDK,
    "vertex_project": Kind.SDK,
    "vertex_location": Kind.SDK,
    "watsonx_api_key": Kind.SDK,
    "base_model": Kind.SDK,
    "rpm": Kind.SDK,
    "tpm": Kind.SDK,
    "input_cost_per_second": Kind.SDK,
    "output_cost_per_second": Kind.SDK,
    "api_type": Kind.SDK,
    "ssl_verify": Kind.SDK,
    "region_name": Kind.SDK,
    "model_alias_map": Kind.SDK,
    "num_retries_per_request": Kind.SDK,
}
"""Every argument llmstash reads or keeps from the provider; any other keyword argument is a
provider parameter (``temperature``, ``tools``, ``response_format``, ``extra_body``, ...)."""

KEYED: Final = frozenset({"api_base", "base_url", "api_version", "headers", "organization"})
"""Arguments of the table that change the answer, so they are part of the key (``api_base``
and ``api_version`` only when the caller names them; headers minus credentials and tracing)."""

NOT_IN_KEY: Final = frozenset(PARAMS.keys() - KEYED) | {"stream_options"}
"""What never enters a key: the table less :data:`KEYED`, and ``stream_options`` (a streamed
and a plain call share one entry)."""
