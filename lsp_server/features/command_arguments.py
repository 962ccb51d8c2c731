"""The arguments of Gearshift's commands (docs/protocol.md) as typed values.

pygls 2 structures each annotated parameter of a command handler with the server's cattrs converter, so a
handler declares ``arguments: RefactorArguments`` and receives one.  ``converter()`` is that converter with
the hooks this module adds: strings must be strings (cattrs would turn ``7`` into ``"7"``), and a malformed
argument is refused with one sentence naming the field, not a cattrs exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from lsprotocol import types
from pygls.protocol import default_converter

from lsp_server.errors import RequestRefused


@attrs.frozen
class SelectionArguments:
    """``{"uri", "range"}``: the selection explain and the reviews work on."""

    uri: str
    range: types.Range


@attrs.frozen
class RefactorArguments(SelectionArguments):
    instruction: str | None = None
    """What to change, in the user's words; by default the model's own idea of better code."""


@attrs.frozen
class ReviewArguments(SelectionArguments):
    kind: str = "data_race"
    """``data_race`` or ``security``."""


@attrs.frozen
class EscalateArguments(RefactorArguments):
    task: str = "explain"
    """The command to re-run on the cloud: ``explain``, ``refactor``, ``review`` or ``reviewSecurity``."""


ARGUMENT_TYPES = (SelectionArguments, RefactorArguments, ReviewArguments, EscalateArguments)


class ArgumentError(RequestRefused):
    """A command argument of the wrong shape; answered as InvalidParams with this sentence."""


def converter() -> cattrs.Converter:
    """pygls' converter plus strict, readable structuring of the command arguments (for the server)."""
    conv = default_converter()
    for kind in ARGUMENT_TYPES:
        conv.register_structure_hook(kind, _structure_hook(conv, kind))
    return conv


def _text(value: Any, kind: Any) -> str | None:
    if value is None and kind is not str:  # an optional string
        return None
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _structure_hook(conv: cattrs.Converter, kind: type) -> Any:
    attrs.resolve_types(kind)
    strict: dict[str, Any] = {
        field.name: override(struct_hook=_text) for field in attrs.fields(kind) if field.type in (str, str | None)
    }
    build: Callable[[Any, type], Any] = make_dict_structure_fn(kind, conv, **strict)
    expected = "{" + ", ".join(field.name for field in attrs.fields(kind)) + "}"

    def structure_arguments(value: Any, _kind: type) -> Any:
        if not isinstance(value, dict):
            raise ArgumentError(f"Expected the argument {expected}, got {type(value).__name__}")
        try:
            return build(value, kind)
        except cattrs.BaseValidationError as exc:
            problems = "; ".join(cattrs.transform_error(exc, path="argument"))
            raise ArgumentError(f"Expected the argument {expected}: {problems}") from None

    return structure_arguments
