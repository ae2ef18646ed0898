"""What every workload shares: the request shapes, iteration counts and the worker protocol."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

__all__ = [
    "API_KEY",
    "CHAT_MODEL",
    "EMBED_DIM",
    "EMBED_MODEL",
    "Config",
    "Iterations",
    "embed_inputs",
    "messages",
    "mock_text",
]

CHAT_MODEL = "openai/gpt-4o-mini"
EMBED_MODEL = "openai/text-embedding-3-small"
EMBED_DIM = 1536
API_KEY = "sk-bench"

# The fake provider answers "Echo: <question>", so a ~950-character question gives a chat
# response of about 1.3 KB of JSON: the size DESIGN §3 talks about.
_FILLER = (
    "Summarise the trade-offs between caching LLM responses in process memory and in a shared "
    "Redis server, covering latency, consistency across a fleet, eviction, expiry and what "
    "happens when the cache is unreachable. "
)
QUESTION = (_FILLER * 5)[:950]


def messages(tag: str, i: int | None = None) -> list[dict[str, str]]:
    """A one-message chat: the same for every call when ``i`` is None, else distinct per ``i``.

    Distinct questions have the same length, so every request and answer has the same size.
    """
    head = tag if i is None else f"{tag} {i:09d}"
    return [{"role": "user", "content": f"{head}: {QUESTION}"}]


def embed_inputs(tag: str, count: int) -> list[str]:
    """``count`` distinct inputs of a sentence each."""
    return [
        f"{tag} input {j:04d}: the quick brown fox jumps over the lazy dog" for j in range(count)
    ]


def mock_text(i: int) -> str:
    """About 1 KB of reply text, distinct per ``i`` (for the memory-per-entry workload)."""
    return (f"reply {i:06d} " + "lorem ipsum dolor sit amet " * 40)[:1000]


@dataclasses.dataclass(frozen=True)
class Iterations:
    """How many calls each workload makes; ``--quick`` divides them."""

    memory_hit: int = 20_000
    redis_hit: int = 5_000
    miss: int = 1_500
    concurrent_rounds: int = 8
    concurrent_calls: int = 2_000
    embed_hit: int = 2_000
    embed_partial: int = 300
    callbacks: int = 30
    cold_rounds: int = 5
    cold_calls: int = 100
    memory_entries: int = 10_000
    imports: int = 9
    litellm_imports: int = 3
    # LiteLLM is 10-100x slower per call; these keep its part of the run near a minute.
    litellm_hit: int = 2_000
    litellm_redis_hit: int = 1_000
    litellm_miss: int = 300
    litellm_concurrent_rounds: int = 3
    litellm_embed_hit: int = 100
    litellm_embed_partial: int = 50

    @classmethod
    def quick(cls) -> Iterations:
        return cls(
            memory_hit=3_000,
            redis_hit=800,
            miss=300,
            concurrent_rounds=3,
            embed_hit=300,
            embed_partial=60,
            callbacks=10,
            cold_rounds=2,
            imports=3,
            litellm_imports=1,
            litellm_hit=300,
            litellm_redis_hit=200,
            litellm_miss=60,
            litellm_concurrent_rounds=1,
            litellm_embed_hit=20,
            litellm_embed_partial=10,
        )


@dataclasses.dataclass(frozen=True)
class Config:
    """What a worker process needs: where the servers are and how long to run."""

    url: str  # fake provider, no added latency
    slow_url: str  # fake provider with 50 ms of latency (single-flight workload)
    redis_host: str | None
    redis_port: int | None
    iterations: Iterations

    @property
    def openai_base(self) -> str:
        return self.url + "/v1"

    @property
    def slow_openai_base(self) -> str:
        return self.slow_url + "/v1"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Config:
        raw: dict[str, Any] = json.loads(text)
        raw["iterations"] = Iterations(**raw["iterations"])
        return cls(**raw)
