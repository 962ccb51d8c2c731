"""Replace secrets in text bound for the cloud with ``[REDACTED:<kind>]``.

Two families of detectors:

* token shapes that are secrets wherever they appear (PEM private keys, AWS
  access key ids, GitHub, Anthropic, OpenAI, Slack, Stripe and Google keys,
  JWTs, bearer tokens, passwords inside URLs);
* assignments of a *literal* value to a name that says it is secret
  (``password``, ``secret``, ``token``, ``api_key``, ...), in the forms
  Python, JS/TS, Go, JSON, YAML, shell and ``.env`` files use.

Only the secret value is replaced; names, quotes and the surrounding code are
kept so the model still understands the code.  Expressions are never
redacted (``password = form.password`` stays), because they are not secrets
and the model needs them.  Redaction is idempotent.

This is a safety net, not a guarantee: ``never_send`` globs and the router
decide what leaves the machine; this catches what slips into a selection.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str
    priority: int


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
    ("aws_access_key", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}(?![A-Z0-9])"), 0),
    ("github_token", re.compile(r"(?<![\w])(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})"), 0),
    ("anthropic_key", re.compile(r"(?<![\w-])sk-ant-[A-Za-z0-9_-]{20,}"), 0),
    ("openai_key", re.compile(r"(?<![\w-])sk-(?:proj-|svcacct-|admin-)?(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}"), 0),
    ("stripe_key", re.compile(r"(?<![\w])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"), 0),
    ("huggingface_token", re.compile(r"(?<![\w])hf_[A-Za-z0-9]{30,}"), 0),
    ("google_api_key", re.compile(r"(?<![\w])AIza[0-9A-Za-z_-]{35}"), 0),
    ("slack_token", re.compile(r"(?<![\w])(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,}"), 0),
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

# -- assignments ------------------------------------------------------------------------------------

_SECRET_WORD = (
    r"(?:passw(?:or)?d|passphrase|secret|token|api[_-]?key|apikey|private[_-]?key|access[_-]?key|auth[_-]?key)"
)
# Names that contain a secret word but name something that is not a secret.
_NOT_SECRET_NAME = re.compile(
    r"(?i)tokeni[sz]|tokens(?:\b|_)|(?:^|[_-])(?:max|min|num|n)[_-]?tokens?|"
    r"(?:token|secret|passw(?:or)?d|key)[_-]?(?:count|type|len|length|limit|budget|index|idx|field|label|"
    r"name|names|prompt|hint|placeholder|policy|regex|pattern|file|path|dir|env|var|header|id|ids|ref|arn|url|"
    r"uri|endpoint|ttl|expiry|expires|expires_at|kind|format)\b"
)
_NAME = rf"[A-Za-z0-9_.-]*{_SECRET_WORD}[A-Za-z0-9_.-]*"

# NAME <op> "literal" in any language: Python/JS/TS/Go/Ruby/PHP (=, :=, ==, =>), JSON/YAML/JS objects (:),
# with an optional type annotation (Python `x: str = "..."`, TS `x: string = "..."`, Go `var x string = "..."`).
_QUOTED_ASSIGNMENT = re.compile(
    rf"(?i)(?P<name>(?<![\w.:-]){_NAME})[\"'`\]]*"
    r"(?:[ \t]*:[ \t]*[A-Za-z_][\w.\[\], |]*?(?=[ \t]*=))?"
    r"(?:[ \t]+[A-Za-z_][\w.\[\]]*(?=[ \t]*=))?"
    r"[ \t]*(?P<op>===|!==|==|!=|:=|=>|=|:)[ \t]*"
    r"(?:[bru]|rb|br)?(?P<quote>\"\"\"|'''|[\"'`])(?P<secret>(?:(?!(?P=quote))[^\\\n]|\\.)+?)(?P=quote)"
)

# .env / shell: NAME=value or export NAME=value, unquoted, at the start of a line, no spaces around "=".
_ENV_ASSIGNMENT = re.compile(
    rf"(?im)^[ \t]*(?:export[ \t]+|set[ \t]+)?(?P<name>{_NAME})=(?P<secret>[^\s\"'`$#()\[\]{{}};,]+)[ \t]*(?:#.*)?$"
)

# YAML and HTTP headers: name: value unquoted, at the start of a line.  (Not `name = value`: in most
# languages that is an expression, and TOML needs quotes anyway.)
_BARE_ASSIGNMENT = re.compile(
    rf"(?im)^[ \t]*(?:-[ \t]+)?(?P<name>{_NAME})[ \t]*:[ \t]*"
    r"(?P<secret>[^\s\"'`$&*!|>{\[(#%][^\n#]*?)[ \t]*(?:[ \t]#.*)?$"
)

# Values that are plainly not secrets: type names, identifiers and expressions, template placeholders.
_TYPE_LIKE = re.compile(
    r"^(?:str|string|int|integer|bool|boolean|bytes|float|number|any|unknown|object|none|null|nil|true|false|"
    r"optional|secretstr|secretbytes|required|undefined|~)$",
    re.IGNORECASE,
)
_EXPRESSION_LIKE = re.compile(r"[=()\[\]{},|;]|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$|^[A-Z][A-Za-z]*$|^<[^>]*>$")
# `"password=" + pw + "!"`: the "value" between two string literals is code.
_CONCATENATION = re.compile(r"^\s*[+.,)]")
_PLACEHOLDER_LIKE = re.compile(r"^(?:\[REDACTED:\w+\]|[*xX•.:/-]+|<\|?[\w|/ -]*\|?>|\$\{[^}]*\}|\{\{[^}]*\}\}|%\(?\w*\)?s)$")


def _assignment_kind(name: str) -> str:
    lowered = name.lower()
    if "pass" in lowered:
        return "password"
    if "private" in lowered:
        return "private_key"
    if "secret" in lowered:
        return "secret"
    if "token" in lowered:
        return "token"
    return "api_key"


# "token" alone is everywhere in lexers, parsers and ML code (`token == "with"`, `Token: "#ccc"`,
# `eos_token = "</s>"`): a name whose only secret word is "token" counts when it says what kind of token
# (access_token, GITHUB_TOKEN, HF_TOKEN) or when the value looks like a credential.
_OTHER_SECRET_WORD = re.compile(
    r"(?i)passw(?:or)?d|passphrase|secret|api[_-]?key|apikey|private[_-]?key|access[_-]?key|auth[_-]?key"
)
_CREDENTIAL_TOKEN_NAME = re.compile(
    r"(?i)(?:access|auth|api|bearer|refresh|session|csrf|xsrf|id|github|gh|gitlab|slack|npm|pypi|hf|"
    r"huggingface|oauth|jwt|client|bot|app|service|deploy|personal|private|webhook|discord|telegram|"
    r"sentry|vault)[_.-]?token"
)
_COMPARISON_OPS = frozenset({"==", "!=", "===", "!=="})


# Values that name something rather than being a secret: ENV_VAR_NAMES, snake_case_keys, dotted.config.keys.
_NAME_LIKE_VALUE = re.compile(r"^(?:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[a-z]+(?:_[a-z]+)+|[a-z_]+(?:\.[a-z_]+)+)$")
# A string after ":" that is a class name is a forward-reference annotation: `private_key: "_RSAPrivateKey"`.
_TYPE_REFERENCE = re.compile(r"^_?[A-Z][A-Za-z]*(?:\.[A-Za-z_]+)*$")


def _looks_like_credential(value: str) -> bool:
    return (
        len(value) >= 16
        and re.fullmatch(r"[A-Za-z0-9_\-./+=~:]+", value) is not None
        and re.search(r"[A-Za-z]", value) is not None
        and re.search(r"\d", value) is not None
    )


def _assignment_spans(text: str) -> Iterator[_Span]:
    def accept(match: re.Match[str], *, bare: bool) -> bool:
        value, name = match.group("secret"), match.group("name")
        last_segment = name.rsplit(".", 1)[-1]  # Token.Keyword is an attribute path; config.password is not
        if not re.search(_SECRET_WORD, last_segment, re.IGNORECASE) or _NOT_SECRET_NAME.search(name):
            return False
        if _PLACEHOLDER_LIKE.match(value) or _CONCATENATION.match(value) or _NAME_LIKE_VALUE.match(value):
            return False
        if bare and (_TYPE_LIKE.match(value) or _EXPRESSION_LIKE.search(value) or " " in value.strip()):
            return False
        op = match.groupdict().get("op")
        if op in _COMPARISON_OPS and _assignment_kind(name) != "password":
            return False  # `if token == "with"` is parsing; `if password == "admin"` is a hardcoded password
        if op == ":" and _TYPE_REFERENCE.match(value):
            return False
        if not _OTHER_SECRET_WORD.search(name) and not _looks_like_credential(value):
            # Only "token" in the name: GITHUB_TOKEN, TOKEN, access_token count; TOKEN_EOF, eos_token do not.
            names_a_credential = last_segment.isupper() or _CREDENTIAL_TOKEN_NAME.search(last_segment)
            if not (names_a_credential and last_segment.lower().endswith("token")):
                return False
        return len(value) >= (4 if not bare else 3)

    for priority, (regex, bare) in enumerate(
        [(_QUOTED_ASSIGNMENT, False), (_ENV_ASSIGNMENT, True), (_BARE_ASSIGNMENT, True)], start=100
    ):
        for match in regex.finditer(text):
            if accept(match, bare=bare):
                start, end = match.span("secret")
                yield _Span(start, end, _assignment_kind(match.group("name")), priority)


def _token_spans(text: str) -> Iterator[_Span]:
    for priority, (kind, regex, group) in enumerate(_TOKEN_PATTERNS):
        for match in regex.finditer(text):
            start, end = match.span(group)
            if end > start and not text.startswith("[REDACTED:", start):
                yield _Span(start, end, kind, priority)


_DETECTORS: list[Callable[[str], Iterator[_Span]]] = [_token_spans, _assignment_spans]


def redact(text: str) -> RedactionResult:
    """Replace every secret found in ``text`` with ``[REDACTED:<kind>]``."""
    spans = [span for detector in _DETECTORS for span in detector(text)]
    # Earliest first; of spans starting together the longest, then the most specific detector.
    spans.sort(key=lambda s: (s.start, -(s.end - s.start), s.priority))
    kept: list[_Span] = []
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
