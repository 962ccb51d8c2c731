"""Safe access to open documents: position checks, binary detection, language of a document.

Every feature goes through here so that an unknown URI, a position past the
end of the document, or a binary blob gets the same clear error everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.workspace import TextDocument, Workspace

from lsp_server.syntax import languages

# In a Python str a valid non-BMP character is one code point, so any code point in this range stands alone.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

# Above this, a document is treated as generated or data, not code someone is typing.
MAX_DOCUMENT_CHARS = 20_000_000


class DocumentError(JsonRpcInvalidParams):
    """A request named a document or position Gearshift cannot use; sent back as InvalidParams."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class DocumentSnapshot:
    """The text of a document at one version, with the cursor as a code-point offset."""

    uri: str
    version: int | None
    text: str
    offset: int
    language_id: str | None
    path: str | None


def find_open_document(workspace: Workspace, uri: str) -> TextDocument | None:
    """The open document at ``uri``, or None; never reads an unopened file from disk behind the editor's back.

    pygls files open documents under the percent-decoded URI (``my%20file.py`` and ``c%3A`` are stored as
    ``my file.py`` and ``c:``), so the lookup decodes the same way ``Workspace.get_text_document`` does.
    """
    return workspace.text_documents.get(unquote(uri))


def open_document(workspace: Workspace, uri: str) -> TextDocument:
    """The open document at ``uri``, or DocumentError when the editor has not opened it."""
    document = find_open_document(workspace, uri)
    if document is None:
        raise DocumentError(f"Document not open: {uri}")
    return document


def offset_at(document: TextDocument, position: types.Position) -> int:
    """Code-point offset of a client position, or DocumentError when its line lies past the end of the document.

    A character past the end of its line is clamped to the line length, as the LSP specification says
    (Position: "If the character value is greater than the line length it defaults back to the line length").
    """
    lines = document.lines
    if position.line > len(lines):
        raise DocumentError(f"Line {position.line} is beyond the end of the document ({len(lines)} lines)")
    if position.line == len(lines):
        return len(document.source)  # the empty line after a final line end: its only position is the end
    line = lines[position.line].rstrip("\r\n")
    units = document.position_codec.client_num_units(line)
    if position.character > units:
        position = types.Position(line=position.line, character=units)
    return document.offset_at_position(position)


def model_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, same length: models and the cloud take UTF-8 only.

    A JSON body may carry ``"\\ud800"`` alone; Python keeps it as one code point that UTF-8 cannot encode.
    """
    return _LONE_SURROGATE.sub("\ufffd", text)


def snapshot(workspace: Workspace, uri: str, position: types.Position) -> DocumentSnapshot:
    document = open_document(workspace, uri)
    text = model_text(document.source)
    offset = offset_at(document, position)
    return DocumentSnapshot(
        uri=uri,
        version=document.version,
        text=text,
        offset=offset,
        language_id=language_of(document.language_id, document.path),
        path=document.path,
    )


def language_of(language_id: str | None, path: str | None) -> str | None:
    """The editor's languageId, else the registry's for the file's extension (None for a language it does not parse:
    such a document gets the plain template either way)."""
    if language_id:
        return language_id
    spec = languages.resolve(None, path)
    return spec.language_ids[0] if spec else None


def looks_binary(text: str, offset: int, window: int = 4096) -> bool:
    """True when the text around the cursor is not something a person types: NUL or many control chars."""
    sample = text[max(0, offset - window) : offset + window]
    if "\x00" in sample or "\ufffd" in sample:
        return True
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    return controls > len(sample) // 100 + 1
