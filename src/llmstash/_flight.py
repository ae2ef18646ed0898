"""Single flight: identical concurrent misses share one provider request.

Embedding calls take part too: a call whose missing inputs are exactly those of an embedding
call in flight waits for it and is served its vectors (a flight of embeddings lands with the
entries of its inputs, by key).

In one process, the first call to miss a key leads a *flight*; identical calls that miss while
it is in the air wait for it and are served from its entry as cache hits (``cache_hit=True``,
cost 0). Across processes sharing a backend, ``Cache(lease=s)`` adds a lease: the process that
takes it calls the provider; the others wait for its entry, and call the provider themselves as
soon as the lease is released without an entry (the holder failed, was cancelled, or did not
store) — they never wait out the lease. Plain calls and streams share flights and leases.

What a waiter receives from its leader:

- the stored bytes (served as a hit);
- an error any identical call would get (400/404/413/422, 5xx), raised in the waiter too;
- :data:`RETRY`: the leader gave up without an answer (cancelled, a caller's own error such
  as a rate limit or bad credentials, a stream closed early): look again, maybe lead;
- :data:`ALONE`: a streamed leader whose reader stopped asking for chunks for
  :data:`STREAM_IDLE` seconds (e.g. one task opened two identical streams before reading
  either): call the provider without waiting.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from .exceptions import APIStatusError

if TYPE_CHECKING:
    from ._outcome import Call
    from .caching import Cache
    from .caching._codec import Entry

__all__ = ["ALONE", "LEAD", "RETRY", "STREAM_IDLE", "Flights", "take_lease"]

LEAD: Final = object()
RETRY: Final = object()
ALONE: Final = object()
STREAM_IDLE: Final = 1.0
"""Seconds waiters give a streamed leader whose reader has stopped asking for chunks."""
_SHARED_STATUSES: Final = frozenset({400, 404, 413, 422})

Outcome = bytes | dict[str, bytes] | Exception | None


def shareable(exc: Exception) -> bool:
    """Errors that any identical call would get: about the request, or the provider's own
    failure. Credentials, rate limits and timeouts are the caller's, so waiters retry."""
    if isinstance(exc, APIStatusError):
        return exc.status_code in _SHARED_STATUSES or (exc.status_code or 0) >= 500
    return False


class Flights:
    """The flights in the air on one :class:`~llmstash.Client`, by cache key."""

    __slots__ = ("_leaders",)

    def __init__(self) -> None:
        self._leaders: dict[str, Call] = {}

    async def wait(self, key: str) -> bytes | dict[str, bytes] | Exception | object:
        """Wait for the flight of ``key``: its bytes or shared error, :data:`RETRY`,
        :data:`ALONE`, or :data:`LEAD` at once when none is in the air."""
        leader = self._leaders.get(key)
        if leader is None or leader.flight is None:
            return LEAD
        outcome = await _await_leader(leader, leader.flight)
        return RETRY if outcome is None else outcome

    def lead(self, call: Call, key: str | None = None) -> None:
        """Make ``call`` the flight that identical misses wait on (under ``key``, by default
        the call's cache key)."""
        key = call.key if key is None else key
        if key is not None and key not in self._leaders:
            call.flight = asyncio.get_running_loop().create_future()
            call.flight_key = key
            self._leaders[key] = call

    def land(self, call: Call, outcome: Outcome | BaseException) -> None:
        """Hand waiters the bytes, a shareable error, or nothing (they look again)."""
        flight = call.flight
        if flight is None:
            return
        call.flight = None
        key = call.flight_key or ""
        if self._leaders.get(key) is call:
            del self._leaders[key]
        if isinstance(outcome, BaseException) and not (
            isinstance(outcome, Exception) and shareable(outcome)
        ):
            outcome = None
        if not flight.done():
            flight.set_result(outcome)


async def _await_leader(
    leader: Call, flight: asyncio.Future[Outcome]
) -> bytes | Exception | object:
    if not leader.req.stream:
        return await asyncio.shield(flight)
    loop = asyncio.get_running_loop()
    while True:
        idle = leader.idle_since
        wait = STREAM_IDLE if idle is None else idle + STREAM_IDLE - loop.time()
        if wait <= 0:
            return ALONE
        done, _ = await asyncio.wait((flight,), timeout=wait)
        if done:
            return flight.result()


async def take_lease(cache: Cache, key: str) -> tuple[bool, Entry | None]:
    """Before a provider call for ``key``: ``(True, None)`` when this process took the lease
    (release it when done), ``(False, entry)`` when another process's entry arrived while we
    waited, ``(False, None)`` when leasing is off or the holder gave up (call the provider)."""
    if cache.lease is None:
        return False, None
    if await cache.aacquire_lease(key):
        return True, None
    entry = await cache.await_entry(key)
    if entry is not None:
        return False, entry
    # The holder let go without an entry: whoever takes the lease now calls; the rest call
    # too rather than wait a second round.
    return await cache.aacquire_lease(key), None
