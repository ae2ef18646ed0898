"""LiteLLM's side: the same calls through ``litellm.acompletion(..., caching=True)``.

Same fake provider, same private Redis, same request shapes as :mod:`_bench_llmstash`. LiteLLM
writes its cache entries in the background, so each warm-up repeats a call until it hits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import statistics
import time
from typing import Any

import httpx
from _common import API_KEY, CHAT_MODEL, EMBED_DIM, EMBED_MODEL, Config, embed_inputs, messages
from _stats import interleaved, summarize, timed

__all__ = ["run"]

Result = dict[str, dict[str, Any]]


def _import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    import litellm

    litellm.suppress_debug_info = True
    litellm.set_verbose = False
    litellm.telemetry = False
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return litellm


def _rates(seconds: list[float], calls: int) -> dict[str, Any]:
    rates = sorted(calls / s for s in seconds)
    return {"kind": "rate", "median": statistics.median(rates), "worst": rates[0], "n": len(rates)}


def _hit(r: Any) -> bool:
    return bool((getattr(r, "_hidden_params", None) or {}).get("cache_hit"))


async def _request_count(http: httpx.AsyncClient, url: str) -> int:
    r = await http.get(url + "/_fake/stats")
    return int(r.json()["request_count"])


async def _redis_reads(client: Any) -> int:
    stats = await client.info("commandstats")
    return sum(
        int(stats.get(name, {}).get("calls", 0))
        for name in ("cmdstat_get", "cmdstat_mget", "cmdstat_getex")
    )


class _Bench:
    def __init__(self, cfg: Config, http: httpx.AsyncClient, litellm: Any) -> None:
        self.cfg = cfg
        self.http = http
        self.it = cfg.iterations
        self.litellm = litellm
        self.base = cfg.openai_base
        self.notes: list[str] = []
        from litellm.caching.caching import Cache

        self.Cache = Cache

    def call(self, msgs: list[dict[str, str]], **kw: Any) -> Any:
        kw.setdefault("caching", True)
        return self.litellm.acompletion(
            model=CHAT_MODEL,
            messages=msgs,
            api_base=kw.pop("api_base", self.base),
            api_key=API_KEY,
            **kw,
        )

    def embed(self, items: list[str]) -> Any:
        return self.litellm.aembedding(
            model=EMBED_MODEL,
            input=items,
            api_base=self.base,
            api_key=API_KEY,
            dimensions=EMBED_DIM,
            caching=True,
        )

    async def until_hit(self, fn: Any, what: str, tries: int = 200) -> Any:
        """Repeat ``fn()`` until LiteLLM answers from its cache (its writes are background)."""
        for _ in range(tries):
            r = await fn()
            if _hit(r):
                return r
            await asyncio.sleep(0.01)
        raise RuntimeError(f"LiteLLM never hit its cache for {what}")

    def redis_cache(self) -> Any:
        return self.Cache(type="redis", host=self.cfg.redis_host, port=str(self.cfg.redis_port))

    async def bench_miss(self) -> Result:
        self.litellm.cache = self.Cache()
        n = self.it.litellm_miss
        hits = 0

        async def off(i: int) -> None:
            await self.call(messages("off", i), caching=False)

        async def on(i: int) -> None:
            nonlocal hits
            hits += _hit(await self.call(messages("on", i)))

        s = await interleaved({"off": off, "on": on}, n, block=20, warmup=20)
        off_s, on_s = s["off"], s["on"]
        if hits:
            self.notes.append(f"LiteLLM miss (cache on): {hits} calls were hits, expected none")
        return {
            "miss_off": {"litellm": summarize(off_s)},
            "miss_on": {"litellm": summarize(on_s)},
        }

    async def bench_memory_hit(self) -> Result:
        self.litellm.cache = self.Cache()
        msgs = messages("memory-hit")
        await self.until_hit(lambda: self.call(msgs), "an in-memory chat hit")

        async def hit(i: int) -> None:
            await self.call(msgs)

        return {
            "memory_hit": {"litellm": summarize(await timed(hit, self.it.litellm_hit, warmup=50))}
        }

    async def bench_redis_hit(self) -> Result:
        import redis.asyncio as aioredis

        self.litellm.cache = self.redis_cache()
        msgs = messages("redis-hit")
        await self.until_hit(lambda: self.call(msgs), "a Redis chat hit")

        async def hit(i: int) -> None:
            await self.call(msgs)

        samples = await timed(hit, self.it.litellm_redis_hit, warmup=50)
        client = aioredis.Redis(host=self.cfg.redis_host, port=self.cfg.redis_port)
        try:
            probe = 200
            before = await _redis_reads(client)
            for _ in range(probe):
                await self.call(msgs)
            reads = (await _redis_reads(client) - before) / probe
        finally:
            await client.aclose()
        return {"redis_hit": {"litellm": summarize(samples), "redis_reads_per_hit": reads}}

    async def _gather_rounds(self, make: Any, rounds: int, calls: int) -> tuple[list[float], Any]:
        await asyncio.gather(*(make() for _ in range(calls)))
        gc.collect()
        seconds = []
        last: Any = None
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            last = await asyncio.gather(*(make() for _ in range(calls)))
            seconds.append((time.perf_counter_ns() - t0) / 1e9)
        return seconds, last

    async def bench_concurrent(self) -> Result:
        n, rounds = self.it.concurrent_calls, self.it.litellm_concurrent_rounds
        out: Result = {}
        self.litellm.cache = self.Cache()
        msgs = messages("concurrent-memory")
        await self.until_hit(lambda: self.call(msgs), "a concurrent-memory warm-up")
        secs, last = await self._gather_rounds(lambda: self.call(msgs), rounds, n)
        out["concurrent_memory"] = {
            "litellm": _rates(secs, n),
            "hits_in_last_round": sum(_hit(r) for r in last),
        }
        if self.cfg.redis_host is not None:
            self.litellm.cache = self.redis_cache()
            msgs = messages("concurrent-redis")
            await self.until_hit(lambda: self.call(msgs), "a concurrent-Redis warm-up")
            before = await _request_count(self.http, self.cfg.url)
            secs, last = await self._gather_rounds(lambda: self.call(msgs), rounds, n)
            out["concurrent_redis"] = {
                "litellm": _rates(secs, n),
                "hits_in_last_round": sum(_hit(r) for r in last),
                "provider_requests": await _request_count(self.http, self.cfg.url) - before,
            }
        return out

    async def bench_embeddings(self) -> Result:
        self.litellm.cache = self.Cache()
        inputs = embed_inputs("embed", 16)
        await self.until_hit(lambda: self.embed(inputs), "a 16-input embedding hit")

        async def hit(i: int) -> None:
            await self.embed(inputs)

        hit_s = await timed(hit, self.it.litellm_embed_hit, warmup=5)
        cached = inputs[:8]
        before = await _request_count(self.http, self.cfg.url)

        async def partial(i: int) -> None:
            await self.embed(cached + embed_inputs(f"fresh {i:07d}", 8))

        n = self.it.litellm_embed_partial
        partial_s = await timed(partial, n, warmup=3)
        sent = await _request_count(self.http, self.cfg.url) - before
        return {
            "embed_hit": {"litellm": summarize(hit_s)},
            "embed_partial": {
                "litellm": summarize(partial_s),
                "provider_requests_per_call": sent / (n + 3),
            },
        }

    async def bench_callbacks(self) -> Result:
        from litellm.integrations.custom_logger import CustomLogger

        ends: list[int] = []
        all_done = asyncio.Event()

        class SlowLogger(CustomLogger):  # type: ignore[misc]
            async def async_log_success_event(
                self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
            ) -> None:
                await asyncio.sleep(0.05)
                ends.append(time.perf_counter_ns())
                if len(ends) >= 3:
                    all_done.set()

        class AuditLogger(SlowLogger):
            pass

        class MetricsLogger(SlowLogger):
            pass

        class TraceLogger(SlowLogger):
            pass

        litellm = self.litellm
        litellm.cache = self.Cache()
        msgs = messages("callbacks")
        await self.until_hit(lambda: self.call(msgs), "a callbacks warm-up")
        control: list[int] = []  # the same hit, no callbacks, after the same pause
        for k in range(self.it.callbacks + 2):
            await asyncio.sleep(0.05)
            t0 = time.perf_counter_ns()
            await self.call(msgs)
            if k >= 2:
                control.append(time.perf_counter_ns() - t0)
        saved = list(litellm.callbacks)
        litellm.callbacks = [AuditLogger(), MetricsLogger(), TraceLogger()]
        caller: list[int] = []
        done: list[int] = []
        missing = 0
        try:
            for k in range(self.it.callbacks + 2):
                ends.clear()
                all_done.clear()
                t0 = time.perf_counter_ns()
                await self.call(msgs)
                t1 = time.perf_counter_ns()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_done.wait(), 5)
                if k < 2:
                    continue
                caller.append(t1 - t0)
                if len(ends) >= 3:
                    done.append(max(ends) - t0)
                else:
                    missing += 1
        finally:
            litellm.callbacks = saved
            await asyncio.sleep(0.3)  # let stragglers finish before the next workload
        if missing:
            self.notes.append(
                f"LiteLLM callbacks: {missing} calls did not see all three hooks finish in 5 s"
            )
        return {
            "callbacks_caller": {"litellm": summarize(caller), "control": summarize(control)},
            "callbacks_done": {"litellm": summarize(done), "incomplete_calls": missing},
        }

    async def bench_cold(self) -> Result:
        cfg, it = self.cfg, self.it
        slow = cfg.slow_openai_base
        out: Result = {}
        await self.call(messages("cold-warm"), api_base=slow, caching=False)
        backends = ["memory"] + (["redis"] if cfg.redis_host is not None else [])
        for backend in backends:
            self.litellm.cache = self.Cache() if backend == "memory" else self.redis_cache()
            counts, seconds = [], []
            for r in range(it.cold_rounds):
                msgs = messages(f"cold-{backend}-{r}")
                before = await _request_count(self.http, cfg.slow_url)
                t0 = time.perf_counter_ns()
                await asyncio.gather(
                    *(self.call(msgs, api_base=slow) for _ in range(it.cold_calls))
                )
                seconds.append(time.perf_counter_ns() - t0)
                counts.append(await _request_count(self.http, cfg.slow_url) - before)
            out[f"cold_{backend}"] = {
                "litellm": {"kind": "count", "value": max(counts), "all": counts},
                "elapsed": summarize(seconds),
            }
        return out


async def _run(cfg: Config, litellm: Any) -> dict[str, Any]:
    results: Result = {}
    async with httpx.AsyncClient(timeout=60) as http:
        b = _Bench(cfg, http, litellm)
        steps = [b.bench_miss, b.bench_memory_hit, b.bench_embeddings, b.bench_callbacks]
        if cfg.redis_host is not None:
            steps.insert(2, b.bench_redis_hit)
        steps += [b.bench_concurrent, b.bench_cold]
        try:
            for step in steps:
                print(f"  litellm: {step.__name__[6:]}", flush=True)
                try:
                    results.update(await step())
                except Exception as exc:  # one failing workload must not lose the others
                    b.notes.append(
                        f"LiteLLM {step.__name__[6:]}: failed: {type(exc).__name__}: {exc}"
                    )
        finally:
            litellm.cache = None
    return {"workloads": results, "notes": b.notes}


def run(cfg: Config) -> dict[str, Any]:
    """Every LiteLLM workload; raises ImportError when LiteLLM is not installed."""
    litellm = _import_litellm()
    from importlib.metadata import version

    out = asyncio.run(_run(cfg, litellm))
    out["version"] = version("litellm")
    return out
