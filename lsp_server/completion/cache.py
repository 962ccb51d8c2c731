"""Suggestions already shown, served again without the model: exact hits and typed-ahead hits.

A suggestion is stored with the text around the cursor it was made for. ``lookup`` answers

* an **exact hit** when the cursor is back where a suggestion was made, with the same text
  around it (e.g. after an edit was undone);
* a **typed-ahead hit** when the user has typed the first characters of a suggestion shown at an
  earlier cursor position: the new prefix is the old prefix plus the typed text, the typed text
  starts the suggestion, the suffix is unchanged and something is left to suggest. The answer is
  the rest of the suggestion.

Cost does not grow with the document. An entry keeps the last ``key_chars`` characters of its
prefix and the first ``key_chars`` of its suffix (with their full lengths) and is keyed by a
hash of those, so an exact lookup is one dictionary access plus two slices of ``key_chars``.
Typed-ahead looks only at the ``scan_limit`` most recent entries of the document, newest first.
The model only ever saw a window of about that size, so two states that agree on the lengths
and on these slices would have produced the same suggestion; an edit further away that keeps
every length unchanged is not noticed (documents are also invalidated per URI on close).

Entries live in a cachetools ``TTLCache`` (least recently used out first, each for ``ttl``
seconds; pass ``timer`` to control time in tests). Not thread-safe: use it from the event loop.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache


@dataclass(frozen=True)
class CachedHit:
    """A suggestion served from the cache."""

    text: str
    """What to show at the cursor now: the whole suggestion, or what is left of it after typing."""

    meta: Any
    """What was stored with the suggestion (tier, confidence…)."""

    typed: str = ""
    """Characters typed since the suggestion was made ("" for an exact hit)."""

    @property
    def exact(self) -> bool:
        return not self.typed


@dataclass(frozen=True)
class _Entry:
    prefix_len: int
    prefix_tail: str
    suffix_len: int
    suffix_head: str
    suggestion: str
    meta: Any


class SuggestionCache:
    """Recently shown suggestions per document, for exact and typed-ahead hits."""

    def __init__(
        self,
        maxsize: int = 256,
        ttl: float = 120.0,
        *,
        timer: Callable[[], float] = time.monotonic,
        key_chars: int = 4096,
        scan_limit: int = 16,
    ) -> None:
        self._entries: TTLCache[Hashable, _Entry] = TTLCache(maxsize=maxsize, ttl=ttl, timer=timer)
        self._by_uri: dict[str, dict[Hashable, None]] = {}
        """Keys per document in insertion order (newest last); may hold keys the TTLCache dropped."""
        self._key_chars = key_chars
        self._scan_limit = scan_limit
        self._puts = 0

    def __len__(self) -> int:
        self._entries.expire()
        return len(self._entries)

    def _key(self, uri: str, prefix_len: int, tail: str, suffix_len: int, head: str) -> Hashable:
        return (uri, prefix_len, hash(tail), suffix_len, hash(head))

    def put(self, uri: str, prefix: str, suffix: str, suggestion: str, meta: Any = None) -> None:
        """Remember ``suggestion`` shown between ``prefix`` and ``suffix`` (the text before/after the cursor)."""
        if not suggestion:
            return
        tail, head = prefix[-self._key_chars :], suffix[: self._key_chars]
        key = self._key(uri, len(prefix), tail, len(suffix), head)
        self._entries[key] = _Entry(len(prefix), tail, len(suffix), head, suggestion, meta)
        keys = self._by_uri.setdefault(uri, {})
        keys.pop(key, None)
        keys[key] = None
        self._puts += 1
        self._prune(uri)
        if self._puts % max(1, self._entries.maxsize) == 0:
            self._prune_all()

    def lookup(self, uri: str, prefix: str, suffix: str) -> CachedHit | None:
        """An exact or typed-ahead hit for the cursor between ``prefix`` and ``suffix``, else None."""
        keys = self._by_uri.get(uri)
        if not keys:
            return None
        tail, head = prefix[-self._key_chars :], suffix[: self._key_chars]
        prefix_len, suffix_len = len(prefix), len(suffix)

        entry = self._entries.get(self._key(uri, prefix_len, tail, suffix_len, head))
        if entry is not None and entry.prefix_tail == tail and entry.suffix_head == head:
            return CachedHit(entry.suggestion, entry.meta)

        for key in itertools.islice(reversed(keys), self._scan_limit):
            entry = self._entries.get(key)
            if entry is None:
                continue
            typed_len = prefix_len - entry.prefix_len
            if not 0 < typed_len < len(entry.suggestion):
                continue
            if entry.suffix_len != suffix_len or entry.suffix_head != head:
                continue
            typed = prefix[entry.prefix_len :]
            if not entry.suggestion.startswith(typed):
                continue
            if prefix[max(0, entry.prefix_len - self._key_chars) : entry.prefix_len] != entry.prefix_tail:
                continue
            return CachedHit(entry.suggestion[typed_len:], entry.meta, typed)
        return None

    def invalidate(self, uri: str) -> None:
        """Forget every suggestion for ``uri`` (document closed, or its content replaced)."""
        for key in self._by_uri.pop(uri, {}):
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything (e.g. the model changed)."""
        self._entries.clear()
        self._by_uri.clear()

    def _prune(self, uri: str) -> None:
        keys = self._by_uri.get(uri)
        if not keys:
            return
        self._entries.expire()
        for key in [key for key in keys if key not in self._entries]:
            del keys[key]
        if not keys:
            del self._by_uri[uri]

    def _prune_all(self) -> None:
        for uri in list(self._by_uri):
            self._prune(uri)
