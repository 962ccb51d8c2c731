"""llama.cpp's and ggml's log lines, routed to Python logging at DEBUG, never to stdout or stderr.

stdout carries the protocol, so llama.cpp must never print there; the first error lines of each thread are kept so
that a failed load can say why ("tensor data is not within the file bounds", ...).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import deque
from typing import Any

import llama_cpp as llama


class LlamaLog:
    """The process-wide llama.cpp log callback (llama.cpp's logger is global, hence one instance: ``LLAMA_LOG``)."""

    # enum ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the previous line).
    _LEVEL_ERROR = 4
    _LEVEL_CONT = 5

    def __init__(self) -> None:
        self._logger = logging.getLogger("lsp_server.inference.llama_cpp")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._backend_ready = False
        # Kept on the instance: llama.cpp holds only the function pointer.
        self._callback = llama.llama_log_callback(self._on_log)

    def install(self) -> None:
        with self._lock:
            # llama_cpp's import installs a callback that prints to stderr; take it over every time.
            llama.llama_log_set(self._callback, ctypes.c_void_p(0))
            if not self._backend_ready:
                llama.llama_backend_init()
                self._backend_ready = True

    def _recent(self) -> deque[str]:
        recent = getattr(self._local, "recent", None)
        if recent is None:
            recent = self._local.recent = deque(maxlen=6)
        return recent

    def _on_log(self, level: int, text: bytes | None, _user_data: Any) -> None:
        try:
            message = text.decode("utf-8", "replace") if text else ""
            if level == self._LEVEL_CONT:
                level = getattr(self._local, "level", 0)
            self._local.level = level
            if level == self._LEVEL_ERROR and message.strip():
                recent = self._recent()
                if len(recent) < 6:  # the first errors carry the cause
                    recent.append(message.strip())
            if self._logger.isEnabledFor(logging.DEBUG):
                self._logger.debug("%s", message.rstrip("\n"))
        except Exception:  # an exception must never cross back into C
            pass

    def clear_recent(self) -> None:
        self._recent().clear()

    def recent_errors(self) -> str:
        """The first error llama.cpp logged on this thread since ``clear_recent`` (the root cause)."""
        recent = self._recent()
        return recent[0] if recent else ""


LLAMA_LOG = LlamaLog()
