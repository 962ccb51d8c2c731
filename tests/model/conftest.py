"""Real-model fixtures shared by the ``model`` tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.errors import ModelError


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    """The SmolLM2-135M GGUF (the fastest tier); the test is skipped when it is not installed."""
    from lsp_server.inference.assembly import ensure_model

    try:
        return ensure_model("smollm2-135m")
    except ModelError as exc:
        pytest.skip(f"smollm2-135m not installed: {exc}")
