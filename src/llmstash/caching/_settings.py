"""How a ``Cache`` reaches Redis, settled when the cache is made: settings read once (the
``REDIS_*`` environment included), the backend itself made per event loop. Also the checks
the constructor applies to its numbers."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from ..exceptions import InvalidRequestError
from ._backend import CacheBackend

__all__ = ["MAX_TTL", "check_number", "check_ttl", "redis_factory"]

MAX_TTL: Final = 10 * 365 * 24 * 3600.0
"""The longest TTL accepted (ten years); longer is almost certainly a unit mistake, and Redis
refuses expiries past its own limit. Use ``None`` for "never expires"."""


def check_ttl(value: Any, name: str) -> float | None:
    """``value`` as seconds, or ``None``; :class:`InvalidRequestError` naming ``name`` for
    anything that is not a finite number between 0 and :data:`MAX_TTL`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(f"{name} must be a number of seconds or None, got {value!r}")
    if not math.isfinite(value) or value < 0 or value > MAX_TTL:
        raise InvalidRequestError(
            f"{name} must be a finite number of seconds between 0 and {MAX_TTL:.0f} "
            f"(None: never expires), got {value!r}"
        )
    return float(value)


def check_number(
    value: Any, name: str, *, minimum: float, integer: bool = False, allow_none: bool = False
) -> Any:
    """``value`` if it is a finite number (an int where ``integer``) of at least ``minimum``;
    else :class:`InvalidRequestError` naming ``name``."""
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integer and not isinstance(value, int))
        or not math.isfinite(value)
        or value < minimum
    ):
        kind = "an integer" if integer else "a number"
        raise InvalidRequestError(f"{name} must be {kind} >= {minimum:g}, got {value!r}")
    return value


def redis_factory(
    *,
    host: str | None,
    port: int | str | None,
    password: str | None,
    url: str | None,
    startup_nodes: Sequence[Mapping[str, Any]] | None,
    sentinel_nodes: Sequence[tuple[str, int]] | None,
    service_name: str | None,
    sentinel_password: str | None,
    kwargs: dict[str, Any],
) -> Callable[[], CacheBackend]:
    """Settings for a Redis backend now (env read once here), the backend itself per loop."""
    if startup_nodes:
        nodes = [{"host": str(n["host"]), "port": int(n["port"])} for n in startup_nodes]

        def make_cluster() -> CacheBackend:
            from ._redis import RedisBackend

            return RedisBackend.from_cluster(nodes, password=password, **kwargs)

        return make_cluster
    if sentinel_nodes:
        if not service_name:
            raise InvalidRequestError("sentinel_nodes needs service_name (the master's name)")
        snodes = [(str(h), int(p)) for h, p in sentinel_nodes]
        name = service_name

        def make_sentinel() -> CacheBackend:
            from ._redis import RedisBackend

            return RedisBackend.from_sentinel(
                snodes, name, password=password, sentinel_password=sentinel_password, **kwargs
            )

        return make_sentinel
    if url is None and host is None:
        url = os.environ.get("REDIS_URL") or os.environ.get("REDIS_SSL_URL")
        if url is None:
            host = os.environ.get("REDIS_HOST")
            port = port if port is not None else os.environ.get("REDIS_PORT")
            password = password if password is not None else os.environ.get("REDIS_PASSWORD")
            if host is None:
                raise InvalidRequestError(
                    "Cache(type='redis') needs host= (or url=, redis_startup_nodes=, "
                    "sentinel_nodes=), or the REDIS_HOST / REDIS_URL environment variable"
                )
    if url is not None:
        the_url = url

        def make_url() -> CacheBackend:
            from ._redis import RedisBackend

            extra = dict(kwargs)
            if password is not None:
                extra.setdefault("password", password)
            return RedisBackend.from_url(the_url, **extra)

        return make_url
    try:
        port_num = int(port) if port is not None else 6379
    except (TypeError, ValueError):
        raise InvalidRequestError(f"Redis port must be a number, got {port!r}") from None
    the_host = str(host)

    def make_params() -> CacheBackend:
        from ._redis import RedisBackend

        return RedisBackend.from_params(host=the_host, port=port_num, password=password, **kwargs)

    return make_params
