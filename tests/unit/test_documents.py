"""Positions from the client: UTF-16 units, out of range, unknown documents, binary text."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pygls.workspace import Workspace

from lsp_server.documents import DocumentError, language_of, looks_binary, offset_at, open_document, snapshot


@pytest.fixture
def workspace():
    ws = Workspace(None, position_encoding=types.PositionEncodingKind.Utf16)
    ws.put_text_document(
        types.TextDocumentItem(uri="file:///a.py", language_id="python", version=3, text="x = '😀'\ny = 2\n")
    )
    return ws


def test_utf16_position_maps_to_code_points(workspace):
    document = open_document(workspace, "file:///a.py")
    # '😀' is two UTF-16 units but one code point: the closing quote is at unit 7, code point 6.
    assert offset_at(document, types.Position(line=0, character=7)) == 6
    assert offset_at(document, types.Position(line=1, character=5)) == len("x = '😀'\ny = 2")


@pytest.mark.parametrize(
    "line, character, message",
    [
        pytest.param(7, 0, "beyond the end of the document", id="past-document-end"),
    ],
)
def test_out_of_range_positions_are_clear_errors(workspace, line, character, message):
    with pytest.raises(DocumentError, match=message):
        snapshot(workspace, "file:///a.py", types.Position(line=line, character=character))


@pytest.mark.parametrize(
    "line, character, offset",
    [
        pytest.param(0, 99, len("x = '😀'"), id="past-first-line-end"),
        pytest.param(1, 6, len("x = '😀'\ny = 2"), id="one-past-last-line-end"),
        pytest.param(2, 5, len("x = '😀'\ny = 2\n"), id="past-end-of-final-empty-line"),
    ],
)
def test_character_past_line_end_is_clamped_to_the_line_length(workspace, line, character, offset):
    # LSP Position: "If the character value is greater than the line length it defaults back to the line length."
    doc = snapshot(workspace, "file:///a.py", types.Position(line=line, character=character))
    assert doc.offset == offset


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("file:///home/dev/my%20file.py", id="space"),
        pytest.param("file:///home/dev/caf%C3%A9.py", id="non-ascii"),
        pytest.param("file:///c%3A/Users/dev/app.py", id="vscode-windows-drive"),
    ],
)
def test_percent_encoded_uris_find_the_open_document(uri):
    # pygls stores documents under the decoded URI; requests carry the encoded one the editor opened.
    ws = Workspace(None, position_encoding=types.PositionEncodingKind.Utf16)
    ws.put_text_document(types.TextDocumentItem(uri=uri, language_id="python", version=1, text="ab\n"))
    ws.update_text_document(
        types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(line=0, character=2), end=types.Position(line=0, character=2)),
            text="c",
        ),
    )
    doc = snapshot(ws, uri, types.Position(line=0, character=3))
    assert (doc.text, doc.offset, doc.version) == ("abc\n", 3, 2)


def test_unopened_file_on_disk_is_not_read(tmp_path):
    path = tmp_path / "on disk.py"
    path.write_text("secret = 1\n")
    ws = Workspace(None)
    with pytest.raises(DocumentError, match="not open"):
        open_document(ws, path.as_uri())


def test_end_of_document_is_a_valid_position(workspace):
    doc = snapshot(workspace, "file:///a.py", types.Position(line=2, character=0))
    assert doc.offset == len(doc.text)
    assert doc.version == 3 and doc.language_id == "python"


def test_unknown_document(workspace):
    with pytest.raises(DocumentError, match="not open"):
        snapshot(workspace, "file:///elsewhere.py", types.Position(line=0, character=0))


@pytest.mark.parametrize(
    "text, binary",
    [
        pytest.param("def f():\n    return 1\n", False, id="code"),
        pytest.param("\x00\x01\x02" * 100, True, id="nul-bytes"),
        pytest.param("caf\ufffd" * 10, True, id="replacement-chars"),
        pytest.param("tabs\tand\fform feeds\n" * 10, False, id="whitespace-controls"),
    ],
)
def test_looks_binary(text, binary):
    assert looks_binary(text, len(text) // 2) is binary


@pytest.mark.parametrize(
    "language_id, path, expected",
    [
        pytest.param("python", "notes.txt", "python", id="the-editors-id-wins"),
        pytest.param(None, "/src/app.tsx", "typescriptreact", id="tsx-from-the-extension"),
        pytest.param("", "/src/lib.RS", "rust", id="empty-id-extension-any-case"),
        pytest.param(None, "/src/x.h++", "cpp", id="every-registry-extension"),
        pytest.param(None, "/notes.md", None, id="a-language-without-a-parser"),
        pytest.param(None, None, None, id="nothing-known"),
    ],
)
def test_language_of_a_document_without_a_language_id(language_id, path, expected):
    assert language_of(language_id, path) == expected
