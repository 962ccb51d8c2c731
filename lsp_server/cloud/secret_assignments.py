"""Secrets recognised by the name they are assigned to: a *literal* value given to a name that says it is
secret (``password``, ``secret``, ``token``, ``api_key``, ...) in the forms Python (f-strings too), JS/TS, Go,
JSON, YAML, shell and ``.env`` files use, ``name=value`` pairs in connection strings, query strings and command
lines, XML elements, the fallback of an environment lookup, and INI values shaped like a credential.

Expressions are never secrets (``password = form.password`` stays): the model needs them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from lsp_server.cloud.secret_tokens import Span, looks_random

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


def _ini_kind(match: re.Match[str]) -> str | None:
    value = match.group("secret")
    if (_IDENTIFIER_PATH.match(value) and not looks_random(value)) or _NUMBER.match(value):
        return None  # `api_key = settings.api_key`, `password = None`, `CHARS_PER_TOKEN = 3.5` are code
    kind = _assignment_kind(match, bare=True)
    if kind == "token" and not _looks_like_credential(value):
        return None
    return kind


def assignment_spans(text: str) -> Iterator[Span]:
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
                yield Span(start, end, kind, priority)
