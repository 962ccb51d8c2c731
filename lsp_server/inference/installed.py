"""Which catalog models are installed and usable now, and which file a model name or path resolves to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lsp_server.errors import ModelError
from lsp_server.inference.assembly import ensure_model, is_verified, locate_part, model_file
from lsp_server.inference.catalog import CATALOG, ModelEntry, Role, get_entry, model_dir
from lsp_server.inference.gguf import read_gguf


@dataclass(frozen=True)
class ModelStatus:
    name: str
    role: Role
    size: int
    installed: bool
    """Every part is present (the distributions are installed)."""

    assembled: bool
    """The model file exists under its final path (for a single-file model: the part itself)."""

    verified: bool
    """A stamp says the file at ``path`` hashed to the catalog sha256 and has not changed since."""

    path: Path | None
    """Where the model file is or will be; None for a single-file model whose part is missing."""

    missing_parts: tuple[str, ...]
    """``distribution: path`` of each missing part."""

    @property
    def usable(self) -> bool:
        """Loadable now: every part is installed, or a verified assembled file is in place (parts since removed)."""
        return self.installed or self.verified


def model_status(name_or_entry: str | ModelEntry, directory: Path | None = None) -> ModelStatus:
    """What is installed, assembled and verified for one model (cheap: stats and metadata only)."""
    entry = get_entry(name_or_entry)
    directory = model_dir() if directory is None else directory
    missing = tuple(f"{p.distribution}: {p.path}" for p in entry.parts if locate_part(p) is None)
    target = model_file(entry, directory)
    assembled = target is not None and target.is_file()
    return ModelStatus(
        name=entry.name,
        role=entry.role,
        size=entry.size,
        installed=not missing,
        assembled=assembled,
        verified=assembled and target is not None and is_verified(entry, target, directory),
        path=target,
        missing_parts=missing,
    )


def installed_models(directory: Path | None = None) -> list[str]:
    """Catalog names that can be used now, in catalog order.

    That is every model whose parts are all present, and also one whose
    verified assembled file is still there after its parts were uninstalled
    (to save the disk the parts take twice).
    """
    return [name for name in CATALOG if model_status(name, directory).usable]


def resolve_model(name_or_path: str | os.PathLike[str], directory: Path | None = None) -> Path:
    """A catalog name -> its verified file (assembled if needed); otherwise a path to a valid GGUF file."""
    if isinstance(name_or_path, str) and name_or_path in CATALOG:
        return ensure_model(name_or_path, directory)
    path = Path(name_or_path).expanduser()
    if (
        not path.exists()
        and isinstance(name_or_path, str)
        and os.sep not in name_or_path
        and "." not in name_or_path
    ):
        raise ModelError(
            f"unknown model {name_or_path!r}: not in the catalog ({', '.join(CATALOG)}) and no such file"
        )
    read_gguf(path)  # raises ModelError for a missing, non-GGUF or truncated file
    return path.resolve()
