"""The stats recorder: what it sends to the fleet counters, what it keeps after a failed
send, and how buckets sum back into stats."""

from __future__ import annotations

import pytest

from llmstash.caching import MemoryBackend
from llmstash.caching._stats import (
    BUCKET_WIDTH,
    MISS_REASONS,
    Miss,
    Recorder,
    bucket_names,
    from_buckets,
)


def test_take_sends_growth_once_and_give_back_resends() -> None:
    rec = Recorder()
    rec.hit("ns", "m", tokens=10, cost=0.5, coalesced=1)
    rec.miss("ns", "m", "absent")
    first = rec.take()
    assert first == {
        "hits|ns|m": 1,
        "coalesced|ns|m": 1,
        "tokens_saved|ns|m": 10,
        "cost_saved_usd|ns|m": 0.5,
        "miss:absent|ns|m": 1,
    }
    assert rec.take() == {} and not rec.dirty
    rec.hit("ns", "m", tokens=5, cost=None)
    second = rec.take()
    assert second == {"hits|ns|m": 1, "tokens_saved|ns|m": 5}
    rec.give_back(second)  # the send failed
    assert rec.dirty
    assert rec.take() == second


def test_names_with_the_separator_stay_in_their_field() -> None:
    rec = Recorder()
    rec.miss("a|b", "openai/x|y", "garbage")
    (field,) = rec.take()
    stats = from_buckets([{field: 1}], since=60)
    assert stats.by_namespace == {"a/b": stats.by_namespace["a/b"]}
    assert stats.miss_reasons["garbage"] == 1


def test_buckets_sum_by_model_and_namespace() -> None:
    a, b = Recorder(), Recorder()
    a.hit("x", "m1", 3, 0.25)
    a.provider("x", "m1", 2.0)
    a.miss("x", "m1", "absent")
    b.hit("y", "m1", 4, 0.25)
    b.miss("y", "m2", "expired")
    b.stored("y", "m2", ok=1, failed=2)
    stats = from_buckets([a.take(), b.take(), {"foreign": 7}], since=None)
    assert (stats.hits, stats.misses, stats.lookups) == (2, 2, 4)
    assert stats.miss_reasons == {r: int(r in ("absent", "expired")) for r in MISS_REASONS}
    assert (stats.stores, stats.write_failures) == (1, 2)
    assert stats.cost_saved_usd == 0.5 and stats.tokens_saved == 7
    # m1's mean provider time (2 s) times its two hits
    assert stats.provider_time_saved_s == 4.0
    assert stats.by_model["m1"].hits == 2 and stats.by_model["m2"].misses == 1
    assert stats.by_namespace["x"].provider_time_saved_s == 2.0
    assert stats.by_namespace["y"].provider_time_saved_s == 2.0
    assert from_buckets([a.take()], None, namespace="x").lookups == 0  # nothing new
    only_y = from_buckets([{"hits|y|m1": 1, "hits|x|m1": 5}], None, namespace="y")
    assert only_y.hits == 1


def test_bucket_names_cover_the_window() -> None:
    now = 1_000_000 * BUCKET_WIDTH + 30
    names = bucket_names(3600, now=now)
    assert names[-1] == "llmstash-stats:1000000"
    assert len(names) == 61
    assert len(bucket_names(0, now=now)) == 1


def test_misses_are_false_and_named() -> None:
    miss = Miss("budget")
    assert not miss and repr(miss) == "Miss('budget')"


async def test_memory_backend_counters_add_and_expire() -> None:
    now = [100.0]
    backend = MemoryBackend(clock=lambda: now[0])
    await backend.add_counters("b1", {"hits|ns|m": 2, "cost|ns|m": 0.5}, ttl=10)
    await backend.add_counters("b1", {"hits|ns|m": 3}, ttl=10)
    assert await backend.read_counters(["b1", "b2"]) == [{"hits|ns|m": 5, "cost|ns|m": 0.5}, {}]
    now[0] += 11
    assert await backend.read_counters(["b1"]) == [{}]


async def test_memory_backend_scans_by_prefix() -> None:
    backend = MemoryBackend()
    for key in ("a:1", "a:2", "b:1", "a:3"):
        await backend.set(key, b"v")
    batches = [batch async for batch in backend.scan("a:", batch=2)]
    assert [len(b) for b in batches] == [2, 1]
    assert sorted(k for b in batches for k in b) == ["a:1", "a:2", "a:3"]


def test_stats_false_is_accepted() -> None:
    from llmstash.caching import Cache

    assert Cache(stats=False).stats().lookups == 0
    with pytest.raises(KeyError):
        Cache().stats()["no-such-field"]
