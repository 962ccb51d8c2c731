"""What a source file offers its importers, read with tree-sitter: its import bindings and its definitions.

A definition is rendered as its signature lines (a class with its public members, one line each) plus the first
docstring or comment line: the names, parameters and intent a call needs, not bodies. The outline of a module is
the signature lines of all its top-level definitions. Python and JavaScript/TypeScript (``imports`` resolves the
files; this module only reads one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import tree_sitter

from lsp_server.syntax import grammar
from lsp_server.syntax.spec import LanguageSpec

MEMBER_LINES = 24
"""Member lines of one class (or type) shown."""

OUTLINE_LINES = 60
"""Lines of a module outline (a whole-module import)."""

_LONG_LINE = 160


@dataclass(frozen=True)
class Binding:
    """One name an import statement binds: ``alias`` is ``name`` of module ``source`` (as written)."""

    source: str
    name: str | None
    """The name the other module defines (``"default"`` for a JS default export); None: the module itself."""
    alias: str
    """The name it has here; ``"*"`` for a star import or re-export."""


@dataclass(frozen=True)
class Module:
    """What one file offers its importers."""

    definitions: dict[str, str] = field(default_factory=dict)
    """Top-level name -> its signature lines and first docstring/comment line."""
    outline: str = ""
    """Signature lines of all its top-level definitions (for a whole-module import)."""
    bindings: tuple[Binding, ...] = ()
    """Its own imports and re-exports, followed for a name it does not define."""


def _text(node: tree_sitter.Node | None) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text is not None else ""


def python_bindings(node: tree_sitter.Node) -> Iterator[Binding]:
    """The bindings of a Python ``import`` or ``from … import`` statement node."""
    if node.type == "import_statement":
        for name in node.children_by_field_name("name"):
            module = name.child_by_field_name("name") if name.type == "aliased_import" else name
            alias = name.child_by_field_name("alias") if name.type == "aliased_import" else None
            yield Binding(_text(module), None, _text(alias) or _text(module).split(".")[0])
    elif node.type == "import_from_statement":
        source = _text(node.child_by_field_name("module_name"))
        if any(child.type == "wildcard_import" for child in node.children):
            yield Binding(source, None, "*")
        for name in node.children_by_field_name("name"):
            original = name.child_by_field_name("name") if name.type == "aliased_import" else name
            alias = name.child_by_field_name("alias") if name.type == "aliased_import" else None
            yield Binding(source, _text(original), _text(alias) or _text(original))


def _js_string(node: tree_sitter.Node | None) -> str:
    return _text(node)[1:-1] if node is not None and node.type == "string" else ""


def js_bindings(node: tree_sitter.Node) -> Iterator[Binding]:
    """The bindings of a JS/TS ``import``, ``export … from`` or ``require`` under ``node``."""
    if node.type == "import_statement":
        source = _js_string(node.child_by_field_name("source"))
        clause = next((child for child in node.children if child.type == "import_clause"), None)
        for part in clause.named_children if clause is not None else ():
            if part.type == "identifier":
                yield Binding(source, "default", _text(part))
            elif part.type == "namespace_import":
                yield Binding(source, None, _text(part.named_children[-1]) if part.named_children else "*")
            elif part.type == "named_imports":
                for spec in part.named_children:
                    name, alias = spec.child_by_field_name("name"), spec.child_by_field_name("alias")
                    if name is not None:
                        yield Binding(source, _text(name), _text(alias) or _text(name))
    elif node.type == "export_statement" and node.child_by_field_name("source") is not None:
        source = _js_string(node.child_by_field_name("source"))
        clause = next((child for child in node.named_children if child.type == "export_clause"), None)
        if clause is None:
            yield Binding(source, None, "*")
        for spec in clause.named_children if clause is not None else ():
            name, alias = spec.child_by_field_name("name"), spec.child_by_field_name("alias")
            yield Binding(source, _text(name), _text(alias) or _text(name))
    elif node.type == "call_expression" and _text(node.child_by_field_name("function")) == "require":
        arguments = node.child_by_field_name("arguments")
        source = _js_string(arguments.named_children[0]) if arguments and arguments.named_child_count == 1 else ""
        target = node.parent.child_by_field_name("name") if node.parent.type == "variable_declarator" else None
        if target is not None and target.type == "object_pattern":
            for part in target.named_children:
                key = part.child_by_field_name("key") if part.type == "pair_pattern" else part
                value = part.child_by_field_name("value") if part.type == "pair_pattern" else part
                yield Binding(source, _text(key), _text(value))
        elif source:
            yield Binding(source, None, _text(target) or "*")
    else:
        for child in node.named_children:
            yield from js_bindings(child)


def bindings_of(spec: LanguageSpec, tree: tree_sitter.Tree) -> tuple[Binding, ...]:
    """The top-level imports (and JS re-exports and requires) of ``tree``, in order; statements that do not parse
    (half typed, or prose that starts with ``from``) are left out."""
    read = python_bindings if spec.name == "python" else js_bindings
    return tuple(b for node in tree.root_node.children if not node.has_error for b in read(node) if b.source)


def _line_start(data: bytes, byte: int) -> int:
    return data.rfind(b"\n", 0, byte) + 1


def _head(data: bytes, node: tree_sitter.Node, body: tree_sitter.Node | None, max_lines: int = 8) -> str:
    """Source from ``node``'s line start up to ``body`` (its first line when there is none): the signature."""
    end = body.start_byte if body is not None else data.find(b"\n", node.start_byte)
    end = node.end_byte if end < 0 or end > node.end_byte else end
    lines = data[_line_start(data, node.start_byte):end].decode("utf-8", "replace").rstrip().splitlines()
    return "\n".join(line[:_LONG_LINE] for line in lines[:max_lines])


