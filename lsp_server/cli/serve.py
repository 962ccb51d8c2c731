"""`gearshift serve`: run the language server on stdio (default) or TCP.

stdout is the protocol channel, so all logging goes to stderr or a file, and
pygls' own loggers (which log every message body at INFO) stay at WARNING.
"""

from __future__ import annotations

import argparse
import logging
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="talk LSP on stdin/stdout (the default)")
    parser.add_argument("--tcp", metavar="HOST:PORT", help="listen for one client on a TCP address instead")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-file", help="write logs here instead of stderr")


def configure_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pygls logs whole message bodies (documents, prompts) at INFO.
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def main(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_file)
    from lsp_server.server import create_server

    server = create_server()
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        if not host or not port.isdigit():
            from lsp_server.errors import GearshiftError

            raise GearshiftError(f"--tcp wants HOST:PORT, got {args.tcp!r}")
        server.start_tcp(host, int(port))
    else:
        server.start_io()
    # LSP: exit after shutdown is a clean stop (0), exit without it is not (1); a vanished client counts as clean.
    exit_code = getattr(server.protocol, "exit_code", None)
    return 0 if exit_code is None else exit_code
