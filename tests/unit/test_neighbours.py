"""Cross-file context: outlines of other recent files, imported ones first, bounded, stable, never-send excluded."""

from __future__ import annotations

from lsp_server.completion.fim import TEMPLATES
from lsp_server.completion.neighbours import RecentFiles, outline

GEOMETRY = '''"""Shapes."""
import math

UNIT_SCALE = 2.5


class Circle:
    """A circle."""

    def __init__(self, radius: float) -> None:
        self.radius = radius

    def area(self) -> float:
        return math.pi * self.radius ** 2


def scaled(shape: Circle, factor: float) -> Circle:
    return Circle(shape.radius * factor)
'''

APP = "from geometry import Circle, scaled\n\n\ndef main():\n    c = "


def count(text: str) -> int:
    return len(text) // 4 + 1


def test_outline_keeps_signatures_and_constants_not_bodies():
    assert outline(GEOMETRY).splitlines() == [
        "UNIT_SCALE = 2.5",
        "class Circle:",
        "    def __init__(self, radius: float) -> None:",
        "    def area(self) -> float:",
        "def scaled(shape: Circle, factor: float) -> Circle:",
    ]


def test_imported_files_come_first_and_nearest_the_current_file():
    ring = RecentFiles()
    ring.seen("file:///p/geometry.py", "/p/geometry.py", GEOMETRY)
    ring.seen("file:///p/util.py", "/p/util.py", "def helper(x):\n    return x\n")
    ring.seen("file:///p/app.py", "/p/app.py", APP)
    chunks = ring.chunks("file:///p/app.py", APP, 500, count)
    assert [name for name, _ in chunks] == ["util.py", "geometry.py"]  # geometry (imported) is last: nearest
    assert "def scaled(shape: Circle" in chunks[-1][1]


def test_budget_current_file_duplicates_and_never_send_are_left_out():
    ring = RecentFiles()
    ring.seen("file:///p/geometry.py", "/p/geometry.py", GEOMETRY)
    ring.seen("file:///p/copy.py", "/p/copy.py", GEOMETRY)  # the same outline twice
    ring.seen("file:///p/secrets/keys.py", "/p/secrets/keys.py", "def token():\n    return 'x'\n")
    ring.seen("file:///p/app.py", "/p/app.py", APP)
    chunks = ring.chunks("file:///p/app.py", APP, 500, count, excluded=lambda path: "/secrets/" in path)
    assert [name for name, _ in chunks] == ["geometry.py"] or [name for name, _ in chunks] == ["copy.py"]
    assert ring.chunks("file:///p/app.py", APP, 5, count) == ()  # nothing fits
    assert ring.chunks("file:///p/app.py", APP, 0, count) == ()  # off


def test_the_ring_is_bounded_and_stable_while_typing_in_the_current_file():
    ring = RecentFiles(max_recent=2)
    ring.seen("file:///p/a.py", "/p/a.py", "def a():\n    pass\n")
    ring.seen("file:///p/b.py", "/p/b.py", "def b():\n    pass\n")
    ring.seen("file:///p/c.py", "/p/c.py", "def c():\n    pass\n")  # a.py is dropped
    first = ring.chunks("file:///p/c.py", "x = 1\n", 500, count)
    assert [name for name, _ in first] == ["b.py"]
    ring.seen("file:///p/c.py", "/p/c.py", "x = 12\n")  # typing in c.py
    assert ring.chunks("file:///p/c.py", "x = 12\n", 500, count) == first


def test_templates_place_other_files_before_the_current_one():
    extra = [("geometry.py", "def scaled(shape, factor):")]
    qwen = TEMPLATES["qwen"].build("c = ", "\n", "app.py", repo="proj", extra=extra)
    assert qwen == ("<|repo_name|>proj\n<|file_sep|>geometry.py\ndef scaled(shape, factor):\n"
                    "<|file_sep|>app.py\n<|fim_prefix|>c = <|fim_suffix|>\n<|fim_middle|>")
    starcoder = TEMPLATES["starcoder"].build("c = ", "\n", "app.py", extra=extra)
    assert starcoder.startswith("<fim_prefix># Path: geometry.py\ndef scaled(shape, factor):\n\n# Path: app.py\nc = ")


def test_definitions_the_file_imports_come_first_from_disk_and_share_the_budget(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "geometry.py").write_text(GEOMETRY)
    (tmp_path / "util.py").write_text("def helper(x):\n    return x\n")
    app = tmp_path / "app.py"
    app.write_text(APP)
    ring = RecentFiles()
    ring.seen((tmp_path / "util.py").as_uri(), str(tmp_path / "util.py"), "def helper(x):\n    return x\n")
    ring.seen((tmp_path / "geometry.py").as_uri(), str(tmp_path / "geometry.py"), GEOMETRY)  # open and imported
    chunks = ring.chunks(app.as_uri(), APP, 500, count)  # the root: the folder with pyproject.toml
    assert [name for name, _ in chunks] == ["geometry.py", "util.py"]  # imports first; geometry's outline not twice
    assert chunks[0][1] == ('class Circle:\n    """A circle."""\n    def __init__(self, radius: float) -> None:\n'
                            "    def area(self) -> float:\ndef scaled(shape: Circle, factor: float) -> Circle:")
    assert ring.chunks(app.as_uri(), APP + "Circ", 500, count) == chunks  # typing: the same chunks, the KV cache kept
    assert ring.chunks(app.as_uri(), APP, 20, count) == (chunks[1],)  # the definitions do not fit, the outline does
    never_send = ring.chunks(app.as_uri(), APP, 500, count, excluded=lambda path: path.endswith("geometry.py"))
    assert [name for name, _ in never_send] == ["util.py"]
    outlines_only = RecentFiles(read_imports=False)
    outlines_only.seen((tmp_path / "geometry.py").as_uri(), str(tmp_path / "geometry.py"), GEOMETRY)
    assert outlines_only.chunks(app.as_uri(), APP, 500, count) == (("geometry.py", outline(GEOMETRY)),)


def test_an_explicit_root_bounds_what_imports_may_read(tmp_path):
    (tmp_path / "geometry.py").write_text(GEOMETRY)
    (tmp_path / "sub").mkdir()
    app = tmp_path / "sub" / "app.py"
    app.write_text("from ..geometry import scaled\n")
    ring = RecentFiles()
    assert ring.chunks(app.as_uri(), app.read_text(), 500, count, root=tmp_path / "sub") == ()
    assert [name for name, _ in ring.chunks(app.as_uri(), app.read_text(), 500, count, root=tmp_path)] == [
        "geometry.py"]
    assert ring.chunks("untitled:Untitled-1", app.read_text(), 500, count) == ()  # not a file: nothing to resolve
