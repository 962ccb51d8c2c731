"""Secrets recognised by their shape wherever they appear: PEM private keys (also the tail of a block a
selection starts inside, and bare base64 key lines), AWS, GitHub, Anthropic, OpenAI, Stripe, Hugging Face,
Google and Slack keys, Slack webhook URLs, JWTs, bearer and basic-auth tokens, passwords inside URLs.

Each detector yields the ``Span`` of every secret it finds; ``redaction.redact`` merges them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """Where one secret is in the text, its kind, and which detector found it (lower: more specific)."""

    start: int
    end: int
    kind: str
    priority: int


def looks_random(value: str) -> bool:
    """Mixed case and digits that change class every few characters, as random base62/base64 does (about
    every other character) and words, identifiers and CamelCase (once a word) do not."""
    classes = ["d" if c.isdigit() else "u" if c.isupper() else "l" if c.islower() else "o" for c in value]
    changes = sum(a != b for a, b in zip(classes, classes[1:], strict=False))
    return len(value) >= 16 and {"d", "u", "l"} <= set(classes) and changes * 5 >= len(value) * 2


# -- token shapes -----------------------------------------------------------------------------------
# (kind, pattern, group holding the secret or 0 for the whole match)

_PEM = (
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
    # A selection may cut the block short: take the base64 lines (and PEM headers) that follow.
    r"|(?:(?:\s|\\n)*(?:[A-Za-z0-9+/]{16,}=*|[A-Za-z0-9+/]*==?|[A-Za-z-]+: [^\n\\]*))+)"
)

_TOKEN_PATTERNS: list[tuple[str, re.Pattern[str], int | str]] = [
    ("private_key", re.compile(_PEM), 0),
    (
        "aws_access_key",
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}(?![A-Z0-9])"),
        0,
    ),
    (
        "github_token",
        re.compile(r"(?<![\w])(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})"),
        0,
    ),
    ("anthropic_key", re.compile(r"(?<![\w-])sk-ant-[A-Za-z0-9_-]{20,}"), 0),
    (
        "openai_key",
        re.compile(r"(?<![\w-])sk-(?:proj-|svcacct-|admin-)?(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}"),
        0,
    ),
    ("stripe_key", re.compile(r"(?<![\w])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"), 0),
    ("huggingface_token", re.compile(r"(?<![\w])hf_[A-Za-z0-9]{30,}"), 0),
    ("google_api_key", re.compile(r"(?<![\w])AIza[0-9A-Za-z_-]{35}"), 0),
    ("slack_token", re.compile(r"(?<![\w])(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,}"), 0),
    (
        "slack_webhook",
        re.compile(r"\bhooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9_/-]{8,})"),
        "secret",
    ),
    ("jwt", re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), 0),
    (
        "bearer_token",
        # A real token has a digit and some length; "Bearer authentication" in prose is left alone.
        re.compile(r"(?i)\bbearer\s+(?P<secret>(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/-]{12,}=*)"),
        "secret",
    ),
    (
        "basic_auth",
        re.compile(r"(?i)\bauthorization[\"']?\s*[:=]\s*[\"']?basic\s+(?P<secret>[A-Za-z0-9+/]{8,}=*)"),
        "secret",
    ),
    (
        "url_password",
        re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@\"'`]*:(?P<secret>[^\s@/\"'`]+)@[^\s/\"'`]+"),
        "secret",
    ),
]

# A PEM block is a secret only with key material in it, not `-----BEGIN PRIVATE KEY----- ... -----END ...`.
_KEY_MATERIAL = re.compile(r"[A-Za-z0-9+/]{16,}")


def token_spans(text: str) -> Iterator[Span]:
    for priority, (kind, regex, group) in enumerate(_TOKEN_PATTERNS):
        for match in regex.finditer(text):
            start, end = match.span(group)
            if end <= start or text.startswith("[REDACTED:", start):
                continue
            if kind == "private_key" and not _KEY_MATERIAL.search(text, start, end):
                continue
            yield Span(start, end, kind, priority)


_PEM_END = re.compile(r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----")
_KEY_LINE = re.compile(r"[A-Za-z0-9+/]+={0,2}|(?:Proc-Type|DEK-Info|Comment): .*")
_KEY_LINE_NOISE = " \t\"'`(),+;"
_MOST_KEY_LINES = 400  # a 16384-bit RSA key in PEM is about 200 lines


def pem_tail_spans(text: str) -> Iterator[Span]:
    """A selection that starts inside a private key block: the key lines before its END line, found by
    walking back from END line by line (real newlines or ``\\n`` escapes), so there is no backtracking."""
    for end in _PEM_END.finditer(text):
        start = cursor = end.start()
        material = False
        for _ in range(_MOST_KEY_LINES):
            if cursor <= 0:
                break
            newline, escaped = text.rfind("\n", 0, cursor), text.rfind("\\n", 0, cursor)
            segment_start = max(newline + 1, escaped + 2 if escaped >= 0 else 0)
            segment = text[segment_start:cursor]
            stripped = segment.strip(_KEY_LINE_NOISE)
            if stripped:
                if not _KEY_LINE.fullmatch(stripped):
                    break
                start = segment_start + segment.index(stripped)
                material = material or len(stripped) >= 16
            cursor = newline if segment_start == newline + 1 else escaped
        if material and not text.startswith("[REDACTED:", start):
            yield Span(start, end.end(), "private_key", 0)


# A line that is nothing but base64 (in a string literal, perhaps): a line of a key block that a selection
# took without its BEGIN and END lines.
_BASE64_LINE = re.compile(
    r"(?m)^[ \t]*[\"'`]?(?P<secret>[A-Za-z0-9+/]{16,}={0,2})(?:\\n)?[\"'`]?[ \t]*[+,]?[ \t]*\r?$"
)
_PEM_WIDTH = 64


def _looks_like_key_line(value: str) -> bool:
    """Random base64, not a word or an identifier (PydanticDeprecatedSince20): digits, upper and lower case
    letters, and a ``+``, ``/`` or padding, which no identifier has, or the look of random text."""
    return (
        re.search(r"\d", value) is not None
        and re.search(r"[A-Z]", value) is not None
        and re.search(r"[a-z]", value) is not None
        and (re.search(r"[+/=]", value) is not None or (len(value) >= 24 and looks_random(value)))
    )


def key_line_spans(text: str) -> Iterator[Span]:
    """Runs of base64-only lines: a run with a line of the PEM width (64) is a key block, and any other line
    in it that looks random is key material too."""
    run: list[re.Match[str]] = []

    def flush() -> Iterator[Span]:
        if not run:
            return
        values = [match.group("secret") for match in run]
        if any(len(value.rstrip("=")) == _PEM_WIDTH or len(value) == _PEM_WIDTH for value in values):
            if not all(re.fullmatch(r"[0-9a-fA-F]+", value) for value in values):  # not hex digests
                yield Span(run[0].start("secret"), run[-1].end("secret"), "private_key", 0)
            return
        for match in run:
            if _looks_like_key_line(match.group("secret")):
                yield Span(match.start("secret"), match.end("secret"), "private_key", 0)

    for match in _BASE64_LINE.finditer(text):
        if run and text.count("\n", run[-1].end(), match.start()) > 1:
            yield from flush()
            run = []
        run.append(match)
    yield from flush()
