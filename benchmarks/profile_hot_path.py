"""Profile llmstash's hot paths: ``python benchmarks/profile_hot_path.py WORKLOAD [options]``.

Workloads: ``memory`` (in-memory chat hits), ``redis`` (chat hits that read a private Redis),
``callbacks`` (in-memory hits with three no-op async ``CustomLogger`` hooks), ``embed``
(16-input embedding hits). Starts its own fake provider (and Redis for ``redis``), warms one
entry, then runs ``-n`` hits under cProfile (default; per-function own and cumulative time,
in µs per hit) or pyinstrument (``--tool pyinstrument``, a sampled call tree). Not part of
``make bench``: profilers slow the code they watch, so these numbers only show proportions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import API_KEY, CHAT_MODEL, EMBED_DIM, EMBED_MODEL, embed_inputs, messages  # noqa: E402
from _services import FakeProviderProcess, RedisProcess  # noqa: E402


def _table(prof: cProfile.Profile, hits: int, top: int, sort: str) -> str:
    """The ``top`` functions by ``sort`` ("tottime" or "cumtime"), in µs per hit."""
    stats = pstats.Stats(prof)
    rows = []
    for (filename, line, name), (_cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = "/".join(Path(filename).parts[-2:]) if filename != "~" else ""
        where = f"{short}:{line}({name})" if short else name
        rows.append((tt, ct, nc, where))
    key = 0 if sort == "tottime" else 1
    rows.sort(key=lambda r: r[key], reverse=True)
    out = io.StringIO()
    out.write(f"{'own µs/hit':>11} {'cum µs/hit':>11} {'calls/hit':>9}  function\n")
    for tt, ct, nc, where in rows[:top]:
        out.write(f"{tt * 1e6 / hits:11.2f} {ct * 1e6 / hits:11.2f} {nc / hits:9.2f}  {where}\n")
    return out.getvalue()


async def _run(args: argparse.Namespace, url: str, redis: RedisProcess | None) -> None:
    import llmstash
    from llmstash.caching import Cache
    from llmstash.integrations.custom_logger import CustomLogger

    base = url + "/v1"
    msgs = messages("profile")
    inputs = embed_inputs("profile", 16)
    if args.workload == "redis":
        assert redis is not None
        cache = Cache(type="redis", host=redis.host, port=redis.port)
    else:
        cache = Cache()
    llmstash.cache = cache

    class Quiet(CustomLogger):
        async def async_log_success_event(self, *a: Any) -> None:
            return None

    class A(Quiet): ...

    class B(Quiet): ...

    class C(Quiet): ...

    if args.workload == "embed":

        def call() -> Any:
            return llmstash.aembedding(
                EMBED_MODEL, inputs, api_base=base, api_key=API_KEY, dimensions=EMBED_DIM
            )
    else:

        def call() -> Any:
            return llmstash.acompletion(CHAT_MODEL, msgs, api_base=base, api_key=API_KEY)

    await call()
    await cache.aflush_writes()
    r = await call()
    assert r._hidden_params["cache_hit"], "warm-up did not hit"
    if args.workload == "callbacks":
        llmstash.callbacks = [A(), B(), C()]
    for _ in range(min(2000, args.n)):
        await call()
    await llmstash.aflush_callbacks()

    t0 = time.perf_counter()
    for _ in range(args.n):
        await call()
    plain = (time.perf_counter() - t0) / args.n * 1e6
    await llmstash.aflush_callbacks()
    print(f"{args.workload}: {plain:.1f} µs per hit without a profiler ({args.n:,} hits)")

    if args.tool == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001, async_mode="enabled")
        profiler.start()
        for _ in range(args.n):
            await call()
        await llmstash.aflush_callbacks()
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    else:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.n):
            await call()
        await llmstash.aflush_callbacks()
        prof.disable()
        print(f"\ncProfile, top {args.top} by own time (profiler overhead inflates small calls):")
        print(_table(prof, args.n, args.top, "tottime"))
        print(f"cProfile, top {args.top} by cumulative time:")
        print(_table(prof, args.n, args.top, "cumtime"))
    llmstash.callbacks = []
    llmstash.cache = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["memory", "redis", "callbacks", "embed"])
    parser.add_argument("-n", type=int, default=100_000, help="hits to profile")
    parser.add_argument("--tool", choices=["cprofile", "pyinstrument"], default="cprofile")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(FakeProviderProcess())
        redis = stack.enter_context(RedisProcess()) if args.workload == "redis" else None
        asyncio.run(_run(args, fake.url, redis))
    return 0


if __name__ == "__main__":
    sys.exit(main())
