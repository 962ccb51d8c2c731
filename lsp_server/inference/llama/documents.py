"""Saved KV states of recently used documents, so going back to a file evaluates only what changed.

The llama context holds one document's prompt at a time.  When a request for another document arrives, the
engine copies the current document's sequence state (llama.cpp's cells: positions, keys and values) into host
memory here and copies the requested document's saved state, if there is one, back into the context.  States
are kept least recently used first out, within a byte budget (``engine.documentKvMiB``); a state larger than the
whole budget is not kept.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class SavedState:
    """One document's evaluated prompt: its tokens (the token at each position) and llama.cpp's sequence state."""

    tokens: list[int]
    data: ctypes.Array[ctypes.c_uint8]

    @property
    def size(self) -> int:
        return len(self.data)


class DocumentStates:
    """Saved states by document key, least recently used dropped first, bounded by ``budget_bytes``."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._states: OrderedDict[str, SavedState] = OrderedDict()
        self.bytes_used = 0

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, key: str) -> bool:
        return key in self._states

    def put(self, key: str, state: SavedState) -> None:
        """Keep ``state`` as ``key``'s newest (replacing an older one), dropping the least recently used to fit."""
        self.discard(key)
        if state.size > self.budget_bytes:
            return
        while self._states and self.bytes_used + state.size > self.budget_bytes:
            _, dropped = self._states.popitem(last=False)
            self.bytes_used -= dropped.size
        self._states[key] = state
        self.bytes_used += state.size

    def take(self, key: str) -> SavedState | None:
        """Remove and return ``key``'s state (the context is about to hold it), or None."""
        state = self._states.pop(key, None)
        if state is not None:
            self.bytes_used -= state.size
        return state

    def peek(self, key: str) -> SavedState | None:
        """``key``'s state without taking it or changing the order (safe to call from another thread: one read)."""
        return self._states.get(key)

    def discard(self, key: str) -> None:
        self.take(key)

    def clear(self) -> None:
        self._states.clear()
        self.bytes_used = 0