def _first_line(comment: str) -> str:
    for line in comment.splitlines():
        line = line.strip().lstrip("/*#").rstrip("*/").strip().strip("\"'").strip()
        if line:
            return line[:_LONG_LINE]
    return ""


def _comment_before(node: tree_sitter.Node) -> str:
    before = node.prev_named_sibling
    if before is not None and before.type == "comment" and before.end_point.row >= node.start_point.row - 1:
        return _first_line(_text(before))
    return ""


def _python_docstring(body: tree_sitter.Node | None) -> str:
    first = body.named_children[0] if body is not None and body.named_children else None
    if first is not None and first.type == "expression_statement" and first.named_children[0].type == "string":
        return _first_line(_text(first.named_children[0]).lstrip("rbuRBU"))
    return ""


def _python_definition(data: bytes, node: tree_sitter.Node, docs: bool) -> tuple[str, str] | None:
    """(name, rendering) of a top-level Python statement that defines a name; None for others."""
    target = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
    if target is not None and target.type in ("function_definition", "class_definition"):
        body = target.child_by_field_name("body")
        lines = [_head(data, node, body)]
        docstring = _python_docstring(body) if docs else ""
        indent = " " * (body.start_point.column if body is not None and body.start_point.row > node.start_point.row
                        else node.start_point.column + 4)
        comment = docs and not docstring and _comment_before(node)
        if docstring:
            lines.append(f'{indent}"""{docstring}"""')
        if target.type == "class_definition" and body is not None:
            members = [_python_definition(data, member, docs=False) for member in body.named_children]
            lines += [text for name, text in filter(None, members) if not name.startswith("_") or name.endswith("__")
                      ][:MEMBER_LINES]
        return _text(target.child_by_field_name("name")), "\n".join(([f"# {comment}"] if comment else []) + lines)
    if node.type == "expression_statement" and node.named_children and node.named_children[0].type == "assignment":
        left = node.named_children[0].child_by_field_name("left")
        if left is not None and left.type == "identifier" and not _text(left).startswith("__"):  # not __all__
            return _text(left), _head(data, node, None, 1)
    return None


