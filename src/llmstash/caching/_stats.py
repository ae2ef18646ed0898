"""What the cache did: hits, misses and why, stores, and what the hits saved.

Each :class:`~llmstash.caching.Cache` keeps a :class:`Recorder` (unless ``stats=False``): plain
counters per ``(namespace, model)``, bumped where the outcome is known — the hit path adds a
handful of integer additions, nothing more. ``cache.stats()`` reads them; no I/O.

For the fleet, the recorder's growth since the last send is added to shared counters kept by
the backend (:class:`~llmstash.caching._backend.SupportsCounters`): one hash per minute
(``llmstash-stats:<minute>``) whose fields are ``<counter>|<namespace>|<model>``, expiring
:data:`BUCKET_TTL` after its last update. The additions ride in the write path's round trips
(a miss's SET and the HINCRBYs share one pipeline); calls that only hit send them at most every
:data:`FLUSH_INTERVAL` seconds, and whatever is left is sent when the cache's writes are flushed
or its event loop ends. ``await cache.astats(fleet=True, since=3600)`` sums the buckets of the
last hour from every process sharing the store.

Provider time saved is an estimate: each hit is credited with the mean provider time of the
misses of its model in the same window (the entry does not record how long its miss took).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "BUCKET_TTL",
    "BUCKET_WIDTH",
    "FLUSH_INTERVAL",
    "MISS_REASONS",
    "CacheStats",
    "Counts",
    "Miss",
    "Recorder",
    "bucket_names",
]

MISS_REASONS: Final = (
    "absent",
    "expired",
    "no-cache",
    "s-maxage",
    "budget",
    "breaker",
    "garbage",
    "error",
)
"""Why a lookup missed: nothing under the key; an entry past its TTL; ``cache={"no-cache":
True}`` skipped the lookup; an entry older than the call's ``s-maxage``; the backend did not
answer within the lookup budget; the circuit breaker is open; bytes that are not a usable entry
(or an entry of the wrong kind); the backend failed otherwise (refused, reset)."""

BUCKET_WIDTH: Final = 60
"""Seconds per shared counter bucket: ``since`` is rounded out to whole buckets."""
BUCKET_TTL: Final = 8 * 24 * 3600.0
"""Seconds a bucket outlives its last update (a week of history, and a day to spare)."""
BUCKET_PREFIX: Final = "llmstash-stats:"
FLUSH_INTERVAL: Final = 2.0
"""Seconds at most between sends of a process's counters while it only hits."""
_SEP: Final = "|"


class Miss:
    """A lookup that found nothing usable, and why (:data:`MISS_REASONS`). False in a
    boolean test, so ``if entry:`` tells hits from misses."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"Miss({self.reason!r})"


ABSENT: Final = Miss("absent")
EXPIRED: Final = Miss("expired")
NO_CACHE: Final = Miss("no-cache")
TOO_OLD: Final = Miss("s-maxage")
BUDGET: Final = Miss("budget")
BREAKER: Final = Miss("breaker")
GARBAGE: Final = Miss("garbage")
ERROR: Final = Miss("error")


class Counts(msgspec.Struct, kw_only=True):
    """Counters for one slice of traffic (everything, one model, or one namespace)."""

    lookups: int = 0
    """Hits plus misses (an embedding call counts one lookup per input)."""
    hits: int = 0
    """Lookups served from the cache, single-flight followers included."""
    misses: int = 0
    """Lookups that went on to the provider (or a mock response)."""
    miss_reasons: dict[str, int] = msgspec.field(default_factory=dict)
    """Misses by reason (every name of :data:`MISS_REASONS`, zeros included)."""
    coalesced: int = 0
    """Hits served by another identical call's provider request (single flight)."""
    stores: int = 0
    """Entries the backend acknowledged."""
    write_failures: int = 0
    """Entries whose write failed or was given up on (budget ran out, breaker open)."""
    provider_calls: int = 0
    """Misses answered by the provider (mock responses excluded)."""
    provider_time_s: float = 0.0
    """Seconds those provider calls took."""
    tokens_saved: int = 0
    """Tokens of the responses served from the cache."""
    cost_saved_usd: float = 0.0
    """What the hits would have cost (models with a known price only)."""
    provider_time_saved_s: float = 0.0
    """Estimated: hits times the mean provider time of their model's misses."""
    hit_rate: float = 0.0
    """``hits / lookups`` (0 when there were none)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


class CacheStats(Counts, kw_only=True):
    """What a cache did: :class:`Counts` overall, by model and by namespace.

    From ``cache.stats()`` (this process, since the cache was made) or ``await
    cache.astats(fleet=True, since=...)`` (every process sharing the backend). Subscripting
    reads :meth:`to_dict`, then the backend's own counters: ``stats["breaker_open"]``,
    ``stats["hits"]``, ``stats["entries"]``.
    """

    scope: Literal["process", "fleet"] = "process"
    since: float | None = None
    """The window in seconds (fleet only; ``None``: all that is kept)."""
    by_model: dict[str, Counts] = msgspec.field(default_factory=dict)
    by_namespace: dict[str, Counts] = msgspec.field(default_factory=dict)
    """Keyed by namespace; ``""`` for calls without one."""
    type: str = ""
    """The cache's type (``"local"``, ``"redis"``)."""
    breaker_open: bool = False
    consecutive_failures: int = 0
    pending_writes: int = 0
    """Write drains still running in this process."""
    writes: int = 0
    """Entries acknowledged by the backend in this process (``stores`` without the model)."""
    writes_given_up: int = 0
    """Entries whose write budget ran out in this process."""
    backend: dict[str, Any] = msgspec.field(default_factory=dict)
    """The in-memory backend's own counters (entries, bytes, evictions, ...)."""

    def __getitem__(self, name: str) -> Any:
        data = self.to_dict()
        if name not in data and name in self.backend:
            return self.backend[name]  # the backend's own counters, as older releases had them
        return data[name]


