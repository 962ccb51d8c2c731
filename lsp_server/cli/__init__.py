"""The `gearshift` command: serve, complete, models, fit, eval.

Each subcommand is a module of this package, argparse and printing only (the work is done by the modules they
call, and a completion's service is built by ``lsp_server.wiring`` as the server builds it); each defines
``add_arguments(parser)`` and ``main(args) -> int``.  Modules are imported only when needed so
`gearshift models list` does not load llama.cpp.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("lsp_server.cli.serve", "run the language server (stdio by default)"),
    "complete": ("lsp_server.cli.complete", "one completion at FILE:LINE:COL through the full pipeline"),
    "models": ("lsp_server.cli.models", "list, verify or locate the embedded models"),
    "fit": ("lsp_server.cli.fit", "which model fits this machine's memory and holds 40 tok/s"),
    "eval": ("lsp_server.cli.eval", "which installed tier is accurate and fast enough on this repository"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that subcommand's module is imported (the others stay unloaded)."""
    parser = argparse.ArgumentParser(prog="gearshift", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(only).parse_args(argv)
    try:
        return int(args._main(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear one-line error for the user, not a traceback
        from lsp_server.errors import GearshiftError

        if isinstance(exc, GearshiftError):
            print(f"gearshift: {exc}", file=sys.stderr)
            return 2
        raise
