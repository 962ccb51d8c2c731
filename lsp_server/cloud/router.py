"""The one place that decides whether a task may leave the machine.

``route`` is a pure function of its arguments: no I/O, no globals, no clock.
Every cloud request starts with a ``RouteDecision`` from here, so this module
is the thing to read (and the thing the tests pin down) when auditing what
Gearshift sends.

Precedence, strongest first:

1. Inline completion is always local.
2. A task that is not critical is local (explain and refactor by default).
3. A critical task is still local when ``local_only`` is set, the cloud is
   disabled, the file matches a ``never_send`` glob, or no API key is
   configured; the reason says which.
4. Otherwise it goes to the cloud.

Critical means: a data-race or security review, explicit escalation by the
user, a ``gearshift: critical`` marker in the text, or a file matching
``critical_globs``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlparse

from lsp_server.settings import CloudSettings

TaskKind = Literal["completion", "explain", "refactor", "review_data_race", "review_security"]
Destination = Literal["local", "cloud"]

CLOUD_NOT_CONFIGURED = (
    "cloud not configured: set ANTHROPIC_API_KEY or gearshift.cloud.apiKey; answered locally"
)

_TASK_NAMES: dict[str, str] = {
    "completion": "inline completion",
    "explain": "explain",
    "refactor": "refactor",
    "review_data_race": "data-race review",
    "review_security": "security review",
}

# "gearshift: critical" in any comment syntax (#, //, /* */, --, ;, <!-- -->, docstrings): the marker
# itself is distinctive enough that we do not parse comments, only require it to stand alone.
CRITICAL_MARKER = re.compile(r"(?<![\w-])gearshift\s*:\s*critical(?![\w-])", re.IGNORECASE)


@dataclass(frozen=True)
class RouteDecision:
    """Where one task runs, and why, in words fit to show the user."""

    destination: Destination
    """"local" or "cloud"."""

    critical: bool
    """The task was critical (a review, escalation, marker or critical glob), whether or not it went to the cloud."""

    reason: str
    """Why, e.g. "critical data-race review" or "never_send matched **/.env; ...". Never contains file content."""

    label: str
    """What the editor shows next to the answer, e.g. "☁ cloud (claude-sonnet-4-5): critical data-race review"."""

    @property
    def is_cloud(self) -> bool:
        return self.destination == "cloud"


def route(
    task: TaskKind,
    *,
    file_path: str | None,
    text: str,
    settings: CloudSettings,
    explicit_escalation: bool,
    cloud_available: bool,
    local_model: str = "local model",
) -> RouteDecision:
    """Decide where ``task`` runs.

    ``text`` is what would be sent: pass the whole document when a file-level
    ``gearshift: critical`` marker should count, not only the selection.
    ``file_path`` is an absolute or relative path, or a ``file://`` URI
    (None for an unsaved buffer).  ``cloud_available`` is whether an API key
    is configured (``CloudClient.available``).  ``local_model`` only feeds the
    label.
    """
    task_name = _TASK_NAMES.get(task)
    if task_name is None:
        raise ValueError(f"unknown task kind {task!r}")

    def local(reason: str, critical: bool) -> RouteDecision:
        return RouteDecision("local", critical, reason, f"local ({local_model}): {reason}")

    if task == "completion":
        return local("inline completion always runs locally", False)

    critical_reason = _critical_reason(task, task_name, file_path, text, settings, explicit_escalation)
    if critical_reason is None:
        return local(f"{task_name} runs locally by default", False)

    kept = f"{critical_reason} answered locally"
    if settings.local_only:
        return local(f"local_only is set; {kept}", True)
    if not settings.enabled:
        return local(f"cloud disabled (gearshift.cloud.enabled is false); {kept}", True)
    if file_path is not None:
        blocked_by = never_send_match(file_path, settings)
        if blocked_by is not None:
            return local(f"never_send matched {blocked_by}; {kept}", True)
    if not cloud_available:
        return local(CLOUD_NOT_CONFIGURED, True)
    return RouteDecision("cloud", True, critical_reason, f"☁ cloud ({settings.model}): {critical_reason}")


def _critical_reason(
    task: str,
    task_name: str,
    file_path: str | None,
    text: str,
    settings: CloudSettings,
    explicit_escalation: bool,
) -> str | None:
    if explicit_escalation:
        return f"explicit escalation of {task_name}"
    if task.startswith("review_"):
        return f"critical {task_name}"
    if CRITICAL_MARKER.search(text):
        return f"{task_name} of a file marked gearshift: critical"
    if file_path is not None:
        glob = first_matching_glob(file_path, settings.critical_globs, case_sensitive=True)
        if glob is not None:
            return f"{task_name} of a file matching critical_globs {glob}"
    return None


# -- globs ------------------------------------------------------------------------------------------


def never_send_match(path: str, settings: CloudSettings) -> str | None:
    """The ``never_send`` glob that keeps ``path`` on the machine, or None.

    Case-insensitive, and a glob that matches a folder covers every file in it
    (``secrets``, ``**/.ssh``, ``config/*`` keep ``secrets/settings.py``,
    ``.ssh/config`` and ``config/prod/db.yaml`` local), as in ``.gitignore``.
    """
    return first_matching_glob(path, settings.never_send, case_sensitive=False, folders=True)


def first_matching_glob(
    path: str, patterns: Iterable[str], *, case_sensitive: bool = True, folders: bool = False
) -> str | None:
    """The first of ``patterns`` that ``path`` matches, or None (``folders``: as in ``glob_match``)."""
    normalized = normalize_path(path)
    for pattern in patterns:
        if _glob_regex(pattern, case_sensitive, folders).fullmatch(normalized):
            return pattern
    return None


def glob_match(path: str, pattern: str, *, case_sensitive: bool = True, folders: bool = False) -> bool:
    """Whether ``path`` matches ``pattern`` (VS Code / gitignore-style glob).

    ``*`` and ``?`` stay within one path segment, ``**`` spans any number of
    segments (including none), ``[abc]``/``[!abc]`` are character classes and
    ``{a,b}`` alternatives.  A pattern starting with ``/`` is anchored to the
    absolute path; any other pattern may match at any directory boundary, so
    ``*.pem`` and ``src/secret/*`` match both relative and absolute paths.
    ``dir/**`` matches every file under ``dir``, at any depth, and so does a
    pattern ending in ``/`` (``dir/``), which names a folder.  Otherwise a
    pattern matches files, not the directories above them, unless ``folders``
    is set: then a pattern that matches any folder on the path matches the
    file too (``*secret*`` matches ``secrets/settings.py``).
    """
    return _glob_regex(pattern, case_sensitive, folders).fullmatch(normalize_path(path)) is not None


def normalize_path(path: str) -> str:
    """A ``/``-separated path from a path, a Windows path, or a ``file://`` URI."""
    if path.startswith("file:"):
        parsed = urlparse(path)
        path = unquote(parsed.path)
        if re.match(r"^/[A-Za-z]:", path):  # file:///C:/x -> C:/x
            path = path[1:]
    return path.replace("\\", "/")


@functools.lru_cache(maxsize=512)
def _glob_regex(pattern: str, case_sensitive: bool, folders: bool = False) -> re.Pattern[str]:
    pattern = pattern.replace("\\", "/")
    folder = pattern.endswith("/") and pattern.strip("/") != ""
    if folder:
        pattern = pattern.rstrip("/")
    if pattern.startswith("/") or re.match(r"^[A-Za-z]:/", pattern):
        body = _translate(pattern)
    else:
        body = "(?:.*/)?" + _translate(pattern)
    if folder:
        body += "/.+"  # "dir/" names a folder: every file under it, not a file called dir
    elif folders:
        body += "(?:/.+)?"  # the pattern may match any folder on the path
    return re.compile(body, 0 if case_sensitive else re.IGNORECASE)


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            whole_segment = (i == 0 or pattern[i - 1] == "/") and (j == n or pattern[j] == "/")
            if j - i >= 2 and whole_segment:
                if j == n:
                    out.append(".*")
                else:
                    out.append("(?:[^/]*/)*")
                    j += 1  # the "/" after "**" is part of the zero-or-more directories
            else:
                out.append("[^/]*")
            i = j
            continue
        if char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                members = pattern[i + 1 : end]
                negate = members[:1] in ("!", "^")
                if negate:
                    members = members[1:]
                members = members.replace("\\", "\\\\")
                out.append(f"[{'^/' if negate else ''}{members}]")
                i = end
        elif char == "{":
            end = _matching_brace(pattern, i)
            if end == -1:
                out.append(re.escape(char))
            else:
                alternatives = _split_top_level(pattern[i + 1 : end])
                out.append("(?:" + "|".join(_translate(alt) for alt in alternatives) + ")")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _matching_brace(pattern: str, start: int) -> int:
    depth = 0
    for index in range(start, len(pattern)):
        if pattern[index] == "{":
            depth += 1
        elif pattern[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1


def _split_top_level(inner: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in inner:
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += char == "{"
        depth -= char == "}"
        current.append(char)
    parts.append("".join(current))
    return parts
