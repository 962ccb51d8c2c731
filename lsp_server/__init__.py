"""Gearshift: a local-first AI coding language server."""

__version__ = "0.1.0"
