"""llama-server is built from the wheel's pinned llama.cpp with the wheel's safe flags, cached by version and flags."""

from __future__ import annotations

import importlib.util
import io
import os
import stat
import sys
import tarfile
from pathlib import Path

import pytest

_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
_spec = importlib.util.spec_from_file_location("build_llama_server", _SCRIPTS / "build_llama_server.py")
bls = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bls)

SAPPHIRE_RAPIDS = "flags : fpu sse2 avx avx2 fma f16c bmi2 avx512f avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16"
EPYC_ZEN3 = "flags : fpu sse2 avx avx2 fma f16c bmi2 sha_ni"


def _args(cpuinfo: str) -> list[str]:
    return bls.server_cmake_args(bls.build_llama.cmake_args(bls.build_llama.cpu_flags(cpuinfo), machine="x86_64"))


def test_same_source_as_the_wheel():
    assert bls.LLAMA_CPP_PYTHON_VERSION == bls.build_llama.LLAMA_CPP_PYTHON_VERSION


@pytest.mark.parametrize("cpuinfo", [SAPPHIRE_RAPIDS, EPYC_ZEN3], ids=["amx-xeon", "epyc"])
def test_server_args_keep_the_wheel_flags_and_build_only_the_server(cpuinfo):
    args = _args(cpuinfo)
    wheel = bls.build_llama.cmake_args(bls.build_llama.cpu_flags(cpuinfo), machine="x86_64")
    assert args[: len(wheel)] == wheel
    for option in ("GGML_NATIVE", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"):
        assert f"-D{option}=OFF" in args
        assert f"-D{option}=ON" not in args
    assert not any("march=native" in a for a in args)
    assert "-DLLAMA_BUILD_SERVER=ON" in args
    assert "-DBUILD_SHARED_LIBS=OFF" in args  # one self-contained binary in the cache
    for off in ("LLAMA_CURL", "LLAMA_BUILD_TESTS", "LLAMA_BUILD_EXAMPLES", "LLAMA_USE_PREBUILT_UI", "LLAMA_BUILD_UI"):
        assert f"-D{off}=OFF" in args  # nothing fetched at build time but the sdist
    assert f"-DLLAMA_BUILD_COMMIT={bls.LLAMA_CPP_COMMIT}" in args


def test_cache_key_names_llama_cpp_version_and_flags():
    key = bls.cache_key(_args(EPYC_ZEN3))
    assert bls.LLAMA_CPP_COMMIT in key
    assert bls.LLAMA_CPP_PYTHON_VERSION in key
    assert "avx2" in key and "avx512" not in key
    assert bls.cache_key(_args(EPYC_ZEN3)) == key  # stable across runs


def test_cache_key_changes_with_cpu_version_commit_and_any_option():
    epyc = _args(EPYC_ZEN3)
    key = bls.cache_key(epyc)
    assert bls.cache_key(_args(SAPPHIRE_RAPIDS)) != key
    assert bls.cache_key(epyc, version="0.3.37") != key
    assert bls.cache_key(epyc, commit="deadbeef1") != key
    other = [a.replace("-DLLAMA_OPENSSL=OFF", "-DLLAMA_OPENSSL=ON") for a in epyc]
    assert other != epyc
    assert bls.cache_key(other) != key


def test_cache_dir_is_under_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    out = bls.server_cache_dir(_args(EPYC_ZEN3))
    assert out.parent == tmp_path / "gearshift" / "llama-server"
    assert out.name == bls.cache_key(_args(EPYC_ZEN3))


CHANGELOG = """# Changelog

## [Unreleased]

- feat: update llama.cpp to ggml-org/llama.cpp@1111111aa

## [0.3.36]

- feat: update llama.cpp to ggml-org/llama.cpp@0c1e57098
- fix: something

## [0.3.35]

- feat: update llama.cpp to ggml-org/llama.cpp@4df29be4f
"""


def test_vendored_commit_reads_the_versions_own_section():
    assert bls.vendored_commit(CHANGELOG, "0.3.36") == "0c1e57098"
    assert bls.vendored_commit(CHANGELOG, "0.3.35") == "4df29be4f"
    assert bls.vendored_commit(CHANGELOG, "0.3.99") is None
    assert bls.vendored_commit("## [0.3.36]\n\n- docs only\n\n## [0.3.35]\n- llama.cpp@4df29be4f\n", "0.3.36") is None


def _fake_sdist(path: Path, changelog: str) -> Path:
    top = f"llama_cpp_python-{bls.LLAMA_CPP_PYTHON_VERSION}"
    files = {
        f"{top}/CHANGELOG.md": changelog,
        f"{top}/llama_cpp/__init__.py": "",
        f"{top}/vendor/llama.cpp/CMakeLists.txt": "project(llama.cpp)\n",
        f"{top}/vendor/llama.cpp/.git": "gitdir: ../../.git/modules/vendor/llama.cpp\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_takes_only_the_vendored_tree(tmp_path):
    sdist = _fake_sdist(tmp_path / "s.tar.gz", CHANGELOG)
    root = bls.extract_vendored(sdist, tmp_path / "src")
    assert (root / "CMakeLists.txt").read_text() == "project(llama.cpp)\n"
    assert not (root / ".git").exists()  # build info must not come from a repository around the cache
    assert not (root.parents[1] / "llama_cpp").exists()


def test_extract_refuses_a_different_vendored_commit(tmp_path):
    sdist = _fake_sdist(tmp_path / "s.tar.gz", CHANGELOG.replace("0c1e57098", "abcdef123"))
    with pytest.raises(bls.BuildError, match="abcdef123"):
        bls.extract_vendored(sdist, tmp_path / "src")


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_venv_cmake_comes_before_path(tmp_path, monkeypatch):
    venv_cmake = _exe(tmp_path / "venv" / "bin" / "cmake")
    _exe(tmp_path / "path" / "cmake")
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    assert bls.find_tool("cmake", venv_bin=venv_cmake.parent) == str(venv_cmake)
    assert bls.find_tool("cmake", venv_bin=tmp_path / "nowhere") == str(tmp_path / "path" / "cmake")
    assert bls.find_tool("ninja", venv_bin=venv_cmake.parent) is None


def _isolate(tmp_path, monkeypatch, path_dir: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(path_dir))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))


