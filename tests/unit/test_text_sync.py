"""Documents follow LSP text synchronisation: checked against an independent reference model, edit after edit."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace import Workspace

from lsp_server.documents import offset_at
from lsp_server.text_sync import LspWorkspace

URI = "file:///tmp/sync.py"


class ReferenceDocument:
    """LSP text sync written from the specification, as directly as possible: UTF-16 code units; only \\n, \\r\\n
    and \\r end lines; a character past its line's end means the end of the line; a line past the last line means
    the end of the document; a position inside a surrogate pair means the start of that character."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _line_starts(self) -> list[int]:
        starts, i = [0], 0
        while i < len(self.text):
            if self.text[i] == "\r" and self.text[i + 1 : i + 2] == "\n":
                i += 2
                starts.append(i)
                continue
            if self.text[i] in "\r\n":
                starts.append(i + 1)
            i += 1
        return starts

    def offset(self, line: int, character: int) -> int:
        starts = self._line_starts()
        if line >= len(starts):
            return len(self.text)
        start = starts[line]
        end = starts[line + 1] if line + 1 < len(starts) else len(self.text)
        content = self.text[start:end].removesuffix("\n").removesuffix("\r")
        units = 0
        for index, char in enumerate(content):
            width = 2 if ord(char) > 0xFFFF else 1
            if units + width > character:
                return start + index
            units += width
        return start + len(content)

    def apply(self, start: tuple[int, int], end: tuple[int, int], new_text: str) -> None:
        a, b = self.offset(*start), self.offset(*end)
        b = max(a, b)
        self.text = self.text[:a] + new_text + self.text[b:]


def open_workspace(text: str) -> Workspace:
    workspace = LspWorkspace.like(Workspace(None))
    workspace.put_text_document(types.TextDocumentItem(uri=URI, language_id="python", version=1, text=text))
    return workspace


def change(workspace: Workspace, start: tuple[int, int], end: tuple[int, int], text: str, version: int = 2) -> str:
    workspace.update_text_document(
        types.VersionedTextDocumentIdentifier(uri=URI, version=version),
        types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(*start), end=types.Position(*end)), text=text
        ),
    )
    return workspace.get_text_document(URI).source


def test_form_feed_and_other_unicode_line_breaks_do_not_end_lines():
    # The issue's case: pygls' splitlines made "\f" a line end, so the edit landed on the first line.
    assert change(open_workspace("a\u000cbbbb\nc"), (1, 0), (1, 0), "XY") == "a\fbbbb\nXYc"
    for breaker in ["\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]:
        assert change(open_workspace(f"a{breaker}b\nc"), (1, 1), (1, 1), "!") == f"a{breaker}b\nc!"


def test_lone_carriage_return_and_crlf_end_lines():
    assert change(open_workspace("a\rb\r\nc"), (1, 1), (1, 1), "1") == "a\rb1\r\nc"
    assert change(open_workspace("a\rb\r\nc"), (2, 0), (2, 1), "Z") == "a\rb\r\nZ"


def test_utf16_positions_count_astral_characters_twice():
    # "😋" is two UTF-16 code units: character 3 is after it.
    assert change(open_workspace("x😋y\n"), (0, 3), (0, 3), "!") == "x😋!y\n"


def test_positions_past_line_or_document_end_are_clamped_not_lost():
    assert change(open_workspace("ab\ncd\n"), (0, 99), (0, 99), "!") == "ab!\ncd\n"
    assert change(open_workspace("ab\ncd"), (7, 0), (9, 0), "!") == "ab\ncd!"  # pygls dropped this text


def test_request_positions_use_the_same_line_rules():
    workspace = open_workspace("a\u2028b\nc")
    assert offset_at(workspace.get_text_document(URI), types.Position(line=1, character=0)) == 4


_TEXT = st.lists(
    st.sampled_from(list("ab \t") + ["\n", "\r", "\r\n", "\f", "\v", "\x85", "\u2028", "é", "😋", "\x1c"]),
    max_size=40,
).map("".join)
_POSITION = st.tuples(st.integers(0, 8), st.integers(0, 12))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=_TEXT, edits=st.lists(st.tuples(_POSITION, _POSITION, _TEXT), max_size=12))
def test_incremental_edits_match_the_reference_model(initial, edits):
    workspace = open_workspace(initial)
    reference = ReferenceDocument(initial)
    for version, (start, end, text) in enumerate(edits, start=2):
        if start > end:
            start, end = end, start  # a reversed range is a client bug; tested as ordered
        reference.apply(start, end, text)
        assert change(workspace, start, end, text, version) == reference.text