_INT_FIELDS: Final = (
    "hits",
    "coalesced",
    "stores",
    "write_failures",
    "provider_calls",
    "tokens_saved",
)
_FLOAT_FIELDS: Final = ("provider_time_s", "cost_saved_usd")


class _Cell:
    """Raw counters of one ``(namespace, model)``."""

    __slots__ = (
        "coalesced",
        "cost_saved_usd",
        "hits",
        "misses",
        "provider_calls",
        "provider_time_s",
        "stores",
        "tokens_saved",
        "write_failures",
    )

    def __init__(self) -> None:
        self.hits = 0
        self.coalesced = 0
        self.stores = 0
        self.write_failures = 0
        self.provider_calls = 0
        self.tokens_saved = 0
        self.provider_time_s = 0.0
        self.cost_saved_usd = 0.0
        self.misses: dict[str, int] = {}

    def fields(self) -> dict[str, float]:
        out: dict[str, float] = {name: getattr(self, name) for name in _INT_FIELDS}
        for name in _FLOAT_FIELDS:
            out[name] = getattr(self, name)
        for reason, n in self.misses.items():
            out["miss:" + reason] = n
        return out


def _label(text: str | None) -> str:
    return (text or "").replace(_SEP, "/")


class Recorder:
    """A cache's counters in this process, and what of them the fleet has not been sent."""

    __slots__ = ("_sent", "cells", "dirty", "last_cell", "last_model", "last_namespace", "on_dirty")

    def __init__(self) -> None:
        self.last_model: str | None = None
        self.last_namespace: str | None = None
        self.last_cell: _Cell = _Cell()
        """The cell of the last hit, for the next hit of the same model and namespace."""
        self.cells: dict[tuple[str, str], _Cell] = {}
        """Counters by ``(namespace or "", model)``; after a change, call :meth:`cell` first
        unless :attr:`dirty` is set (so that the change gets sent)."""
        self._sent: dict[tuple[str, str], dict[str, float]] = {}
        self.dirty = False
        """Counters changed since the last :meth:`take`."""
        self.on_dirty: Any = None
        """Called (no arguments) when the counters first change after a :meth:`take`."""

    def cell(self, namespace: str | None, model: str) -> _Cell:
        """The counters of ``(namespace, model)``; marks them as changed."""
        if not self.dirty:
            self.dirty = True
            if self.on_dirty is not None:
                self.on_dirty()
        key = (namespace or "", model)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = _Cell()
        return cell

    def hit(
        self,
        namespace: str | None,
        model: str,
        tokens: int,
        cost: float | None,
        coalesced: int = 0,
        n: int = 1,
    ) -> None:
        cell = self.cell(namespace, model)
        cell.hits += n
        cell.tokens_saved += tokens
        if cost:
            cell.cost_saved_usd += cost
        if coalesced:
            cell.coalesced += coalesced

    def miss(self, namespace: str | None, model: str, reason: str, n: int = 1) -> None:
        misses = self.cell(namespace, model).misses
        misses[reason] = misses.get(reason, 0) + n

    def provider(self, namespace: str | None, model: str, seconds: float) -> None:
        cell = self.cell(namespace, model)
        cell.provider_calls += 1
        cell.provider_time_s += seconds

    def stored(self, namespace: str | None, model: str, ok: int, failed: int) -> None:
        cell = self.cell(namespace, model)
        cell.stores += ok
        cell.write_failures += failed

    def take(self) -> dict[str, float]:
        """The growth of every counter since the last take, as shared-counter fields
        (``counter|namespace|model``); empty when nothing changed."""
        self.dirty = False
        out: dict[str, float] = {}
        for key, cell in list(self.cells.items()):
            now = cell.fields()
            sent = self._sent.setdefault(key, {})
            suffix = f"{_SEP}{_label(key[0])}{_SEP}{_label(key[1])}"
            for name, value in now.items():
                delta = value - sent.get(name, 0)
                if delta:
                    out[name + suffix] = delta
                    sent[name] = value
        return out

    def give_back(self, fields: Mapping[str, float]) -> None:
        """Forget that ``fields`` (from :meth:`take`) were sent: they go with the next take."""
        for field, delta in fields.items():
            name, ns, model = field.split(_SEP, 2)
            sent = self._sent.get((ns, model))
            if sent is not None and name in sent:
                sent[name] -= delta
        if fields:
            self.dirty = True

    def snapshot(self, namespace: str | None = None) -> CacheStats:
        """This process's counters, summed overall, by model and by namespace (only
        ``namespace``'s when given)."""
        rows = [
            (ns, model, cell.fields())
            for (ns, model), cell in list(self.cells.items())
            if namespace is None or ns == _label(namespace)
        ]
        return summarize(rows, scope="process")


