"""``litellm._logging`` under :func:`llmstash.install_as_litellm`: LiteLLM's logger names.

Frameworks tune LiteLLM's verbosity through these (``verbose_logger.setLevel(...)``,
``_disable_debugging()``). llmstash logs under ``"llmstash"``; these loggers are LiteLLM's own
names, so a framework's settings apply to what is logged under them and nothing else breaks.
"""

from __future__ import annotations

import logging

__all__ = [
    "_disable_debugging",
    "_enable_debugging",
    "_turn_on_debug",
    "print_verbose",
    "verbose_logger",
    "verbose_proxy_logger",
    "verbose_router_logger",
]

verbose_logger = logging.getLogger("LiteLLM")
verbose_router_logger = logging.getLogger("LiteLLM Router")
verbose_proxy_logger = logging.getLogger("LiteLLM Proxy")

_LOGGERS = (verbose_logger, verbose_router_logger, verbose_proxy_logger)


def _turn_on_debug() -> None:
    """Log LiteLLM's loggers and llmstash's at DEBUG."""
    for logger in (*_LOGGERS, logging.getLogger("llmstash")):
        logger.setLevel(logging.DEBUG)


def _enable_debugging() -> None:
    """LiteLLM's older name for :func:`_turn_on_debug`."""
    _turn_on_debug()


def _disable_debugging() -> None:
    """Quieten LiteLLM's loggers and llmstash's to WARNING."""
    for logger in (*_LOGGERS, logging.getLogger("llmstash")):
        logger.setLevel(logging.WARNING)


def print_verbose(print_statement: object) -> None:
    """LiteLLM's debug print: logged at DEBUG on ``verbose_logger``."""
    verbose_logger.debug("%s", print_statement)