_JS_FUNCTION_VALUES = {"arrow_function", "function_expression", "function", "generator_function"}
_JS_MEMBERS = {"method_definition", "public_field_definition", "field_definition", "method_signature",
               "abstract_method_signature", "property_signature"}


def _js_declaration(data: bytes, statement: tree_sitter.Node, node: tree_sitter.Node) -> Iterator[tuple[str, str]]:
    """(name, signature) of each name JS/TS ``node`` declares; ``statement`` includes an ``export`` around it."""
    kind = node.type
    if kind in ("function_declaration", "generator_function_declaration", "function_signature"):
        yield _text(node.child_by_field_name("name")), _head(data, statement, node.child_by_field_name("body"))
    elif kind in ("class_declaration", "abstract_class_declaration", "class", "interface_declaration"):
        body = node.child_by_field_name("body")
        members = [_head(data, member, member.child_by_field_name("body"), 3)
                   for member in (body.named_children if body is not None else ())
                   if member.type in _JS_MEMBERS and not _text(member.child_by_field_name("name")).startswith(("#", "_"))]
        closing = " " * statement.start_point.column + "}"
        head = _head(data, statement, body)
        yield _text(node.child_by_field_name("name")), "\n".join([f"{head} {{", *members[:MEMBER_LINES], closing])
    elif kind in ("type_alias_declaration", "enum_declaration"):
        yield _text(node.child_by_field_name("name")), _head(data, statement, None, 1)
    elif kind in ("lexical_declaration", "variable_declaration"):
        for declarator in node.named_children:
            name, value = declarator.child_by_field_name("name"), declarator.child_by_field_name("value")
            if name is None or name.type != "identifier":
                continue
            if value is not None and value.type in _JS_FUNCTION_VALUES:
                yield _text(name), _head(data, statement, value.child_by_field_name("body"))
            else:
                yield _text(name), _head(data, statement, None, 1)


def _js_definitions(data: bytes, node: tree_sitter.Node) -> Iterator[tuple[str, str]]:
    if node.type == "export_statement":
        declaration = node.child_by_field_name("declaration") or node.child_by_field_name("value")
        is_default = any(child.type == "default" for child in node.children)
        for name, text in _js_declaration(data, node, declaration) if declaration is not None else ():
            yield name, text
            if is_default:
                yield "default", text
    elif node.type == "expression_statement" and node.named_children[0].type == "assignment_expression":
        left, right = (node.named_children[0].child_by_field_name(side) for side in ("left", "right"))
        target = _text(left)
        if target.startswith(("exports.", "module.exports.")):  # CommonJS
            body = right.child_by_field_name("body") if right is not None and right.type in _JS_FUNCTION_VALUES else None
            yield target.rsplit(".", 1)[-1], _head(data, node, body)
    else:
        yield from _js_declaration(data, node, node)


def parse_module(spec: LanguageSpec, data: bytes) -> Module:
    """What a file in ``spec``'s language offers its importers (see the module docstring)."""
    tree = grammar.parser(spec).parse(data)
    definitions: dict[str, str] = {}
    outline: list[str] = []
    for node in tree.root_node.children:
        if spec.name == "python":
            found = _python_definition(data, node, docs=True)
            pairs = [found] if found else []
            summary = _python_definition(data, node, docs=False) if found else None
            short = [summary[1]] if summary else []
        else:
            pairs = list(_js_definitions(data, node))
            comment = _comment_before(node)
            pairs = [(name, f"/** {comment} */\n{text}" if comment else text) for name, text in pairs]
            short = [text for name, text in _js_definitions(data, node) if name != "default"]
        for name, text in pairs:
            if name:
                definitions.setdefault(name, text)
        if node.type == "export_statement" and (value := node.child_by_field_name("value")) is not None:
            if value.type == "identifier" and _text(value) in definitions:  # ``export default Name;``
                definitions.setdefault("default", definitions[_text(value)])
        outline.extend(line for text in short for line in text.splitlines())
    return Module(definitions, "\n".join(outline[:OUTLINE_LINES]), bindings_of(spec, tree))
