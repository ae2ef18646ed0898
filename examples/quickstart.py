"""llmstash quick start: a call, the same call again from the cache, a stream, embeddings.

With OPENAI_API_KEY set it calls OpenAI. Without it, it starts llmstash's fake
OpenAI-compatible server on 127.0.0.1 with ~300 ms of latency, so you can see what the cache
saves without an account. The code is in ``llmstash/_demo.py`` (also run by ``llmstash demo``).

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from llmstash._demo import main

if __name__ == "__main__":
    asyncio.run(main())
