"""Fixtures shared by unit tests that read a real model file (never load it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.inference.assembly import locate_part
from lsp_server.inference.catalog import CATALOG


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    """The installed SmolLM2-135M GGUF (its one part, as installed); the test is skipped when it is missing."""
    path = locate_part(CATALOG["smollm2-135m"].parts[0])
    if path is None:
        pytest.skip(f"smollm2-135m is not installed: {CATALOG['smollm2-135m'].install_hint}")
    return path
