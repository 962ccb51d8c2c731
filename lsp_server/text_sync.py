"""LSP text synchronisation: documents whose lines and positions follow the specification exactly.

pygls splits lines with ``str.splitlines``, which also breaks at ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``,
``\\u2028`` and ``\\u2029``; an editor does not, so after one edit in such a file the server's text differs from
the editor's. LSP ends lines only at ``\\n``, ``\\r\\n`` and ``\\r``, counts characters in the negotiated code
units (UTF-16 by default), and clamps a character past the end of its line to the line's end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace
from pygls.workspace.position_codec import PositionCodec

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def lsp_lines(text: str) -> list[str]:
    """``text`` split after each LSP line end (``\\n``, ``\\r\\n``, ``\\r``), line ends kept."""
    return _LINE.findall(text)


def line_content(line: str) -> str:
    """A line without its line end."""
    return line.rstrip("\r\n")


def offset_in_line(line: str, character: int, codec: PositionCodec) -> int:
    """Code points before ``character`` code units of ``line``, clamped to the line's end.

    A character inside a surrogate pair (UTF-16) or a multi-byte sequence (UTF-8) rounds down to the code point's start.
    """
    budget = max(character, 0)
    for index, char in enumerate(line_content(line)):
        budget -= codec.client_num_units(char)
        if budget < 0:
            return index
    return len(line_content(line))


def offset_at(lines: Sequence[str], position: types.Position, codec: PositionCodec) -> int:
    """Code-point offset of a client position; a line past the end means the end of the document."""
    line = max(position.line, 0)
    if line >= len(lines):
        return sum(len(text) for text in lines)
    return sum(len(text) for text in lines[:line]) + offset_in_line(lines[line], position.character, codec)


class LspTextDocument(TextDocument):
    """A pygls TextDocument whose lines, positions and incremental edits follow LSP (see the module docstring)."""

    _lines_of: str | None = None
    _lines: tuple[str, ...] = ()

    @property
    def lines(self) -> Sequence[str]:
        source = self.source
        if source is not self._lines_of:  # strings are immutable: the same object means the same lines
            self._lines, self._lines_of = tuple(lsp_lines(source)), source
        return self._lines

    def offset_at_position(self, client_position: types.Position) -> int:
        return offset_at(self.lines, client_position, self.position_codec)

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        lines = self.lines
        start = offset_at(lines, change.range.start, self.position_codec)
        end = max(start, offset_at(lines, change.range.end, self.position_codec))
        source = self.source
        self._source = source[:start] + change.text + source[end:]


class LspWorkspace(Workspace):
    """A pygls Workspace that keeps its documents as LspTextDocument."""

    @classmethod
    def like(cls, workspace: Workspace) -> LspWorkspace:
        """A new, empty LspWorkspace with ``workspace``'s root, folders, sync kind and position encoding."""
        return cls(
            workspace.root_uri,
            workspace._sync_kind,
            list(workspace.folders.values()),
            workspace.position_encoding,
        )

    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return LspTextDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self.position_codec,
        )
