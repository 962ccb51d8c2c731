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
# A name is secret when its last word is a secret word (db_password, clientSecret, GITHUB_TOKEN, apiKey,
# SECRET_KEY, aws_secret_access_key), possibly followed by a neutral suffix (_KEY, _VALUE, _PROD, _B64, 2).
# Names where a secret word is followed by what describes it are not secrets: password_field, TOKEN_TYPE,
# apiKeyLocation, max_tokens, tokenizer, secretlint.

# Prefilter only; ``_secret_word`` decides.
_SECRET_HINT = r"(?:pass|pwd|secret|token|key)"
_NAME = rf"[A-Za-z0-9_.-]*{_SECRET_HINT}[A-Za-z0-9_.-]*"

_SECRET_WORDS = {
    "password": "password",
    "passwd": "password",
    "passphrase": "password",
    "secret": "secret",
    "token": "token",
    "apikey": "api_key",
    "accesskey": "api_key",
    "authkey": "api_key",
    "privatekey": "private_key",
}
_UPPER_ONLY_SECRET_WORDS = {"pass": "password", "pwd": "password"}  # DB_PASS, SMTP_PWD; not first_pass, pwd
_COMPOUND_SECRET_WORDS = {
    ("api", "key"): "api_key",
    ("access", "key"): "api_key",
    ("auth", "key"): "api_key",
    ("private", "key"): "private_key",
}
_NEUTRAL_SUFFIXES = {
    "key",
    "value",
    "val",
    "str",
    "string",
    "b64",
    "base64",
    "hash",
    "base",
    "raw",
    "plain",
    "plaintext",
    "prod",
    "production",
    "dev",
    "staging",
    "test",
    "live",
    "enc",
    "encoded",
    "encrypted",
    "bytes",
}
# "token" alone is everywhere in lexers, parsers and ML code (`token == "with"`, `eos_token = "</s>"`); a
# token name counts when it says which kind of credential it is, is an UPPER_CASE constant, or the value
# looks like a credential.
_CREDENTIAL_TOKEN_QUALIFIERS = {
    "access",
    "auth",
    "api",
    "bearer",
    "refresh",
    "session",
    "csrf",
    "xsrf",
    "id",
    "github",
    "gh",
    "gitlab",
    "slack",
    "npm",
    "pypi",
    "hf",
    "huggingface",
    "oauth",
    "jwt",
    "client",
    "bot",
    "app",
    "service",
    "deploy",
    "personal",
    "private",
    "webhook",
    "discord",
    "telegram",
    "sentry",
    "vault",
    "secret",
}
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

# NAME <op> "literal" in any language: Python/JS/TS/Go/Ruby/PHP (=, :=, ==, =>), JSON/YAML/JS objects (:),
# with an optional type annotation (Python `x: str = "..."`, TS `x: string = "..."`, Go `var x string = "..."`).
_QUOTED_ASSIGNMENT = re.compile(
    rf"(?i)(?P<name>(?<![\w.:/@-]){_NAME})[\"'`\]]*"
    r"(?:[ \t]*:[ \t]*[A-Za-z_][\w.\[\], |]*?(?=[ \t]*=))?"
    r"(?:[ \t]+[A-Za-z_][\w.\[\]]*(?=[ \t]*=))?"
    r"[ \t]*(?P<op>===|!==|==|!=|:=|=>|=|:)[ \t]*"
    r"(?:[bru]|rb|br)?(?P<quote>\"\"\"|'''|[\"'`])(?P<secret>(?:(?!(?P=quote))[^\\\n]|\\.)+?)(?P=quote)"
)

# .env / shell / .properties: NAME=value or export NAME=value, unquoted, at the start of a line, no spaces.
_ENV_ASSIGNMENT = re.compile(
    rf"(?im)^[ \t]*(?:export[ \t]+|set[ \t]+)?(?P<name>{_NAME})=(?P<secret>[^\s\"'`$#()\[\]{{}};,]+)[ \t]*(?:#.*)?$"
)

# YAML and HTTP headers: name: value unquoted, at the start of a line.  (Not `name = value`: in most
# languages that is an expression, and TOML needs quotes anyway.)
_BARE_ASSIGNMENT = re.compile(
    rf"(?im)^[ \t]*(?:-[ \t]+)?(?P<name>{_NAME})[ \t]*:[ \t]*"
    r"(?P<secret>[^\s\"'`$&*!|>{\[(#%][^\n#]*?)[ \t]*(?:[ \t]#.*)?$"
)

_COMPARISON_OPS = frozenset({"==", "!=", "===", "!=="})

