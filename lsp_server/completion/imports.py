"""Definitions of the names the cursor's file imports, read from disk, for the prompt's repository section.

``from shapes import Circle`` says where the definition a line needs lives. Tree-sitter reads the document's
import statements (Python ``import a.b``, ``from .a import b as c``; JavaScript/TypeScript ``import {a} from
'./x'``, ``import x from '../y'``, ``require('./z')``), each is resolved to a file inside the workspace root, and
that file contributes the *definitions of the names imported*: signature lines (a class with its public members)
plus the first docstring or comment line; a whole-module import (``import a``, ``import * as ns``) contributes
the module's outline. Re-exports (a package's ``__init__``, an ``index.ts`` barrel) are followed a step or two.

What comes out depends only on the import lines and the other files, so it is the same while the user types
elsewhere in the document and the KV cache keeps it. Reading is bounded (file size, number of imports, new bytes
per call) and cached by path and mtime, because it runs on the request path. Nothing outside the root is read,
nor a file ``excluded`` says no to (``cloud.neverSend``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from cachetools import LRUCache, TTLCache

from lsp_server.completion.definitions import Binding, Module, bindings_of, parse_module
from lsp_server.syntax import grammar, languages
from lsp_server.syntax.spec import LanguageSpec

MAX_FILE_BYTES = 128_000
"""Only the start of a bigger file is read (generated code, bundles)."""

MAX_IMPORTS = 32
"""Import statements resolved per document: past this, imports are rarely what the cursor needs."""

NEW_BYTES_PER_CALL = 256_000
"""Bytes read and parsed (cache misses) per call, so the first request in a file importing many big modules does
not stall the event loop; the rest arrive over the next requests."""

FOLLOW_DEPTH = 2
"""Re-exports followed (``pkg/__init__.py`` -> ``pkg/impl.py``)."""

ROOT_MARKERS = (".git", "pyproject.toml", "package.json")
"""A folder holding one of these is the workspace root when none is given."""

RESOLVED_FOR_S = 10.0
"""How long where an import points is remembered (a file created meanwhile is found after this)."""

_JS_SUFFIXES = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
_JS_OUTPUT_TO_SOURCE = {".js": (".ts", ".tsx"), ".jsx": (".tsx",), ".mjs": (".mts",), ".cjs": (".cts",)}
_SUPPORTED = {"python", "javascript", "typescript", "tsx"}

# The lines that may start an import, gathered before parsing so that tree-sitter reads a few hundred bytes per
# request, not the whole document (a 100 kB file takes ~30 ms to parse); multi-line statements are completed by
# bracket balance in ``_statements``.
_PY_IMPORT_LINE = re.compile(r"^[ \t]*(?:import|from)[ \t]", re.MULTILINE)
_JS_IMPORT_LINE = re.compile(r"^[ \t]*(?:import\b|export\b[^\n]*\bfrom\b)|^[^\n]*\brequire[ \t]*\(", re.MULTILINE)
_OPENERS, _CLOSERS = "([{", ")]}"


def workspace_root(document: Path) -> Path:
    """The nearest ancestor of ``document`` with a root marker; else the folder above its Python package."""
    for folder in document.parents:
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return _package_root(document, Path(document.anchor))


def display_name(path: Path, root: Path) -> str:
    """How a chunk from ``path`` is named in the prompt: as its module is imported (``pkg/mod.py``), else from
    ``root`` (both resolved)."""
    base = _package_root(path, root) if path.suffix in (".py", ".pyi") else root
    return path.relative_to(base if path.is_relative_to(base) else root).as_posix()


def _package_root(document: Path, root: Path) -> Path:
    """The folder above the outermost package holding ``document`` (``__init__.py`` chain), not above ``root``."""
    folder = document.parent
    while folder != root and (folder / "__init__.py").is_file() and folder.parent != folder:
        folder = folder.parent
    return folder


def _statements(text: str, pattern: re.Pattern[str]) -> str:
    """The import statements of ``text`` (one per line start ``pattern`` finds), dedented, joined."""
    out: list[str] = []
    for match in pattern.finditer(text):
        start = text.rfind("\n", 0, match.start()) + 1
        end, depth = start, 0
        for _ in range(40):  # lines of one statement
            line_end = text.find("\n", end)
            line_end = len(text) if line_end < 0 else line_end
            line = text[end:line_end]
            depth += sum(line.count(c) for c in _OPENERS) - sum(line.count(c) for c in _CLOSERS)
            end = line_end + 1
            if (depth <= 0 and not line.rstrip().endswith("\\")) or end > len(text):
                break
        out.append(text[start:end].strip())
    return "\n".join(out)


def _inside(path: Path, root: Path) -> Path | None:
    """``path`` with links resolved when it is a file inside ``root`` (already resolved); else None."""
    try:
        if not path.is_file():  # one stat for the usual miss, before resolving links
            return None
        real = path.resolve()
        return real if real.is_relative_to(root) else None
    except OSError:
        return None


def _python_candidates(base: Path, dotted: str) -> Iterator[Path]:
    parts = [part for part in dotted.split(".") if part]
    if not parts:
        yield base / "__init__.py"
        return
    module = base.joinpath(*parts)
    yield from (module.with_name(module.name + ".py"), module / "__init__.py", module.with_name(module.name + ".pyi"))


def _js_candidates(base: Path) -> Iterator[Path]:
    suffix = base.suffix.lower()
    if suffix:
        yield base
        yield from (base.with_suffix(other) for other in _JS_OUTPUT_TO_SOURCE.get(suffix, ()))
    yield from (base.with_name(base.name + ext) for ext in _JS_SUFFIXES)
    yield from (base / f"index{ext}" for ext in _JS_SUFFIXES)


def resolve_import(spec: LanguageSpec, source: str, document: Path, root: Path) -> Path | None:
    """The file inside ``root`` that ``source``, imported by ``document``, names; None when there is none."""
    if spec.name == "python":
        level = len(source) - len(source.lstrip("."))
        if level:
            base = document.parent
            for _ in range(level - 1):
                base = base.parent
            bases = [base]
        else:
            bases = [root, root / "src"]
            package_root = _package_root(document, root)
            own_package = document.relative_to(package_root).parts[0] if package_root != document.parent else None
            if source.split(".")[0] == own_package:  # the document's own package, wherever it is installed
                bases.insert(0, package_root)
        candidates = (path for base in bases for path in _python_candidates(base, source[level:]))
    elif source.startswith(("./", "../")) or source in (".", ".."):
        candidates = _js_candidates(Path(os.path.normpath(document.parent / source)))
    else:  # a package (node_modules) or a bundler alias: not the user's code
        return None
    return next((found for path in candidates if (found := _inside(path, root)) is not None), None)


class ImportedDefinitions:
    """Chunks of the definitions a document imports; files and import headers cached (see the module docstring)."""

    def __init__(self) -> None:
        self._modules: LRUCache[Path, tuple[tuple[int, int], Module]] = LRUCache(maxsize=256)
        self._headers: LRUCache[tuple[str, str], tuple[Binding, ...]] = LRUCache(maxsize=64)
        self._resolved: TTLCache[tuple[str, str, Path, Path], Path | None] = TTLCache(maxsize=1024, ttl=RESOLVED_FOR_S)
        """Where an import points: a dozen stats each, too many to repeat on every keystroke."""
        self._new_bytes = 0

    def bindings(self, spec: LanguageSpec, text: str) -> tuple[Binding, ...]:
        """The imports of a document in ``spec``'s language with ``text``, in order."""
        header = _statements(text[:MAX_FILE_BYTES], _PY_IMPORT_LINE if spec.name == "python" else _JS_IMPORT_LINE)
        key = (spec.name, header)
        found = self._headers.get(key)
        if found is None:
            found = self._headers[key] = bindings_of(spec, grammar.parse(spec, header))
        return found

    def _resolve(self, spec: LanguageSpec, source: str, document: Path, root: Path) -> Path | None:
        key = (spec.name, source, document, root)
        if key not in self._resolved:
            self._resolved[key] = resolve_import(spec, source, document, root)
        return self._resolved.get(key)

    def _module(self, path: Path) -> Module | None:
        spec = languages.resolve(None, str(path))
        if spec is None or spec.name not in _SUPPORTED:
            return None
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            cached = self._modules.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            if self._new_bytes >= NEW_BYTES_PER_CALL:
                return None
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES)
        except OSError:
            return None
        self._new_bytes += len(data)
        module = Module() if b"\0" in data[:8192] else parse_module(spec, data)  # binary: nothing to offer
        self._modules[path] = (stamp, module)
        return module

    def _definition(self, path: Path, name: str, root: Path, allowed: Callable[[Path], bool],
                    depth: int = 0) -> tuple[Path, str] | None:
        """Where ``name`` of the module at ``path`` is defined, and its rendering; re-exports followed."""
        module = self._module(path)
        if module is None:
            return None
        if name in module.definitions:
            return path, module.definitions[name]
        spec = languages.resolve(None, str(path))
        if spec.name == "python" and path.name == "__init__.py":  # ``from pkg import submodule``
            sub = next((found for candidate in _python_candidates(path.parent, name)
                        if (found := _inside(candidate, root)) is not None and allowed(found)), None)
            if sub is not None and (submodule := self._module(sub)) is not None and submodule.outline:
                return sub, submodule.outline
        if depth >= FOLLOW_DEPTH:
            return None
        for binding in module.bindings:
            if binding.alias not in (name, "*"):
                continue
            target = self._resolve(spec, binding.source, path, root)
            if target is None or not allowed(target):
                continue
            if binding.name is None and binding.alias == name:  # ``import x as name``
                found_module = self._module(target)
                return (target, found_module.outline) if found_module and found_module.outline else None
            found = self._definition(target, binding.name or name, root, allowed, depth + 1)
            if found is not None:
                return found
        return None

    def chunks(self, document: Path, text: str, root: Path, budget_tokens: int, count_tokens: Callable[[str], int],
               excluded: Callable[[str], bool]) -> tuple[tuple[tuple[Path, str], ...], int]:
        """((file, definitions) chunks in import order, tokens they cost) for ``document`` with ``text``."""
        spec = languages.resolve(None, str(document))
        root = root.resolve()
        real_document = document.resolve()
        if spec is None or spec.name not in _SUPPORTED or not real_document.is_relative_to(root):
            return (), 0
        self._new_bytes = 0

        def allowed(path: Path) -> bool:
            return path != real_document and not excluded(str(path))

        wanted: dict[str, dict[str, None] | None] = {}  # source -> names (None: the whole module), in import order
        for binding in self.bindings(spec, text):
            if binding.source not in wanted and len(wanted) >= MAX_IMPORTS:
                continue
            names = wanted.setdefault(binding.source, {})
            if binding.name is None:
                wanted[binding.source] = None
            elif names is not None:
                names[binding.name] = None
        pieces: dict[tuple[Path, str], bool] = {}  # (file, rendering) -> whether it is a whole-module outline
        for source, names in wanted.items():
            target = self._resolve(spec, source, real_document, root)
            if target is None or not allowed(target):
                continue
            if names is None:
                module = self._module(target)
                if module is not None and module.outline:
                    pieces.setdefault((target, module.outline), True)
            else:
                for name in names:
                    if (hit := self._definition(target, name, root, allowed)) is not None:
                        pieces.setdefault(hit, False)
        # The names imported are what a line most likely uses: they claim the budget before whole-module outlines.
        kept: set[tuple[Path, str]] = set()
        files: set[Path] = set()
        left = budget_tokens
        for outlines in (False, True):
            for piece, is_outline in pieces.items():
                cost = count_tokens(piece[1] + "\n") + (0 if piece[0] in files else 8)  # 8: separator and name
                if is_outline == outlines and cost <= left:
                    kept.add(piece)
                    files.add(piece[0])
                    left -= cost
        outlined = {path: set(rendering.splitlines()) for (path, rendering), is_outline in pieces.items()
                    if is_outline and (path, rendering) in kept}
        by_file: dict[Path, list[str]] = {}
        for path, rendering in pieces:
            repeated = not pieces[path, rendering] and set(rendering.splitlines()) <= outlined.get(path, set())
            if (path, rendering) in kept and not repeated:
                by_file.setdefault(path, []).append(rendering)
        return tuple((path, "\n".join(texts)) for path, texts in by_file.items()), budget_tokens - left
