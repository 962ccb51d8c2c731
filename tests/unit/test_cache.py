"""Suggestion cache: exact hits, typed-ahead hits, misses after edits, TTL, per-document invalidation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsp_server.completion.cache import SuggestionCache

URI = "file:///w/app.py"
PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\nprint(add(1, 2))\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock) -> SuggestionCache:
    cache = SuggestionCache(maxsize=32, ttl=60.0, timer=clock)
    cache.put(URI, PREFIX, SUFFIX, "a + b", {"tier": "qwen", "confidence": 0.9})
    return cache


def test_exact_hit(cache):
    hit = cache.lookup(URI, PREFIX, SUFFIX)
    assert hit is not None
    assert (hit.text, hit.typed, hit.exact) == ("a + b", "", True)
    assert hit.meta == {"tier": "qwen", "confidence": 0.9}


@pytest.mark.parametrize(
    ("typed", "rest"),
    [
        pytest.param("a", " + b", id="one-char"),
        pytest.param("a ", "+ b", id="two-chars"),
        pytest.param("a + ", "b", id="all-but-last"),
    ],
)
def test_typed_ahead_hit(cache, typed, rest):
    hit = cache.lookup(URI, PREFIX + typed, SUFFIX)
    assert hit is not None
    assert (hit.text, hit.typed, hit.exact) == (rest, typed, False)


@pytest.mark.parametrize(
    ("uri", "prefix", "suffix"),
    [
        pytest.param(URI, PREFIX + "a + b", SUFFIX, id="typed-the-whole-suggestion"),
        pytest.param(URI, PREFIX + "x", SUFFIX, id="typed-something-else"),
        pytest.param(URI, PREFIX + "a  ", SUFFIX, id="typed-diverges-later"),
        pytest.param(URI, PREFIX[:-1], SUFFIX, id="deleted-before-cursor"),
        pytest.param(URI, PREFIX.replace("add", "sum"), SUFFIX, id="edited-prefix-same-length"),
        pytest.param(URI, "# header\n" + PREFIX, SUFFIX, id="edited-prefix-far-above"),
        pytest.param(
            URI, PREFIX.replace("(a, b)", "(a, b, c)") + "a", SUFFIX, id="typed-after-edit-elsewhere"
        ),
        pytest.param(URI, PREFIX, SUFFIX + "x = 1\n", id="suffix-changed"),
        pytest.param(URI, PREFIX + "a", SUFFIX.replace("1, 2", "3, 4"), id="typed-but-suffix-changed"),
        pytest.param(URI, PREFIX + "a", ")" + SUFFIX, id="typed-with-auto-closed-bracket"),
        pytest.param("file:///w/other.py", PREFIX, SUFFIX, id="other-document"),
    ],
)
def test_miss(cache, uri, prefix, suffix):
    assert cache.lookup(uri, prefix, suffix) is None


def test_ttl_expiry(cache, clock):
    clock.now += 59.0
    assert cache.lookup(URI, PREFIX + "a", SUFFIX) is not None
    clock.now += 2.0
    assert cache.lookup(URI, PREFIX, SUFFIX) is None
    assert cache.lookup(URI, PREFIX + "a", SUFFIX) is None
    assert len(cache) == 0


def test_invalidate_one_document(cache):
    other = "file:///w/other.py"
    cache.put(other, PREFIX, SUFFIX, "b - a")
    cache.invalidate(URI)
    assert cache.lookup(URI, PREFIX, SUFFIX) is None
    assert cache.lookup(URI, PREFIX + "a", SUFFIX) is None
    assert cache.lookup(other, PREFIX, SUFFIX).text == "b - a"
    cache.clear()
    assert cache.lookup(other, PREFIX, SUFFIX) is None


def test_newest_suggestion_wins_for_the_same_position(cache):
    cache.put(URI, PREFIX, SUFFIX, "a - b")
    assert cache.lookup(URI, PREFIX, SUFFIX).text == "a - b"
    assert cache.lookup(URI, PREFIX + "a ", SUFFIX).text == "- b"


def test_least_recently_used_is_evicted(clock):
    cache = SuggestionCache(maxsize=3, ttl=60.0, timer=clock)
    for i in range(4):
        cache.put(URI, f"x{i} = ", "", f"value_{i}")
    assert cache.lookup(URI, "x0 = ", "") is None
    assert cache.lookup(URI, "x3 = ", "").text == "value_3"
    assert len(cache) == 3


def test_typed_ahead_scan_is_bounded(clock):
    cache = SuggestionCache(maxsize=100, ttl=60.0, timer=clock, scan_limit=4)
    cache.put(URI, "old = ", "", "compute()")
    for i in range(4):
        cache.put(URI, f"y{i} = ", "", f"v{i}")
    assert cache.lookup(URI, "old = ", "").text == "compute()", "exact hits are not limited by the scan"
    assert cache.lookup(URI, "old = comp", "") is None, "typed-ahead looks at the newest entries only"


def test_empty_suggestion_is_not_stored(clock):
    cache = SuggestionCache(timer=clock)
    cache.put(URI, PREFIX, SUFFIX, "")
    assert cache.lookup(URI, PREFIX, SUFFIX) is None


def test_long_document_only_near_cursor_matters(clock):
    """Lookups compare slices of key_chars, whatever the document size; an edit near the cursor misses."""
    cache = SuggestionCache(timer=clock, key_chars=1024)
    body = "x = 1\n" * 800_000  # 4.8 MB
    prefix, suffix = body + "def f():\n    return ", "\n" + body
    cache.put(URI, prefix, suffix, "42")
    assert cache.lookup(URI, prefix + "4", suffix).text == "2"
    near = prefix[:-30] + "y" + prefix[-29:]
    assert cache.lookup(URI, near + "4", suffix) is None


@given(
    prefix=st.text(max_size=60),
    suggestion=st.text(min_size=2, max_size=30),
    suffix=st.text(max_size=30),
    data=st.data(),
)
def test_typed_ahead_property(prefix, suggestion, suffix, data):
    cache = SuggestionCache(maxsize=8, ttl=60.0, timer=Clock(), key_chars=16)
    cache.put(URI, prefix, suffix, suggestion)
    typed = data.draw(st.integers(0, len(suggestion) - 1))
    hit = cache.lookup(URI, prefix + suggestion[:typed], suffix)
    assert hit is not None
    assert hit.text == suggestion[typed:]
    assert hit.typed == suggestion[:typed]
    # Typing the whole suggestion, or a character that leaves it, is a miss.
    assert cache.lookup(URI, prefix + suggestion, suffix) is None
    wrong = data.draw(st.characters().filter(lambda char: char != suggestion[typed]))
    assert cache.lookup(URI, prefix + suggestion[:typed] + wrong, suffix) is None
