"""What cache stats cost on the hit paths: ``python benchmarks/stats_overhead.py [-n N]``.

Times the same hits through two caches, one with ``stats=True`` (the default) and one with
``stats=False``, in alternating blocks in one process (so drift cancels), for: in-memory chat
hits, chat hits that read a private Redis, and 16-input in-memory embedding hits. DESIGN §3
allows stats to slow a hit path by at most 5 %. Prints medians and the on/off ratio; asserts
nothing (numbers are read, not tested).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import API_KEY, CHAT_MODEL, EMBED_MODEL, embed_inputs, messages  # noqa: E402
from _services import FakeProviderProcess, RedisProcess  # noqa: E402
from _stats import interleaved, summarize  # noqa: E402

import llmstash  # noqa: E402
from llmstash.caching import Cache  # noqa: E402


def _workload(client: Any, kind: str, base: dict[str, str]) -> Any:
    if kind == "chat":
        msgs = messages("stats")
        return lambda i: client.acompletion(model=CHAT_MODEL, messages=msgs, **base)
    inputs = embed_inputs("stats", 16)
    return lambda i: client.aembedding(model=EMBED_MODEL, input=inputs, **base)


_WIDS = {
    "in-memory chat hit": "stats_memory_hit",
    "Redis chat hit": "stats_redis_hit",
    "16-input embedding hit": "stats_embed_hit",
}
"""The workload id each path has in ``make bench``'s table (run_all.py reads ``--json``)."""


async def main(n: int, rounds: int) -> dict[str, Any]:
    """Print the on/off medians of each round; return every round's samples pooled, as
    ``make bench``'s workloads (stats on as ``llmstash``, stats off as its ``floor``)."""
    with FakeProviderProcess() as fake, RedisProcess() as redis:
        base = {"api_base": fake.openai_base, "api_key": API_KEY}
        url = f"redis://{redis.host}:{redis.port}/0"
        results: dict[str, list[tuple[float, float]]] = {}
        pooled: dict[str, dict[str, list[Any]]] = {}
        for name, make, kind in (
            ("in-memory chat hit", lambda on: Cache(stats=on), "chat"),
            ("Redis chat hit", lambda on: Cache(type="redis", url=url, stats=on), "chat"),
            ("16-input embedding hit", lambda on: Cache(stats=on), "embed"),
        ):
            on_cache, off_cache = make(True), make(False)
            clients = {
                "on": llmstash.Client(cache=on_cache),
                "off": llmstash.Client(cache=off_cache),
            }

            fns = {label: _workload(client, kind, base) for label, client in clients.items()}
            for fn in fns.values():
                await fn(0)  # the miss that fills each cache
            for cache in (on_cache, off_cache):
                await cache.aflush_writes()
            for _ in range(rounds):
                samples = interleaved(fns, n, block=100, warmup=200)
                got = await samples
                for label in ("on", "off"):
                    pooled.setdefault(name, {}).setdefault(label, []).extend(got[label])
                on = summarize(got["on"])["median_us"]
                off = summarize(got["off"])["median_us"]
                results.setdefault(name, []).append((on, off))
            s = on_cache.stats()
            assert s.hits >= n * rounds, s.hits  # the stats really counted
            for client in clients.values():
                await client.aclose()
            for cache in (on_cache, off_cache):
                await cache.aclose()
        print(f"{'path':<24} {'stats on':>10} {'stats off':>10} {'ratio':>7}  (medians, µs)")
        for name, pairs in results.items():
            for on, off in pairs:
                print(f"{name:<24} {on:>10.2f} {off:>10.2f} {on / off:>7.3f}")
        return {
            _WIDS[name]: {"llmstash": summarize(both["on"]), "floor": summarize(both["off"])}
            for name, both in pooled.items()
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5000, help="timed hits per cache per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the summaries here")
    args = parser.parse_args()
    workloads = asyncio.run(main(args.n, args.rounds))
    if args.json is not None:
        args.json.write_text(json.dumps(workloads))
