"""Timing loops and summaries: ``time.perf_counter_ns`` per call, medians and p95."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["interleaved", "summarize", "timed"]

AsyncFn = Callable[[int], Awaitable[Any]]


def summarize(samples_ns: list[int] | list[float]) -> dict[str, float]:
    """Median, p95 (nearest rank), min and mean in microseconds, and the sample count."""
    if not samples_ns:
        return {"n": 0}
    ordered = sorted(samples_ns)
    n = len(ordered)
    p95 = ordered[max(0, math.ceil(0.95 * n) - 1)]
    return {
        "n": n,
        "median_us": statistics.median(ordered) / 1000,
        "p95_us": p95 / 1000,
        "min_us": ordered[0] / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
    }


async def timed(fn: AsyncFn, n: int, *, warmup: int = 0, start: int = 0) -> list[int]:
    """Time ``await fn(i)`` for ``n`` values of ``i``, one at a time, after ``warmup`` calls.

    ``i`` runs from ``start``; warm-up calls use the indices just before the timed ones, so a
    workload that needs a fresh input per call gets ``warmup + n`` distinct indices.
    """
    for i in range(start, start + warmup):
        await fn(i)
    gc.collect()
    clock = time.perf_counter_ns
    samples = []
    for i in range(start + warmup, start + warmup + n):
        t0 = clock()
        await fn(i)
        samples.append(clock() - t0)
    return samples


async def interleaved(
    fns: Mapping[str, AsyncFn], n: int, *, block: int = 50, warmup: int = 20
) -> dict[str, list[int]]:
    """Time several workloads in alternating blocks of ``block`` calls until each has ``n``.

    Alternating cancels most of the drift (CPU frequency, other processes, the server's
    threads warming up) that separate runs would put into a ratio. Every workload sees the
    same sequence of indices, so "a fresh input per call" means the same inputs for all.
    """
    names = list(fns)
    for name in names:
        for i in range(warmup):
            await fns[name](-1 - i)
    gc.collect()
    clock = time.perf_counter_ns
    samples: dict[str, list[int]] = {name: [] for name in names}
    done = 0
    while done < n:
        size = min(block, n - done)
        for name in names:
            fn, out = fns[name], samples[name]
            for i in range(done, done + size):
                t0 = clock()
                await fn(i)
                out.append(clock() - t0)
        done += size
    return samples
