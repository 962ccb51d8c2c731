"""Replace secrets in text bound for the cloud with ``[REDACTED:<kind>]``.

Two families of detectors (``secret_tokens`` and ``secret_assignments``; this module merges what they find):

* token shapes that are secrets wherever they appear (PEM private keys, also
  when a selection starts inside the block, AWS access key ids, GitHub,
  Anthropic, OpenAI, Slack, Stripe and Google keys, Slack webhook URLs, JWTs,
  bearer tokens, passwords inside URLs);
* assignments of a *literal* value to a name that says it is secret
  (``password``, ``secret``, ``token``, ``api_key``, ...), in the forms
  Python (f-strings too), JS/TS, Go, JSON, YAML, shell and ``.env`` files
  use, ``name=value`` pairs in connection strings, query strings and command
  lines, XML elements, the fallback of an environment lookup
  (``os.getenv("DB_PASSWORD", "...")``), and INI values shaped like a
  credential.

Only the secret value is replaced; names, quotes and the surrounding code are
kept so the model still understands the code.  Expressions are never
redacted (``password = form.password`` stays), because they are not secrets
and the model needs them.  Redaction is idempotent.

This is a safety net, not a guarantee: ``never_send`` globs and the router
decide what leaves the machine; this catches what slips into a selection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lsp_server.cloud.secret_assignments import assignment_spans
from lsp_server.cloud.secret_tokens import Span, key_line_spans, pem_tail_spans, token_spans

PLACEHOLDER = "[REDACTED:{kind}]"


@dataclass(frozen=True)
class Redaction:
    """One secret replaced: its kind, the 1-based line it started on, and its length in characters."""

    kind: str
    line: int
    length: int


@dataclass(frozen=True)
class RedactionResult:
    """The redacted text and what was replaced (never the secrets themselves)."""

    text: str
    redactions: list[Redaction] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.redactions)

    def counts(self) -> dict[str, int]:
        """Number of redactions by kind, e.g. ``{"aws_access_key": 1, "password": 2}``."""
        return dict(Counter(r.kind for r in self.redactions))


_DETECTORS: list[Callable[[str], Iterator[Span]]] = [
    token_spans,
    pem_tail_spans,
    key_line_spans,
    assignment_spans,
]


def redact(text: str) -> RedactionResult:
    """Replace every secret found in ``text`` with ``[REDACTED:<kind>]``."""
    spans = [span for detector in _DETECTORS for span in detector(text)]
    # Earliest first; of spans starting together the longest, then the most specific detector.
    spans.sort(key=lambda s: (s.start, -(s.end - s.start), s.priority))
    kept: list[Span] = []
    for span in spans:
        if kept and span.start < kept[-1].end:
            continue
        kept.append(span)

    pieces: list[str] = []
    redactions: list[Redaction] = []
    cursor = 0
    line, line_cursor = 1, 0
    for span in kept:
        line += text.count("\n", line_cursor, span.start)
        line_cursor = span.start
        pieces.append(text[cursor : span.start])
        pieces.append(PLACEHOLDER.format(kind=span.kind))
        redactions.append(Redaction(span.kind, line, span.end - span.start))
        cursor = span.end
    pieces.append(text[cursor:])
    return RedactionResult("".join(pieces), redactions)
