"""`gearshift models list|verify|path`: see, check and locate the embedded models.

``list`` only stats files and reads stamps (instant); ``verify`` assembles a
model if needed and re-hashes it for real; ``path`` prints the model file's
path alone (assembling it first if needed) so scripts can use it.
"""

from __future__ import annotations

import argparse
import json
import sys

from lsp_server.errors import ModelError
from lsp_server.inference.assembly import verify_model
from lsp_server.inference.catalog import CATALOG, model_dir
from lsp_server.inference.installed import ModelStatus, installed_models, model_status, resolve_model
from lsp_server.wire import WireModel


class ModelRow(WireModel):
    """One catalog model in `gearshift models list --json`."""

    name: str
    role: str
    size: int
    sha256: str
    installed: bool
    assembled: bool
    verified: bool
    usable: bool
    path: str | None
    missing_parts: list[str]
    install_hint: str

    @classmethod
    def of(cls, status: ModelStatus) -> ModelRow:
        entry = CATALOG[status.name]
        return cls(
            name=status.name, role=status.role, size=status.size, sha256=entry.sha256, installed=status.installed,
            assembled=status.assembled, verified=status.verified, usable=status.usable,
            path=None if status.path is None else str(status.path), missing_parts=list(status.missing_parts),
            install_hint=entry.install_hint,
        )


class ModelList(WireModel):
    """`gearshift models list --json`."""

    model_dir: str
    models: list[ModelRow]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", required=True)
    list_parser = sub.add_parser("list", help="the catalog: installed, assembled and verified state, paths")
    list_parser.add_argument("--json", action="store_true", help="print a machine-readable list")
    verify_parser = sub.add_parser(
        "verify", help="assemble if needed and re-hash (all installed models by default)"
    )
    verify_parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"catalog names: {', '.join(CATALOG)}"
    )
    path_parser = sub.add_parser("path", help="print the model file's path (assembling it if needed)")
    path_parser.add_argument("name", metavar="NAME", help="a catalog name (or a GGUF path, checked)")


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:,.0f} MB"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _list(as_json: bool) -> int:
    statuses = [model_status(name) for name in CATALOG]
    if as_json:
        listing = ModelList(model_dir=str(model_dir()), models=[ModelRow.of(status) for status in statuses])
        print(json.dumps(listing.to_json(), indent=2))
        return 0
    table = [("NAME", "ROLE", "SIZE", "INSTALLED", "ASSEMBLED+VERIFIED", "PATH")]
    for s in statuses:
        verified = _yes(s.verified) if s.assembled else "not assembled"
        table.append(
            (s.name, s.role, _size(s.size), _yes(s.installed), verified, str(s.path) if s.path else "-")
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    for s in statuses:
        if not s.usable:
            print(
                f"\n{s.name}: {len(s.missing_parts)} of {len(CATALOG[s.name].parts)} parts missing; install with:"
            )
            print(f"  {CATALOG[s.name].install_hint}")
    return 0


def _verify(names: list[str]) -> int:
    if not names:
        names = installed_models()
        if not names:
            raise ModelError(
                f"no embedded model is installed; fix: {CATALOG['qwen2.5-coder-0.5b'].install_hint}"
            )
    failures = 0
    for name in names:
        try:
            report = verify_model(name)
        except ModelError as exc:
            failures += 1
            print(f"gearshift: {exc}", file=sys.stderr)
            continue
        action = "assembled and verified" if report.assembled else "verified"
        print(f"{report.name}: {action} sha256 {report.sha256} in {report.seconds:.1f}s: {report.path}")
    return 2 if failures else 0


def main(args: argparse.Namespace) -> int:
    if args.models_command == "list":
        return _list(args.json)
    if args.models_command == "verify":
        return _verify(args.names)
    print(resolve_model(args.name))
    return 0
