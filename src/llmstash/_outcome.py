"""One call in flight, and the one place that says what happened to it.

Every path — a hit, a miss, a single-flight follower, a stream read to its end, an embedding
call with some inputs cached — ends in :func:`succeed` (or :func:`fail`), which sets the
response's ``_hidden_params`` and builds the callback kwargs the same way. So a hit carries
every field a miss does; only ``cache_hit``, the cost and the timings differ:

- the call that reached the provider: ``cache_hit=False``, ``response_cost`` = its price;
- a hit, including a follower served by another call's provider request:
  ``cache_hit=True``, ``response_cost=0.0``, ``saved_cost`` = what the call would have cost.

Summing ``response_cost`` over success events gives what was really spent.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._cost import custom_usage_cost, price_usage
from ._log import DEBUG, logger, short_key
from ._request import CallSettings, Request
from .types import Usage

if TYPE_CHECKING:
    import asyncio

    from ._callbacks import CallbackDispatcher
    from .caching import Cache
    from .caching._stats import Miss

__all__ = ["Call", "count_embedding_lookups", "fail", "price", "succeed"]


class Call:
    """The state of one call between its arguments and its answer."""

    __slots__ = (
        "alone",
        "answered_by",
        "call_id",
        "counted",
        "debug",
        "dispatcher",
        "flight",
        "flight_key",
        "idle_since",
        "key",
        "lookup_s",
        "miss",
        "provider_name",
        "req",
        "resolved_base",
        "settings",
        "start",
    )

    def __init__(
        self, req: Request, settings: CallSettings, dispatcher: CallbackDispatcher, start: float
    ) -> None:
        self.req = req
        self.settings = settings
        self.dispatcher = dispatcher
        self.start = start
        self.key: str | None = None
        self.call_id: str | None = None
        self.provider_name: str | None = None
        self.resolved_base: str | None = None
        self.flight: asyncio.Future[bytes | dict[str, bytes] | Exception | None] | None = None
        """Set while this call leads a single flight that identical calls wait on."""
        self.flight_key: str | None = None
        self.answered_by: str | None = None
        """The model that answered, when a fallback did."""
        self.alone = False
        """Calls the provider without waiting for anyone (a stalled stream leads its flight)."""
        self.idle_since: float | None = None
        """For a streamed leader: loop time since which it waits on its reader (None: busy)."""
        self.miss: Miss | None = None
        """Why the cache lookup missed (set on the miss path only)."""
        self.counted = False
        """The lookup(s) of this call are in the cache's stats already."""
        self.debug = logger.isEnabledFor(DEBUG)
        """Log this call (at DEBUG); asked once per call."""
        self.lookup_s: float | None = None
        """Seconds the cache lookup took (measured only when logging at DEBUG)."""

    def event_kwargs(self) -> dict[str, Any]:
        """The kwargs every callback event of this call carries (LiteLLM's names)."""
        req = self.req
        if self.call_id is None:
            self.call_id = str(uuid.uuid4())
        kwargs: dict[str, Any] = {
            "model": req.model,
            "optional_params": dict(req.params),
            "call_type": req.call_type,
            "stream": req.stream,
            "api_base": self.resolved_base or req.api_base,
            "custom_llm_provider": self.provider_name,
            "metadata": req.metadata,
            "litellm_params": {"metadata": req.metadata, "api_base": self.resolved_base},
            "litellm_call_id": self.call_id,
            "start_time": datetime.fromtimestamp(self.start),
            "cache_key": self.key,
        }
        if req.messages is not None:
            kwargs["messages"] = req.messages
        if req.inputs is not None:
            kwargs["input"] = req.inputs
        if req.payload_name is not None:
            kwargs[req.payload_name] = req.payload
        kwargs.update(req.params)
        return kwargs  # the dispatcher masks credentials (_callbacks.scrub_kwargs)


def price(req: Request, response: Any, model: str | None = None) -> float | None:
    """What ``response`` cost in USD: the call's own prices (``input_cost_per_token``,
    ``output_cost_per_token``) when given, else the price table for ``model`` (by default the
    model asked for, else the model the response names); ``None`` when unknown."""
    usage = getattr(response, "usage", None)
    if req.prices is not None:
        return custom_usage_cost(req.prices, usage)
    return price_usage(model or req.model, usage, getattr(response, "model", None))


