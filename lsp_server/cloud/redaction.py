"""Replace secrets in text bound for the cloud with ``[REDACTED:<kind>]``.

Two families of detectors:

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
    r"(?P<prefix>[bruf]|rb|br|fr|rf)?(?P<quote>\"\"\"|'''|[\"'`])(?P<secret>(?:(?!(?P=quote))[^\\\n]|\\.)+?)(?P=quote)"
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

# name=value inside a connection string, a query string or a command line: after ";", "&", "?", a quote or
# "--" (`"Server=db;Password=x;"`, `?access_token=x`, `--password=x`), never a keyword argument `f(password=pw)`.
_PAIR_ASSIGNMENT = re.compile(
    rf"(?i)(?:(?<=[;&?\"'`])|(?<=--)|(?<=; ))(?P<name>{_NAME})[ \t]*(?P<op>=)[ \t]*"
    r"(?P<secret>[^\s;&\"'`<>$%{#\\][^\s;&\"'`<>\\]*)"
)

# <password>value</password> in XML configuration (Maven settings, .NET, Tomcat).
_XML_ELEMENT = re.compile(rf"(?i)<(?P<name>{_NAME})>[ \t]*(?P<secret>[^<\s][^<\n]*?)[ \t]*</(?P=name)>")

# The fallback of an environment lookup: os.getenv("DB_PASSWORD", "hunter2"), process.env.X || "hunter2".
_ENV_DEFAULT = re.compile(
    rf"(?i)(?:getenv|environ\.get|env\.get|Getenv|fetch)\(\s*[\"'](?P<name>{_NAME})[\"']\s*,\s*"
    r"(?P<quote>[\"'`])(?P<secret>(?:(?!(?P=quote))[^\\\n]|\\.)+?)(?P=quote)"
)

# INI, TOML-ish and .properties `name = value` without quotes, spaces around "=": the value is one word
# that is not code (`password = get()`, `api_key = settings.api_key` and `token = tok` are code).
_INI_ASSIGNMENT = re.compile(
    rf"(?im)^[ \t]*(?P<name>{_NAME})[ \t]+=[ \t]+(?P<secret>[^\s\"'`(){{}}\[\],;#$%]{{3,}})[ \t]*(?:[#;].*)?$"
)
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")

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
    if "f" in (match.groupdict().get("prefix") or "").lower() and re.fullmatch(r"\{[^{}]*\}", value):
        return None  # f"{password}" is the variable, not a literal
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


_NUMBER = re.compile(r"^[+-]?(?:0[xob][0-9a-f_]+|[\d_]*\.?[\d_]+(?:e[+-]?\d+)?)$", re.IGNORECASE)


def _looks_random(value: str) -> bool:
    """Mixed case and digits that change class every few characters, as random base62/base64 does (about
    every other character) and words, identifiers and CamelCase (once a word) do not."""
    classes = ["d" if c.isdigit() else "u" if c.isupper() else "l" if c.islower() else "o" for c in value]
    changes = sum(a != b for a, b in zip(classes, classes[1:], strict=False))
    return len(value) >= 16 and {"d", "u", "l"} <= set(classes) and changes * 5 >= len(value) * 2


def _ini_kind(match: re.Match[str]) -> str | None:
    value = match.group("secret")
    if (_IDENTIFIER_PATH.match(value) and not _looks_random(value)) or _NUMBER.match(value):
        return None  # `api_key = settings.api_key`, `password = None`, `CHARS_PER_TOKEN = 3.5` are code
    kind = _assignment_kind(match, bare=True)
    if kind == "token" and not _looks_like_credential(value):
        return None
    return kind


def _assignment_spans(text: str) -> Iterator[_Span]:
    detectors: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str | None]]] = [
        (_QUOTED_ASSIGNMENT, lambda m: _assignment_kind(m, bare=False)),
        (_ENV_ASSIGNMENT, lambda m: _assignment_kind(m, bare=True)),
        (_BARE_ASSIGNMENT, lambda m: _assignment_kind(m, bare=True)),
        (_PAIR_ASSIGNMENT, lambda m: _assignment_kind(m, bare=True)),
        (_XML_ELEMENT, lambda m: _assignment_kind(m, bare=True)),
        (_ENV_DEFAULT, lambda m: _assignment_kind(m, bare=False)),
        (_INI_ASSIGNMENT, _ini_kind),
    ]
    for priority, (regex, kind_of) in enumerate(detectors, start=100):
        for match in regex.finditer(text):
            kind = kind_of(match)
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


_PEM_END = re.compile(r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----")
_KEY_LINE = re.compile(r"[A-Za-z0-9+/]+={0,2}|(?:Proc-Type|DEK-Info|Comment): .*")
_KEY_LINE_NOISE = " \t\"'`(),+;"
_MOST_KEY_LINES = 400  # a 16384-bit RSA key in PEM is about 200 lines


def _pem_tail_spans(text: str) -> Iterator[_Span]:
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
            yield _Span(start, end.end(), "private_key", 0)


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
        and (re.search(r"[+/=]", value) is not None or (len(value) >= 24 and _looks_random(value)))
    )


def _key_line_spans(text: str) -> Iterator[_Span]:
    """Runs of base64-only lines: a run with a line of the PEM width (64) is a key block, and any other line
    in it that looks random is key material too."""
    run: list[re.Match[str]] = []

    def flush() -> Iterator[_Span]:
        if not run:
            return
        values = [match.group("secret") for match in run]
        if any(len(value.rstrip("=")) == _PEM_WIDTH or len(value) == _PEM_WIDTH for value in values):
            if not all(re.fullmatch(r"[0-9a-fA-F]+", value) for value in values):  # not hex digests
                yield _Span(run[0].start("secret"), run[-1].end("secret"), "private_key", 0)
            return
        for match in run:
            if _looks_like_key_line(match.group("secret")):
                yield _Span(match.start("secret"), match.end("secret"), "private_key", 0)

    for match in _BASE64_LINE.finditer(text):
        if run and text.count("\n", run[-1].end(), match.start()) > 1:
            yield from flush()
            run = []
        run.append(match)
    yield from flush()


_DETECTORS: list[Callable[[str], Iterator[_Span]]] = [
    _token_spans,
    _pem_tail_spans,
    _key_line_spans,
    _assignment_spans,
]


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
