"""The Anthropic SDK, imported on first use, and its loggers kept quiet."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType


def load_sdk() -> tuple[ModuleType, ModuleType]:
    """``anthropic`` and its HTTP library, imported on first use: the SDK takes seconds to import, and a
    server that never escalates should not start slower for it."""
    import anthropic

    try:  # anthropic 2.x ships on httpx2, 0.x on httpx
        http = importlib.import_module("httpx2")
    except ImportError:  # pragma: no cover
        http = importlib.import_module("httpx")
    return anthropic, http


# The SDK logs whole request bodies (our prompts) at DEBUG and HTTP libraries log headers (the key).
_CHATTY_LOGGERS = ("anthropic", "httpx2", "httpx", "httpcore", "httpcore2")


def quiet_sdk_loggers() -> None:
    """Keep SDK and HTTP loggers at WARNING unless someone set their level on purpose (e.g. ANTHROPIC_LOG)."""
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
