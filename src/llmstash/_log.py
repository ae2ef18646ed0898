"""llmstash's log lines: ``logging.getLogger("llmstash")``, with no handler of its own.

At DEBUG it says, for every call, whether it hit and why it missed (with a short key, the
model, the namespace, the lookup and total times), and for every provider request attempt the
method, the URL (no query string, so no ``api-version`` or key in it), the status, the duration
and the retry number. Whether DEBUG is on is asked once per call; with it off a call pays for
that one check.

``llmstash.turn_on_debug()`` (LiteLLM's name) or the environment variable
``LLMSTASH_LOG=debug`` (read when the first client is made) sends them to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Final

__all__ = ["logger", "safe_url", "short_key", "turn_on_debug"]

logger: Final = logging.getLogger("llmstash")
DEBUG: Final = logging.DEBUG
_handler: logging.Handler | None = None
_env_read = False


def turn_on_debug() -> None:
    """Print llmstash's DEBUG lines (one per call, one per provider attempt) to stderr.

    Adds one ``StreamHandler`` to the ``llmstash`` logger (once, however often this is
    called) and sets its level to DEBUG. Configure ``logging.getLogger("llmstash")`` yourself
    for anything else."""
    global _handler
    if _handler is None:
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(_handler)
    logger.setLevel(logging.DEBUG)


def read_env() -> None:
    """Honour ``LLMSTASH_LOG`` (``debug``, or ``info``/``warning``/``error``) once."""
    global _env_read
    if _env_read:
        return
    _env_read = True
    level = os.environ.get("LLMSTASH_LOG", "").strip().upper()
    if level == "DEBUG":
        turn_on_debug()
    elif level in ("INFO", "WARNING", "ERROR"):
        logger.setLevel(level)


def short_key(key: str | None) -> str:
    """The last 12 characters of a cache key (its hash), enough to find it with ``cache ls``."""
    if not key:
        return "-"
    return key[-12:]


def safe_url(url: Any) -> str:
    """``scheme://host[:port]/path`` of a URL: no user info, no query (keys and
    ``api-version`` live there), no fragment."""
    from urllib.parse import urlsplit

    parts = urlsplit(str(url))
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def log_attempt(
    method: str, url: Any, status: int | str, seconds: float, retry: int, *, model: str = ""
) -> None:
    """One DEBUG line for one provider request attempt (call only when DEBUG is on)."""
    logger.debug(
        "llmstash provider: %s %s -> %s in %.1f ms (retry %d)%s",
        method,
        safe_url(url),
        status,
        seconds * 1000,
        retry,
        f" model={model}" if model else "",
    )
