"""Definitions of imported names from disk: resolution (relative, aliases, packages, JS/TS files and index files),
what a definition shows, never-send and out-of-root files, binary files, caching by mtime, budget, stability."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lsp_server.completion.imports import ImportedDefinitions, workspace_root

SHAPES = '''"""Shapes."""
import math

UNIT_SCALE = 2.5
__all__ = ["Circle"]


class Circle:
    """A circle.

    More words.
    """

    sides: int = 0

    def __init__(self, radius: float) -> None:
        self.radius = radius

    def area(self) -> float:
        return math.pi * self.radius ** 2

    def _cached(self):
        return 1


# Grows or shrinks a circle.
def scaled(shape: Circle, factor: float) -> Circle:
    return Circle(shape.radius * factor)


def unused():
    """Not imported."""
'''


def count(text: str) -> int:
    return len(text) // 4 + 1


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def chunks(root: Path, document: str, text: str | None = None, budget: int = 2000, excluded=lambda _p: False,
           reader: ImportedDefinitions | None = None) -> dict[str, str]:
    """{path relative to root: chunk text} for ``document`` (relative to ``root``)."""
    path = root / document
    found, spent = (reader or ImportedDefinitions()).chunks(
        path, path.read_text() if text is None else text, root, budget, count, excluded)
    assert spent <= budget
    return {file.relative_to(root.resolve()).as_posix(): body for file, body in found}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path, {
        "pyproject.toml": "",
        "pkg/__init__.py": "from .shapes import Circle\n",
        "pkg/shapes.py": SHAPES,
        "pkg/util.py": "def helper(x):\n    return x\n\n\nclass Box:\n    def put(self, item): ...\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/deep.py": "from ..shapes import scaled as grow, Circle\nfrom .. import util\n\nc = ",
    })
    return tmp_path


def test_from_import_shows_signatures_first_docstring_or_comment_lines_and_public_members(project: Path):
    write(project, {"pkg/app.py": "from .shapes import Circle, scaled\n\nc = "})
    body = chunks(project, "pkg/app.py")["pkg/shapes.py"]
    assert body.splitlines() == [
        "class Circle:",
        '    """A circle."""',
        "    sides: int = 0",
        "    def __init__(self, radius: float) -> None:",
        "    def area(self) -> float:",
        "# Grows or shrinks a circle.",
        "def scaled(shape: Circle, factor: float) -> Circle:",
    ]


def test_relative_imports_aliases_and_submodules(project: Path):
    found = chunks(project, "pkg/sub/deep.py")
    assert set(found) == {"pkg/shapes.py", "pkg/util.py"}
    assert "def scaled(shape: Circle" in found["pkg/shapes.py"]  # ``scaled as grow``: the original name's definition
    assert "class Circle:" in found["pkg/shapes.py"]
    assert found["pkg/util.py"] == "def helper(x):\nclass Box:\n    def put(self, item):"  # a submodule: outline


def test_absolute_imports_resolve_from_the_root_and_the_document_package(project: Path):
    write(project, {
        "src/lib/tool.py": "def run(argv):\n    pass\n",
        "pkg/app.py": "import pkg.util\nimport lib.tool as t\nfrom pkg import Circle\nimport os\n\nx = ",
    })
    found = chunks(project, "pkg/app.py")
    assert found["pkg/util.py"].startswith("def helper(x):")  # ``import a.b``: the module's outline
    assert found["src/lib/tool.py"] == "def run(argv):"  # from the root's src/ folder
    assert "class Circle:" in found["pkg/shapes.py"]  # re-exported by pkg/__init__.py: followed to its definition


def test_missing_modules_and_names_contribute_nothing(project: Path):
    write(project, {"pkg/app.py": "from .nowhere import x\nfrom .shapes import Missing\nimport numpy\n\nx = "})
    assert chunks(project, "pkg/app.py") == {}


def test_never_send_files_are_not_read_nor_followed_through(project: Path):
    write(project, {"pkg/app.py": "from .shapes import Circle\nfrom pkg import Circle as C2\nfrom . import util\n"})
    found = chunks(project, "pkg/app.py", excluded=lambda path: path.endswith("shapes.py"))
    assert set(found) == {"pkg/util.py"}


def test_files_outside_the_root_are_never_read(tmp_path: Path):
    root = tmp_path / "repo"
    write(tmp_path, {
        "outside.py": "def secret():\n    pass\n",
        "repo/.git/HEAD": "",
        "repo/app.py": "from ..outside import secret\nfrom .linked import secret as s2\nimport outside\n",
        "repo/lib/index.js": "export function secret() {}\n",
        "repo/lib/app.js": "import {secret} from '../../outside.js'\n",
    })
    write(tmp_path, {"outside.js": "export function secret() {}\n"})
    (root / "linked.py").symlink_to(tmp_path / "outside.py")
    assert workspace_root(root / "app.py") == root
    assert chunks(root, "app.py") == {}
    assert chunks(root, "lib/app.js") == {}


def test_binary_and_huge_files_are_bounded(project: Path):
    write(project, {"pkg/blob.py": b"def f():\x00\x01\x02 pass\n", "pkg/app.py": "from .blob import f\n"})
    assert chunks(project, "pkg/app.py") == {}


JS = {
    "package.json": "{}",
    "src/math.ts": (
        "/**\n * Adds two numbers.\n */\nexport function add(a: number, b: number): number {\n  return a + b;\n}\n"
        "export const square = (x: number): number => x * x;\nexport interface Point {\n  x: number;\n  y: number;\n}\n"
        "function hidden() {}\n"
    ),
    "src/shapes/index.js": (
        "export default class Shape {\n  constructor(name) { this.name = name; }\n  area() { return 0; }\n"
        "  _secret() {}\n}\nexport const KIND = 'shape';\n"
    ),
    "src/z.js": "exports.zed = function (n) {\n  return n;\n};\nmodule.exports.other = 1;\n",
    "src/ns.ts": "export function one() {}\nexport function two(): void {}\n",
    "src/barrel/index.ts": "export { add as plus } from '../math.js';\nexport * from '../ns';\n",
}


def test_javascript_and_typescript_imports_resolve_with_extensions_and_index_files(tmp_path: Path):
    write(tmp_path, JS)
    write(tmp_path, {"src/app/main.ts": (
        "import { add, Point } from '../math.js';\n"  # a TS source imported by its output name
        "import Shape from '../shapes';\n"
        "import * as ns from '../ns';\n"
        "import React from 'react';\n"
        "const { zed } = require('../z');\n"
        "import { plus, two } from '../barrel';\n"
        "\nconst s = "
    )})
    found = chunks(tmp_path, "src/app/main.ts")
    assert set(found) == {"src/math.ts", "src/shapes/index.js", "src/ns.ts", "src/z.js"}
    assert found["src/math.ts"].splitlines() == [
        "/** Adds two numbers. */",
        "export function add(a: number, b: number): number",
        "export interface Point {",
        "  x: number",
        "  y: number",
        "}",
    ]
    assert found["src/shapes/index.js"].splitlines() == [
        "export default class Shape {", "  constructor(name)", "  area()", "}",
    ]
    assert found["src/ns.ts"] == "export function one()\nexport function two(): void"  # outline; ``two`` once
    assert found["src/z.js"] == "exports.zed = function (n)"


def test_stable_while_typing_cached_by_mtime_and_refreshed_when_the_file_changes(project: Path):
    reader = ImportedDefinitions()
    text = "from .shapes import scaled\n\ndef main():\n    c = "
    write(project, {"pkg/app.py": text})
    first = chunks(project, "pkg/app.py", text, reader=reader)
    assert chunks(project, "pkg/app.py", text + "scal", reader=reader) == first  # typing below the imports
    assert chunks(project, "pkg/app.py", "# a comment\n" + text + "x", reader=reader) == first
    shapes = project / "pkg/shapes.py"
    shapes.write_text(SHAPES.replace("factor: float", "factor: int"))
    stat = shapes.stat()
    os.utime(shapes, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert "factor: int" in chunks(project, "pkg/app.py", text, reader=reader)["pkg/shapes.py"]


def test_budget_names_imported_before_whole_module_outlines_and_never_over(project: Path):
    text = "import pkg.util\nfrom .shapes import scaled\n"
    write(project, {"pkg/app.py": text})
    found = chunks(project, "pkg/app.py", budget=30)
    assert list(found) == ["pkg/shapes.py"]  # the outline of util did not fit after scaled
    assert chunks(project, "pkg/app.py", budget=5) == {}
    assert set(chunks(project, "pkg/app.py", budget=2000)) == {"pkg/util.py", "pkg/shapes.py"}


def test_half_typed_imports_and_prose_starting_with_from_are_ignored(project: Path):
    text = '"""Docs.\n\nfrom the start of a line\n"""\nfrom .shapes import (Circle,\nfrom .util import helper\n'
    write(project, {"pkg/app.py": text})
    assert list(chunks(project, "pkg/app.py")) == ["pkg/util.py"]
