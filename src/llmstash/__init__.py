"""llmstash: an async-first LLM SDK with a fast, correct response cache."""