def test_missing_cmake_is_one_clear_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    _isolate(tmp_path, monkeypatch, tmp_path / "empty")
    assert bls.main() == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "cmake not found" in err
    assert not (tmp_path / "cache" / "gearshift" / "sdist").exists()  # nothing downloaded first


def test_missing_compiler_is_one_clear_line(tmp_path, monkeypatch, capsys):
    _exe(tmp_path / "bin" / "cmake")
    _isolate(tmp_path, monkeypatch, tmp_path / "bin")
    assert bls.main() == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "compiler" in err


def test_cached_binary_is_reused_without_building(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    _isolate(tmp_path, monkeypatch, tmp_path / "empty")  # no cmake, no compiler: a build would fail
    args = bls.server_cmake_args(bls.build_llama.cmake_args(bls.build_llama.cpu_flags()))
    binary = _exe(bls.server_cache_dir(args) / "llama-server")
    assert bls.main() == 0
    out, _ = capsys.readouterr()
    assert out == f"{binary}\n"
    assert os.access(out.strip(), os.X_OK)


def test_a_second_caller_waits_for_the_running_build_and_reuses_it(tmp_path, monkeypatch, capsys):
    import fcntl
    import threading

    (tmp_path / "empty").mkdir()
    _isolate(tmp_path, monkeypatch, tmp_path / "empty")
    out = bls.server_cache_dir(bls.server_cmake_args(bls.build_llama.cmake_args(bls.build_llama.cpu_flags())))
    out.parent.mkdir(parents=True)
    waiting = threading.Event()
    monkeypatch.setattr(bls, "_log", lambda message: waiting.set() if "waiting" in message else None)
    monkeypatch.setattr(bls, "build", lambda args, out: pytest.fail("built a second time"))
    result = []
    with open(out.parent / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the "other" build
        caller = threading.Thread(target=lambda: result.append(bls.main()))
        caller.start()
        assert waiting.wait(30)
        binary = _exe(out / "llama-server")  # the other build finishes
    caller.join(30)
    assert result == [0]
    assert capsys.readouterr().out == f"{binary}\n"