# Values that are plainly not secrets.
_TYPE_LIKE = re.compile(
    r"^(?:str|string|int|integer|bool|boolean|bytes|float|number|any|unknown|object|none|null|nil|true|false|"
    r"optional|secretstr|secretbytes|required|undefined|~)$",
    re.IGNORECASE,
)
# ENV_VAR_NAMES, snake_case_keys and dotted.config.keys name a secret rather than being one.
_NAME_LIKE_VALUE = re.compile(r"^(?:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[a-z]+(?:_[a-z]+)+|[a-z_]+(?:\.[a-z_]+)+)$")
# Unquoted values that are code: calls, indexing, attribute paths, ClassNames, camelCaseNames, <placeholders>.
_EXPRESSION_LIKE = re.compile(
    r"[=()\[\]{},|;]|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$|^[A-Z][A-Za-z]*$|^[a-z]+(?:[A-Z][a-z]*)+$|^<[^>]*>$"
)
# A string after ":" that is a class name is a forward-reference annotation: `private_key: "_RSAPrivateKey"`.
_TYPE_REFERENCE = re.compile(r"^_?[A-Z][A-Za-z]*(?:\.[A-Za-z_]+)*$")
# `"password=" + pw + "!"`: the "value" between two string literals is code.
_CONCATENATION = re.compile(r"^\s*[+.,)]")
# Paths and URLs (a URL with a password in it is caught as url_password).
_PATH_LIKE = re.compile(r"^(?:/|\./|~/|[a-z][a-z0-9+.-]*://)")
_PLACEHOLDER_LIKE = re.compile(
    r"^(?:\[REDACTED:\w+\]|[*xX•.:/-]+|<\|?[\w|/ -]*\|?>|\$\{[^}]*\}|\{\{[^}]*\}\}|%\(?\w*\)?s)$"
)


def _secret_word(segment: str) -> tuple[str, bool] | None:
    """(kind, qualified) when the name's last word is a secret word; qualified says the token is a credential."""
    words = [word.lower() for word in _WORDS.findall(segment)]
    upper = segment.isupper()
    while words:
        if len(words) >= 2 and (words[-2], words[-1]) in _COMPOUND_SECRET_WORDS:
            return _COMPOUND_SECRET_WORDS[(words[-2], words[-1])], True
        last = words[-1]
        kind = _SECRET_WORDS.get(last) or (_UPPER_ONLY_SECRET_WORDS.get(last) if upper else None)
        if kind == "token":
            return kind, upper or (len(words) >= 2 and words[-2] in _CREDENTIAL_TOKEN_QUALIFIERS)
        if kind is not None:
            return kind, True
        if len(words) > 1 and (last in _NEUTRAL_SUFFIXES or last.isdigit()):
            words.pop()
            continue
        return None
    return None


def _looks_like_credential(value: str) -> bool:
    return (
        len(value) >= 16
        and re.fullmatch(r"[A-Za-z0-9_\-./+=~:]+", value) is not None
        and re.search(r"[A-Za-z]", value) is not None
        and re.search(r"\d", value) is not None
    )


def _assignment_kind(match: re.Match[str], *, bare: bool) -> str | None:
    """The kind of secret this assignment holds, or None when it is not one."""
    value, name = match.group("secret"), match.group("name")
    segment = name.rsplit(".", 1)[-1]  # Token.Keyword is an attribute path; config.password is not
    found = _secret_word(segment)
    if found is None:
        return None
    kind, qualified = found
    if len(value) < (3 if bare else 4) or value.lower() in (segment.lower(), kind, *_SECRET_WORDS):
        return None  # `password: "password"` is an enum, `Name = "name"` a constant
    if _PLACEHOLDER_LIKE.match(value) or _CONCATENATION.match(value) or _NAME_LIKE_VALUE.match(value):
        return None
    if _PATH_LIKE.match(value):
        return None
    if _TYPE_LIKE.match(value):
        return None
    if bare and (_EXPRESSION_LIKE.search(value) or " " in value.strip()):
        return None
    op = match.groupdict().get("op")
    if op in _COMPARISON_OPS and kind != "password":
        return None  # `if token == "with"` is parsing; `if password == "admin"` is a hardcoded password
    if op == ":" and _TYPE_REFERENCE.match(value):
        return None
    if kind == "token" and not _looks_like_credential(value):
        if not qualified or re.search(r"\s", value):
            return None
    return kind


def _assignment_spans(text: str) -> Iterator[_Span]:
    for priority, (regex, bare) in enumerate(
        [(_QUOTED_ASSIGNMENT, False), (_ENV_ASSIGNMENT, True), (_BARE_ASSIGNMENT, True)], start=100
    ):
        for match in regex.finditer(text):
            kind = _assignment_kind(match, bare=bare)
            if kind is not None:
                start, end = match.span("secret")
                yield _Span(start, end, kind, priority)


# A PEM block is a secret only with key material in it, not `-----BEGIN PRIVATE KEY----- ... -----END ...`.
_KEY_MATERIAL = re.compile(r"[A-Za-z0-9+/]{16,}")


def _token_spans(text: str) -> Iterator[_Span]:
    for priority, (kind, regex, group) in enumerate(_TOKEN_PATTERNS):
        for match in regex.finditer(text):
            start, end = match.span(group)
            if end <= start or text.startswith("[REDACTED:", start):
                continue
            if kind == "private_key" and not _KEY_MATERIAL.search(text, start, end):
                continue
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
