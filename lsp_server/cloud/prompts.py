"""System and user prompts for explain, refactor and the two reviews.

The same prompts go to the local instruct model (a 0.5B-1.5B Qwen2.5-Coder
through its chat template, see ``lsp_server.inference.chat``) and to the cloud
model, so they are short and literal: small models follow one clear
instruction and an example of the output shape better than a long brief.
The prompts carry the code and the language name only, never a file path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PromptTask = Literal["explain", "refactor", "review_data_race", "review_security"]


@dataclass(frozen=True)
class TaskPrompt:
    system: str
    user: str


_SYSTEM_BASE = "You are Gearshift, a precise senior software engineer inside a code editor."

_SYSTEMS: dict[str, str] = {
    "explain": (
        f"{_SYSTEM_BASE} Explain code clearly and briefly in Markdown: what it does, then anything surprising."
    ),
    "refactor": (
        f"{_SYSTEM_BASE} Rewrite code as asked. Reply with only the rewritten code in one fenced code block, "
        "no explanation. Keep the behaviour and indentation unless asked otherwise."
    ),
    "review_data_race": (
        f"{_SYSTEM_BASE} Review code for data races and concurrency bugs: shared mutable state, missing locks, "
        "check-then-act, unsafe publication, async tasks or threads touching the same data, deadlocks."
    ),
    "review_security": (
        f"{_SYSTEM_BASE} Review code for security bugs: injection, unsafe deserialization, path traversal, "
        "missing authentication or authorization checks, secrets in code, weak cryptography, SSRF, XSS."
    ),
}

_REVIEW_FORMAT = (
    "List each problem as `- **line N** (severity): problem. Fix: ...`, most severe first. "
    "If there is none, say `No issues found.` Do not invent problems."
)


def _fence(code: str) -> str:
    """A backtick fence longer than any run of backticks inside ``code``."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    return "`" * max(3, longest + 1)


def _code_block(code: str, language: str) -> str:
    fence = _fence(code)
    return f"{fence}{language}\n{code.rstrip()}\n{fence}"


def explain_prompt(code: str, *, language: str) -> TaskPrompt:
    return TaskPrompt(_SYSTEMS["explain"], f"Explain this {language} code:\n\n{_code_block(code, language)}")


def refactor_prompt(code: str, *, language: str, instruction: str | None = None) -> TaskPrompt:
    ask = (
        instruction.strip() if instruction and instruction.strip() else "Improve readability and simplicity."
    )
    user = (
        f"Rewrite this {language} code. {ask}\n\n{_code_block(code, language)}\n\n"
        f"Answer with only the rewritten code in one ```{language} block."
    )
    return TaskPrompt(_SYSTEMS["refactor"], user)


def review_prompt(code: str, *, language: str, kind: Literal["data_race", "security"]) -> TaskPrompt:
    what = "data races and concurrency bugs" if kind == "data_race" else "security vulnerabilities"
    user = f"Review this {language} code for {what}. {_REVIEW_FORMAT}\n\n{_code_block(code, language)}"
    return TaskPrompt(_SYSTEMS[f"review_{kind}"], user)


def build_prompt(task: PromptTask, code: str, *, language: str, instruction: str | None = None) -> TaskPrompt:
    """The prompt for ``task`` (a router ``TaskKind`` other than "completion")."""
    if task == "explain":
        return explain_prompt(code, language=language)
    if task == "refactor":
        return refactor_prompt(code, language=language, instruction=instruction)
    if task == "review_data_race":
        return review_prompt(code, language=language, kind="data_race")
    if task == "review_security":
        return review_prompt(code, language=language, kind="security")
    raise ValueError(f"no prompt for task {task!r}")


_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})[^\n`]*\n", re.MULTILINE)


def extract_code_block(answer: str, *, allow_bare: bool = False) -> str | None:
    """The code of the first fenced block in a refactor answer, or None.

    An unterminated block (the answer hit ``max_tokens``) gives None, so a
    cut-off rewrite is never applied.  An answer without any fence gives None
    unless ``allow_bare``, when the whole (non-empty) answer is taken as code.
    """
    opening = _FENCE_OPEN.search(answer)
    if opening is None:
        stripped = answer.strip("\n")
        return stripped + "\n" if allow_bare and stripped.strip() else None
    fence = opening.group("fence")
    closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
    end = closing.search(answer, opening.end())
    if end is None:
        return None
    return answer[opening.end() : end.start()]