def bucket_names(since: float | None, now: float | None = None) -> list[str]:
    """The shared counter buckets covering the last ``since`` seconds (``None``: all kept)."""
    now = time.time() if now is None else now
    span = BUCKET_TTL if since is None else min(float(since), BUCKET_TTL)
    last = int(now // BUCKET_WIDTH)
    first = int((now - span) // BUCKET_WIDTH)
    return [f"{BUCKET_PREFIX}{b}" for b in range(first, last + 1)]


def current_bucket(now: float | None = None) -> str:
    """The bucket that counters sent now go to."""
    return f"{BUCKET_PREFIX}{int((time.time() if now is None else now) // BUCKET_WIDTH)}"


def from_buckets(
    buckets: Iterable[Mapping[str, float]], since: float | None, namespace: str | None = None
) -> CacheStats:
    """Sum shared counter buckets (as :meth:`Recorder.take` wrote them) into stats (only
    ``namespace``'s when given)."""
    wanted = None if namespace is None else _label(namespace)
    acc: dict[tuple[str, str], dict[str, float]] = {}
    for bucket in buckets:
        for field, value in bucket.items():
            parts = field.split(_SEP, 2)
            if len(parts) != 3:
                continue  # not ours
            name, ns, model = parts
            if wanted is not None and ns != wanted:
                continue
            row = acc.setdefault((ns, model), {})
            row[name] = row.get(name, 0) + value
    stats = summarize([(ns, model, f) for (ns, model), f in acc.items()], scope="fleet")
    stats.since = since
    return stats


def summarize(
    rows: Iterable[tuple[str, str, Mapping[str, float]]], scope: Literal["process", "fleet"]
) -> CacheStats:
    """Totals, by model and by namespace, of ``(namespace, model, fields)`` rows."""
    total: dict[str, float] = {}
    by_model: dict[str, dict[str, float]] = {}
    by_ns: dict[str, dict[str, float]] = {}
    for ns, model, fields in rows:
        for target in (total, by_model.setdefault(model, {}), by_ns.setdefault(ns, {})):
            for name, value in fields.items():
                target[name] = target.get(name, 0) + value
    # Time saved, per model: its hits times its mean provider time (then summed up).
    saved_by_model = {m: _time_saved(f) for m, f in by_model.items()}
    saved_by_ns: dict[str, float] = {}
    for ns, model, fields in rows:
        mean = _mean_provider_time(by_model[model])
        saved_by_ns[ns] = saved_by_ns.get(ns, 0.0) + fields.get("hits", 0) * mean
    stats = CacheStats(scope=scope)
    _fill(stats, total, sum(saved_by_model.values()))
    stats.by_model = {m: _fill(Counts(), f, saved_by_model[m]) for m, f in sorted(by_model.items())}
    stats.by_namespace = {n: _fill(Counts(), f, saved_by_ns[n]) for n, f in sorted(by_ns.items())}
    return stats


def _mean_provider_time(fields: Mapping[str, float]) -> float:
    calls = fields.get("provider_calls", 0)
    return fields.get("provider_time_s", 0.0) / calls if calls else 0.0


def _time_saved(fields: Mapping[str, float]) -> float:
    return fields.get("hits", 0) * _mean_provider_time(fields)


def _fill(counts: Counts, fields: Mapping[str, float], time_saved: float) -> Counts:
    for name in _INT_FIELDS:
        setattr(counts, name, int(fields.get(name, 0)))
    counts.provider_time_s = round(float(fields.get("provider_time_s", 0.0)), 6)
    counts.cost_saved_usd = round(float(fields.get("cost_saved_usd", 0.0)), 9)
    counts.miss_reasons = {r: int(fields.get("miss:" + r, 0)) for r in MISS_REASONS}
    for name, value in fields.items():  # reasons a newer release may send
        if name.startswith("miss:") and name[5:] not in counts.miss_reasons:
            counts.miss_reasons[name[5:]] = int(value)
    counts.misses = sum(counts.miss_reasons.values())
    counts.lookups = counts.hits + counts.misses
    counts.hit_rate = round(counts.hits / counts.lookups, 4) if counts.lookups else 0.0
    counts.provider_time_saved_s = round(time_saved, 6) if math.isfinite(time_saved) else 0.0
    return counts