def succeed(
    call: Call,
    response: Any,
    *,
    hit: bool,
    coalesced: bool = False,
    cost: float | None = None,
    extra: dict[str, Any] | None = None,
    model: str | None = None,
) -> Any:
    """Record how ``response`` was served in its ``_hidden_params`` and report success.

    ``cost`` is what the provider requests made for this call cost (``None``: price the whole
    response, as answered by ``model``, by default the model asked for); on a hit it is 0 and
    ``saved_cost`` says what the call would have cost.
    """
    full = price(call.req, response, model)
    spent = 0.0 if hit else (full if cost is None else cost)
    hidden: dict[str, Any] = {
        "cache_hit": hit,
        "cache_key": call.key,
        "response_cost": spent,
        "custom_llm_provider": call.provider_name,
        "api_base": call.resolved_base,
    }
    if hit:
        hidden["saved_cost"] = full
    if call.req.prices is not None:
        given_in, given_out = call.req.prices
        hidden["custom_cost_per_token"] = {
            "input_cost_per_token": given_in,
            "output_cost_per_token": given_out,
        }
    if coalesced:
        hidden["coalesced"] = True
    if extra:
        hidden.update(extra)
    response.__dict__["_llmstash_hidden"] = hidden  # what response._hidden_params reads
    req = call.req
    cache = req.cache
    if cache is not None:
        stats = cache._stats
        if stats is None:
            pass
        elif hit and not call.counted:
            # A hit: counted here, flat, since this runs on every hit.
            call.counted = True
            model, namespace = req.model, req.controls.namespace or cache.namespace
            if model == stats.last_model and namespace == stats.last_namespace and stats.dirty:
                cell = stats.last_cell
            else:
                cell = stats.cell(namespace, model)
                stats.last_model, stats.last_namespace, stats.last_cell = model, namespace, cell
            cell.hits += 1
            usage = response.usage
            if usage is not None:
                cell.tokens_saved += usage.total_tokens or 0
            if full:
                cell.cost_saved_usd += full
            if coalesced:
                cell.coalesced += 1
        else:
            _count(call, cache, hit, full)
    if call.debug:
        _log_call(call, hit, coalesced)
    settings = call.settings
    if settings.has_hooks:
        kwargs = call.event_kwargs()
        kwargs["cache_hit"] = hit
        kwargs["end_time"] = datetime.fromtimestamp(time.time())
        kwargs["response_cost"] = spent
        if hit:
            kwargs["saved_cost"] = full
        call.dispatcher.success(
            settings.callbacks,
            settings.success_callback,
            kwargs,
            response,
            kwargs["start_time"],
            kwargs["end_time"],
            is_async=call.req.is_async,
        )
    return response


def _count(call: Call, cache: Cache, hit: bool, full: float | None) -> None:
    """Add a finished call that is not a plain hit to its cache's stats: its lookup (unless
    counted already) and, for a call the provider answered, the provider's time."""
    stats = cache._stats
    assert stats is not None
    req = call.req
    namespace = req.controls.namespace or cache.namespace
    if not call.counted:
        call.counted = True
        stats.miss(namespace, req.model, call.miss.reason if call.miss is not None else "absent")
    if not hit and req.mock_response is None:
        stats.provider(namespace, req.model, time.time() - call.start)


def count_embedding_lookups(
    call: Call,
    cache: Cache,
    tokens: list[int],
    misses: dict[int, Miss],
    missing: list[int],
    coalesced: bool,
) -> None:
    """Add an embedding call's lookups (one per input) to its cache's stats."""
    stats = cache._stats
    call.counted = True
    if stats is None:
        return
    req = call.req
    namespace = req.controls.namespace or cache.namespace
    hits = len(tokens) - len(missing)
    if hits:
        if missing:
            left = set(missing)
            saved = sum(t for i, t in enumerate(tokens) if i not in left)
        else:
            saved = sum(tokens)
        usage = Usage(prompt_tokens=saved, total_tokens=saved)
        if req.prices is not None:
            cost = custom_usage_cost(req.prices, usage)
        else:
            cost = price_usage(req.model, usage)
        stats.hit(namespace, req.model, saved, cost, len(misses) if coalesced else 0, n=hits)
    for i in missing:
        miss = misses.get(i)
        stats.miss(namespace, req.model, miss.reason if miss is not None else "absent")


def _log_call(call: Call, hit: bool, coalesced: bool, error: BaseException | None = None) -> None:
    req = call.req
    cache = req.cache
    if cache is None:
        outcome = "uncached"
    elif hit:
        outcome = "hit (coalesced)" if coalesced else "hit"
    else:
        outcome = f"miss ({call.miss.reason if call.miss is not None else 'absent'})"
    lookup = "-" if call.lookup_s is None else f"{call.lookup_s * 1000:.2f} ms"
    logger.debug(
        "llmstash call: %s %s key=%s model=%s namespace=%s lookup=%s total=%.2f ms%s",
        req.call_type,
        outcome,
        short_key(call.key),
        req.model,
        (req.controls.namespace or cache.namespace or "-") if cache is not None else "-",
        lookup,
        (time.time() - call.start) * 1000,
        f" error={type(error).__name__}" if error is not None else "",
    )


def fail(call: Call, exc: BaseException) -> None:
    """Report a failed call to the failure hooks."""
    cache = call.req.cache
    if cache is not None and cache._stats is not None and not call.counted:
        call.counted = True
        cache._stats.miss(
            call.req.controls.namespace or cache.namespace,
            call.req.model,
            call.miss.reason if call.miss is not None else "absent",
        )
    if call.debug:
        _log_call(call, False, False, exc)
    settings = call.settings
    if not settings.has_hooks or not isinstance(exc, Exception):
        return
    kwargs = call.event_kwargs()
    kwargs["exception"] = exc
    kwargs["cache_hit"] = False
    kwargs["end_time"] = datetime.now()
    call.dispatcher.failure(
        settings.callbacks,
        settings.failure_callback,
        kwargs,
        exc,
        kwargs["start_time"],
        kwargs["end_time"],
        is_async=call.req.is_async,
    )
