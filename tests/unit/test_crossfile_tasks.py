"""benchmarks/crossfile.py's tasks: code lines that read a name another module of the package defines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.crossfile import package_modules, tasks_from

SHAPES = '''"""Shapes."""


class Circle:
    def __init__(self, radius):
        self.radius = radius


def scaled(shape, factor):
    return Circle(shape.radius * factor)
'''

APP = '''"""An app that draws a Circle (the docstring names it, but is no task)."""
from .shapes import Circle, scaled


def main():
    # a Circle of radius one: a comment, no task
    circle = Circle(1.0)
    return scaled(circle, 2)
'''

SUB_INIT = '''from ..shapes import Circle

DEFAULT_CIRCLE = Circle(3.0)
'''


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    root = tmp_path / "drawpkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "shapes.py").write_text(SHAPES)
    (root / "app.py").write_text(APP)
    (root / "sub" / "__init__.py").write_text(SUB_INIT)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "drawpkg"
    for name in [name for name in sys.modules if name == "drawpkg" or name.startswith("drawpkg.")]:
        del sys.modules[name]


def test_a_package_init_is_named_as_the_package(package: str):
    assert set(package_modules(package)) == {"drawpkg", "drawpkg.shapes", "drawpkg.app", "drawpkg.sub"}


def test_tasks_are_code_lines_reading_an_imported_name_from_another_module(package: str):
    tasks = tasks_from(package, 100, seed=1)
    found = {(task["module"], task["line"] + 1, task["symbol"], task["defined_in"]) for task in tasks}
    assert found == {
        ("drawpkg.app", 7, "Circle", "drawpkg.shapes"),
        ("drawpkg.app", 8, "scaled", "drawpkg.shapes"),
        ("drawpkg.sub", 3, "Circle", "drawpkg.shapes"),  # ``..`` from a package's __init__
    }


def test_the_sample_is_the_same_for_a_seed(package: str):
    assert tasks_from(package, 2, seed=7) == tasks_from(package, 2, seed=7)
    assert len(tasks_from(package, 2, seed=7)) == 2
