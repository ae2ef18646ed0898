"""llmstash's workloads and the raw floors beside them, run in one worker process.

Each ``bench_*`` function measures one workload and returns ``{workload_id: {...}}`` with
``"llmstash"`` and, where there is one, ``"floor"``: summaries from :mod:`_stats`, rates in
calls per second, or plain values.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import statistics
import time
import traceback
import tracemalloc
from typing import Any

import httpx
import msgspec
from _common import (
    API_KEY,
    CHAT_MODEL,
    EMBED_DIM,
    EMBED_MODEL,
    Config,
    embed_inputs,
    messages,
    mock_text,
)
from _stats import interleaved, summarize, timed

import llmstash
from llmstash.caching import Cache
from llmstash.integrations.custom_logger import CustomLogger

__all__ = ["run", "run_memory"]

_HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
_encode = msgspec.json.encode
_decode = msgspec.json.decode
_canonical = msgspec.json.Encoder(order="sorted").encode
Result = dict[str, dict[str, Any]]


def _rates(seconds: list[float], calls: int) -> dict[str, Any]:
    rates = sorted(calls / s for s in seconds)
    return {"kind": "rate", "median": statistics.median(rates), "worst": rates[0], "n": len(rates)}


async def _request_count(http: httpx.AsyncClient, url: str) -> int:
    r = await http.get(url + "/_fake/stats")
    return int(r.json()["request_count"])


async def _redis_reads(client: Any) -> int:
    stats = await client.info("commandstats")
    return sum(
        int(stats.get(name, {}).get("calls", 0))
        for name in ("cmdstat_get", "cmdstat_mget", "cmdstat_getex")
    )


async def _post_chat(http: httpx.AsyncClient, base: str, msgs: list[dict[str, str]]) -> bytes:
    body = _encode({"model": CHAT_MODEL.split("/", 1)[1], "messages": msgs})
    r = await http.post(base + "/chat/completions", content=body, headers=_HEADERS)
    if r.status_code != 200:
        raise RuntimeError(f"fake provider answered {r.status_code}: {r.text[:200]}")
    return r.content


class _Bench:
    def __init__(self, cfg: Config, http: httpx.AsyncClient) -> None:
        self.cfg = cfg
        self.http = http
        self.it = cfg.iterations
        self.base = cfg.openai_base
        self.notes: list[str] = []

    def call(self, msgs: list[dict[str, str]], **kw: Any) -> Any:
        return llmstash.acompletion(
            CHAT_MODEL, msgs, api_base=kw.pop("api_base", self.base), api_key=API_KEY, **kw
        )

    # -- misses -----------------------------------------------------------------------------

    async def bench_miss(self) -> Result:
        llmstash.cache = Cache()
        hits = 0

        async def floor(i: int) -> None:
            _decode(await _post_chat(self.http, self.base, messages("floor", i)))

        async def off(i: int) -> None:
            await self.call(messages("off", i), caching=False)

        async def on(i: int) -> None:
            nonlocal hits
            r = await self.call(messages("on", i))
            hits += r._hidden_params["cache_hit"]

        s = await interleaved({"floor": floor, "off": off, "on": on}, self.it.miss, block=50)
        if hits:
            self.notes.append(f"miss (cache on): {hits} calls were hits, expected none")
        floor_summary = summarize(s["floor"])
        return {
            "miss_off": {"llmstash": summarize(s["off"]), "floor": floor_summary},
            "miss_on": {"llmstash": summarize(s["on"]), "floor": floor_summary},
        }

    # -- in-memory hit ------------------------------------------------------------------------

    async def bench_memory_hit(self) -> Result:
        llmstash.cache = Cache()
        msgs = messages("memory-hit")
        await self.call(msgs)
        r = await self.call(msgs)
        assert r._hidden_params["cache_hit"] is True, "in-memory warm-up call did not hit"
        raw = await _post_chat(self.http, self.base, msgs)
        fields = {"model": CHAT_MODEL, "messages": msgs}
        table = {hashlib.sha256(_canonical(fields)).hexdigest(): raw}

        async def floor(i: int) -> None:
            _decode(table[hashlib.sha256(_canonical(fields)).hexdigest()])

        async def hit(i: int) -> None:
            await self.call(msgs)

        s = await interleaved(
            {"floor": floor, "hit": hit}, self.it.memory_hit, block=500, warmup=200
        )
        return {
            "memory_hit": {
                "llmstash": summarize(s["hit"]),
                "floor": summarize(s["floor"]),
                "response_json_bytes": len(raw),
            }
        }

    # -- Redis hit ------------------------------------------------------------------------------

    async def bench_redis_hit(self) -> Result:
        import redis.asyncio as aioredis

        cfg = self.cfg
        cache = Cache(type="redis", host=cfg.redis_host, port=cfg.redis_port)
        llmstash.cache = cache
        msgs = messages("redis-hit")
        await self.call(msgs)
        await cache.aflush_writes()  # the entry is in Redis, not only in the pending-write map
        r = await self.call(msgs)
        assert r._hidden_params["cache_hit"] is True, "Redis warm-up call did not hit"
        key = r._hidden_params["cache_key"]
        raw = await _post_chat(self.http, self.base, msgs)
        client = aioredis.Redis(host=cfg.redis_host, port=cfg.redis_port)
        try:
            await client.set("bench:floor:chat", raw)
            entry_bytes = await client.strlen(key)

            async def floor(i: int) -> None:
                _decode(await client.get("bench:floor:chat"))

            # Below redis-py: one RESP GET on a plain asyncio stream, for scale only.
            reader, writer = await asyncio.open_connection(cfg.redis_host, cfg.redis_port)
            name = b"bench:floor:chat"
            command = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(name), name)

            async def raw_get(i: int) -> None:
                writer.write(command)
                head = await reader.readuntil(b"\r\n")
                _decode((await reader.readexactly(int(head[1:-2]) + 2))[:-2])

            async def hit(i: int) -> None:
                await self.call(msgs)

            try:
                s = await interleaved(
                    {"floor": floor, "raw": raw_get, "hit": hit},
                    self.it.redis_hit,
                    block=200,
                    warmup=100,
                )
            finally:
                writer.close()
            probe = 200
            before = await _redis_reads(client)
            for _ in range(probe):
                await self.call(msgs)
            reads = (await _redis_reads(client) - before) / probe
        finally:
            await client.aclose()
        return {
            "redis_hit": {
                "llmstash": summarize(s["hit"]),
                "floor": summarize(s["floor"]),
                "raw_resp_floor": summarize(s["raw"]),
                "redis_reads_per_hit": reads,
                "entry_bytes": entry_bytes,
                "floor_value_bytes": len(raw),
            },
            "redis_bytes": {
                "llmstash": {"kind": "bytes", "value": entry_bytes},
                "floor": {"kind": "bytes", "value": len(raw)},
            },
        }

    # -- 2,000 concurrent hits ------------------------------------------------------------------

    async def _gather_rounds(self, make: Any, rounds: int, calls: int) -> tuple[list[float], Any]:
        await asyncio.gather(*(make() for _ in range(calls)))  # warm-up round
        gc.collect()
        seconds = []
        last: Any = None
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            last = await asyncio.gather(*(make() for _ in range(calls)))
            seconds.append((time.perf_counter_ns() - t0) / 1e9)
        return seconds, last

    # -- disk cache (one SQLite file) --------------------------------------------------------

    async def bench_disk(self) -> Result:
        import tempfile

        from llmstash.caching import _codec

        it = self.it
        out: Result = {}
        with tempfile.TemporaryDirectory() as directory:
            cache = Cache(type="disk", disk_cache_dir=directory)
            llmstash.cache = cache
            msgs = messages("disk-hit")
            await self.call(msgs)
            await cache.aflush_writes()
            r = await self.call(msgs)
            assert r._hidden_params["cache_hit"] is True, "disk warm-up call did not hit"
            raw = await _post_chat(self.http, self.base, msgs)
            fields = {"model": CHAT_MODEL, "messages": msgs}
            table = {hashlib.sha256(_canonical(fields)).hexdigest(): raw}

            async def floor(i: int) -> None:
                _decode(table[hashlib.sha256(_canonical(fields)).hexdigest()])

            async def hit(i: int) -> None:
                await self.call(msgs)

            s = await interleaved({"floor": floor, "hit": hit}, it.redis_hit, block=200)
            out["disk_hit"] = {"llmstash": summarize(s["hit"]), "floor": summarize(s["floor"])}

            n, rounds = it.concurrent_calls, it.concurrent_rounds
            msgs = messages("disk-concurrent")
            await self.call(msgs)
            await cache.aflush_writes()
            secs, last = await self._gather_rounds(lambda: self.call(msgs), rounds, n)
            hits = sum(bool(x._hidden_params["cache_hit"]) for x in last)
            out["concurrent_disk"] = {"llmstash": _rates(secs, n), "hits_in_last_round": hits}
            await cache.aclose()
            llmstash.cache = None

        # Decoding the same chat entry plain and compressed: what compression adds to a hit.
        response = _codec.decode(_codec.encode_chat(r, time.time())).response  # type: ignore[union-attr]
        plain = _codec.encode_chat(response, time.time(), model=CHAT_MODEL)
        packed = _codec.compress(plain)

        async def decode_plain(i: int) -> None:
            _codec.decode(plain)

        async def decode_packed(i: int) -> None:
            _codec.decode(packed)

        s = await interleaved(
            {"plain": decode_plain, "packed": decode_packed}, it.memory_hit, block=500
        )
        out["decode_compressed"] = {
            "llmstash": summarize(s["packed"]),
            "floor": summarize(s["plain"]),
            "plain_bytes": len(plain),
            "compressed_bytes": len(packed),
        }
        return out

    async def bench_concurrent(self) -> Result:
        import redis.asyncio as aioredis

        cfg, it = self.cfg, self.it
        n, rounds = it.concurrent_calls, it.concurrent_rounds
        out: Result = {}

        # In memory.
        llmstash.cache = Cache()
        msgs = messages("concurrent-memory")
        await self.call(msgs)
        secs, last = await self._gather_rounds(lambda: self.call(msgs), rounds, n)
        hits = sum(bool(r._hidden_params["cache_hit"]) for r in last)
        raw = await _post_chat(self.http, self.base, msgs)
        fields = {"model": CHAT_MODEL, "messages": msgs}
        table = {hashlib.sha256(_canonical(fields)).hexdigest(): raw}

        async def bare_hit() -> Any:
            return _decode(table[hashlib.sha256(_canonical(fields)).hexdigest()])

        floor_secs, _ = await self._gather_rounds(bare_hit, rounds, n)
        out["concurrent_memory"] = {
            "llmstash": _rates(secs, n),
            "floor": _rates(floor_secs, n),
            "hits_in_last_round": hits,
        }

        # On Redis: every one of the 2,000 lookups is a Redis GET.
        if cfg.redis_host is not None:
            cache = Cache(type="redis", host=cfg.redis_host, port=cfg.redis_port)
            llmstash.cache = cache
            msgs = messages("concurrent-redis")
            await self.call(msgs)
            await cache.aflush_writes()
            before = await _request_count(self.http, cfg.url)
            secs, last = await self._gather_rounds(lambda: self.call(msgs), rounds, n)
            sent = await _request_count(self.http, cfg.url) - before
            hits = sum(bool(r._hidden_params["cache_hit"]) for r in last)
            # redis-py's default pool refuses a 101st connection (MaxConnectionsError); a bare
            # client serving 2,000 concurrent GETs waits for a pooled connection instead.
            pool = aioredis.BlockingConnectionPool(
                host=cfg.redis_host, port=cfg.redis_port, max_connections=100, timeout=10
            )
            client = aioredis.Redis(connection_pool=pool)
            try:
                await client.set("bench:floor:concurrent", raw)

                async def bare_get() -> Any:
                    return _decode(await client.get("bench:floor:concurrent"))

                floor_secs, _ = await self._gather_rounds(bare_get, rounds, n)
            finally:
                await client.aclose()
                await pool.disconnect()
            out["concurrent_redis"] = {
                "llmstash": _rates(secs, n),
                "floor": _rates(floor_secs, n),
                "hits_in_last_round": hits,
                "provider_requests": sent,
            }
            if hits < n:
                # Diagnose: the same burst with a 1 s lookup budget instead of the default.
                cache = Cache(
                    type="redis", host=cfg.redis_host, port=cfg.redis_port, lookup_timeout=1.0
                )
                llmstash.cache = cache
                msgs = messages("concurrent-redis-1s")
                await self.call(msgs)
                await cache.aflush_writes()
                secs1, last1 = await self._gather_rounds(
                    lambda: self.call(msgs), max(1, rounds // 2), n
                )
                hits1 = sum(bool(r._hidden_params["cache_hit"]) for r in last1)
                rate1 = _rates(secs1, n)["median"]
                out["concurrent_redis"]["budget_1s"] = {"hits": hits1, "rate": rate1}
                self.notes.append(
                    f"2,000 concurrent Redis hits: only {hits} of {n} calls in the last round "
                    f"were hits ({sent} provider requests during the rounds): lookups ran past "
                    "their latency budget (lookup_timeout, 50 ms by default) and fell through "
                    "to the provider, and the circuit breaker then skipped Redis altogether. "
                    f"The same burst with lookup_timeout=1.0: {hits1} of {n} hits, "
                    f"{rate1:,.0f} calls/s."
                )
        return out

    # -- embeddings ---------------------------------------------------------------------------

    async def bench_embeddings(self) -> Result:
        llmstash.cache = Cache()
        base = self.base
        inputs = embed_inputs("embed", 16)

        def embed(items: list[str]) -> Any:
            return llmstash.aembedding(
                EMBED_MODEL, items, api_base=base, api_key=API_KEY, dimensions=EMBED_DIM
            )

        await embed(inputs)
        r = await embed(inputs)
        assert r._hidden_params["cache_hit"] is True, "embedding warm-up call did not hit"
        assert len(r.data) == 16 and len(r.data[0].embedding) == EMBED_DIM

        async def hit(i: int) -> None:
            await embed(inputs)

        async def hit_lists(i: int) -> None:
            e = await embed(inputs)
            for d in e.data:
                d.embedding.tolist()

        hit_s = await timed(hit, self.it.embed_hit, warmup=50)
        lists_s = await timed(hit_lists, max(50, self.it.embed_hit // 4), warmup=20)

        cached = inputs[:8]
        partial_hits = 0

        async def partial(i: int) -> None:
            nonlocal partial_hits
            e = await embed(cached + embed_inputs(f"fresh {i:07d}", 8))
            partial_hits += e._hidden_params["cached_inputs"] == 8

        async def floor(i: int) -> None:
            body = _encode(
                {
                    "model": EMBED_MODEL.split("/", 1)[1],
                    "input": embed_inputs(f"floor {i:07d}", 8),
                    "dimensions": EMBED_DIM,
                    "encoding_format": "base64",
                }
            )
            resp = await self.http.post(base + "/embeddings", content=body, headers=_HEADERS)
            _decode(resp.content)

        s = await interleaved(
            {"floor": floor, "partial": partial}, self.it.embed_partial, block=20, warmup=5
        )
        if partial_hits < self.it.embed_partial:
            self.notes.append(
                f"partial embedding hit: {partial_hits} of {self.it.embed_partial} calls found "
                "exactly 8 of 16 inputs cached"
            )
        return {
            "embed_hit": {"llmstash": summarize(hit_s)},
            "embed_hit_lists": {"llmstash": summarize(lists_s)},
            "embed_partial": {"llmstash": summarize(s["partial"]), "floor": summarize(s["floor"])},
        }

    # -- callbacks ------------------------------------------------------------------------------

    async def bench_callbacks(self) -> Result:
        ends: list[int] = []
        all_done = asyncio.Event()

        class SlowLogger(CustomLogger):
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

        llmstash.cache = Cache()
        msgs = messages("callbacks")
        await self.call(msgs)
        # Control: the same hit with no callbacks, after the same ~50 ms pause. A call made
        # after the process sat idle is several times slower than one in a tight loop (cold
        # CPU caches), and that is not time spent on callbacks.
        control: list[int] = []
        for k in range(self.it.callbacks + 2):
            await asyncio.sleep(0.05)
            t0 = time.perf_counter_ns()
            await self.call(msgs)
            if k >= 2:
                control.append(time.perf_counter_ns() - t0)
        llmstash.callbacks = [AuditLogger(), MetricsLogger(), TraceLogger()]
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
                    continue  # warm-up
                caller.append(t1 - t0)
                if len(ends) >= 3:
                    done.append(max(ends) - t0)
                else:
                    missing += 1
        finally:
            llmstash.callbacks = []
            await llmstash.aflush_callbacks()
        return {
            "callbacks_caller": {"llmstash": summarize(caller), "floor": summarize(control)},
            "callbacks_done": {"llmstash": summarize(done), "incomplete_calls": missing},
        }

    # -- single-flight --------------------------------------------------------------------------

    async def bench_cold(self) -> Result:
        cfg, it = self.cfg, self.it
        slow_base = cfg.slow_openai_base
        out: Result = {}
        await self.call(messages("cold-warm"), api_base=slow_base, caching=False)
        backends = ["memory"] + (["redis"] if cfg.redis_host is not None else [])
        for backend in backends:
            if backend == "memory":
                cache = Cache()
            else:
                cache = Cache(type="redis", host=cfg.redis_host, port=cfg.redis_port)
            llmstash.cache = cache
            counts, seconds = [], []
            for r in range(it.cold_rounds):
                msgs = messages(f"cold-{backend}-{r}")
                before = await _request_count(self.http, cfg.slow_url)
                t0 = time.perf_counter_ns()
                await asyncio.gather(
                    *(self.call(msgs, api_base=slow_base) for _ in range(it.cold_calls))
                )
                seconds.append(time.perf_counter_ns() - t0)
                counts.append(await _request_count(self.http, cfg.slow_url) - before)
            await cache.aflush_writes()
            out[f"cold_{backend}"] = {
                "llmstash": {"kind": "count", "value": max(counts), "all": counts},
                "elapsed": summarize(seconds),
            }
        return out


async def _run(cfg: Config) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    results: Result = {}
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        b = _Bench(cfg, http)
        steps = [b.bench_miss, b.bench_memory_hit, b.bench_embeddings, b.bench_callbacks]
        steps.append(b.bench_concurrent)
        steps.append(b.bench_disk)
        if cfg.redis_host is not None:
            steps.insert(2, b.bench_redis_hit)
        steps.append(b.bench_cold)
        try:
            for step in steps:
                print(f"  llmstash: {step.__name__[6:]}", flush=True)
                try:
                    results.update(await step())
                except Exception as exc:  # one failing workload must not lose the others
                    traceback.print_exc()
                    b.notes.append(
                        f"llmstash {step.__name__[6:]}: failed: {type(exc).__name__}: {exc}"
                    )
        finally:
            llmstash.cache = None
            await llmstash.aflush_callbacks()
    return {"workloads": results, "notes": b.notes}


def run(cfg: Config) -> dict[str, Any]:
    """Every llmstash workload but memory per entry, with its floors."""
    return asyncio.run(_run(cfg))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _rss() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


async def _fill(cache: Cache, count: int, offset: int) -> Any:
    llmstash.cache = cache
    r = None
    for i in range(offset, offset + count):
        r = await llmstash.acompletion(CHAT_MODEL, messages("mem", i), mock_response=mock_text(i))
    return r


async def _memory(cfg: Config) -> dict[str, Any]:
    n = cfg.iterations.memory_entries
    await _fill(Cache(), 200, 10_000_000)  # warm: client, codecs, key encoder
    last = await _fill(Cache(), 1, 20_000_000)
    response_json = len(msgspec.json.encode(_drop_none(last.model_dump())))

    # RSS first, without tracemalloc (which adds its own bookkeeping to RSS).
    gc.collect()
    rss0 = _rss()
    rss_cache = Cache()
    await _fill(rss_cache, n, 0)
    gc.collect()
    rss1 = _rss()
    llmstash.cache = None
    del rss_cache

    gc.collect()
    tracemalloc.start()
    cache = Cache()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    await _fill(cache, n, 1_000_000)
    llmstash.cache = None
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    backend = cache.backend
    stats = backend.stats() if hasattr(backend, "stats") else {}
    entries = stats.get("entries", n)
    return {
        "workloads": {
            "memory_per_entry": {
                "llmstash": {"kind": "bytes", "value": (after - before) / n},
                "rss_bytes_per_entry": None if rss0 is None else (rss1 - rss0) / n,
                "accounted_bytes_per_entry": stats.get("bytes", 0) / max(entries, 1),
                "entries": entries,
                "response_json_bytes": response_json,
            }
        },
        "notes": [],
    }


def run_memory(cfg: Config) -> dict[str, Any]:
    """Memory per cached entry, in a process of its own (tracemalloc slows everything)."""
    return asyncio.run(_memory(cfg))
