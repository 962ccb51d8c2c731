"""Build (once) and locate llama.cpp's ``llama-server``, from the same source as the wheel.

The source is the llama.cpp copy vendored in the llama-cpp-python sdist that
``scripts/build_llama.py`` builds the wheel from (same version, pinned by
hash), and the SIMD flags are that script's: exactly what the CPU reports,
never ``-march=native``, never AMX.  Only the ``llama-server`` target is
built, statically linked, without curl, OpenSSL or a downloaded web UI, so
nothing but the sdist comes from the network.  The binary is cached under
``~/.cache/gearshift/llama-server/`` keyed by the llama.cpp version and the
flags, so a re-run (or a fresh clone on the same machine) reuses it.

Usage: python scripts/build_llama_server.py  -> prints the binary's path on stdout.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location("build_llama", Path(__file__).resolve().parent / "build_llama.py")
build_llama = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_llama)

LLAMA_CPP_PYTHON_VERSION = build_llama.LLAMA_CPP_PYTHON_VERSION
# The llama.cpp commit vendored in that sdist (its CHANGELOG says so; checked after download).
LLAMA_CPP_COMMIT = "0c1e57098"
# sha256 of llama_cpp_python-0.3.36.tar.gz on PyPI: pip refuses any other file.
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
BUILD_JOBS = 2

# Only what llama-server needs: no tests, examples, app, curl, TLS, nor a web UI fetched from a bucket.
_SERVER_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_COMMON=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_LLGUIDANCE=OFF",
)


class BuildError(Exception):
    """A missing tool or a failed step: one line for the user."""


def server_cmake_args(ggml_args: list[str], commit: str = LLAMA_CPP_COMMIT) -> list[str]:
    """Every CMake option of the server build: the wheel's ggml flags plus the server-only set."""
    return [*ggml_args, *_SERVER_OPTIONS, f"-DLLAMA_BUILD_COMMIT={commit}"]


def cache_key(args: list[str], version: str = LLAMA_CPP_PYTHON_VERSION, commit: str = LLAMA_CPP_COMMIT) -> str:
    """Directory name: llama.cpp commit, wheel version, enabled SIMD set and a digest of every option."""
    enabled = "-".join(a[2:-3].removeprefix("GGML_").lower() for a in args if a.startswith("-DGGML_") and a.endswith("=ON"))
    digest = hashlib.sha256("\n".join(sorted(args)).encode()).hexdigest()[:10]
    return f"llama.cpp-{commit}-py{version}-{enabled or 'generic'}-{digest}"


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gearshift"


def server_cache_dir(args: list[str]) -> Path:
    return cache_root() / "llama-server" / cache_key(args)


def vendored_commit(changelog: str, version: str) -> str | None:
    """The llama.cpp commit the CHANGELOG section of ``version`` says it updated to (first mention)."""
    section = re.search(rf"^## \[{re.escape(version)}\]\s*$(.*?)(?=^## \[|\Z)", changelog, re.M | re.S)
    if not section:
        return None
    found = re.search(r"llama\.cpp@([0-9a-f]{7,40})", section.group(1))
    return found.group(1) if found else None


def find_tool(name: str, venv_bin: Path | None = None) -> str | None:
    """The venv's copy (pip's ``cmake``/``ninja`` packages) first, then PATH."""
    venv_bin = venv_bin or Path(sys.executable).parent
    candidate = venv_bin / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


def find_compilers(env: dict[str, str] | None = None) -> tuple[str | None, str | None]:
    env = os.environ if env is None else env
    cc = shutil.which(env["CC"]) if env.get("CC") else next(filter(None, map(shutil.which, ("cc", "gcc", "clang"))), None)
    cxx = shutil.which(env["CXX"]) if env.get("CXX") else next(filter(None, map(shutil.which, ("c++", "g++", "clang++"))), None)
    return cc, cxx


def check_tools() -> tuple[str, str | None, str, str]:
    cmake = find_tool("cmake")
    if cmake is None:
        raise BuildError("cmake not found (in the venv or on PATH): install it (apt install cmake, or .venv/bin/pip install cmake)")
    cc, cxx = find_compilers()
    if cc is None or cxx is None:
        raise BuildError("no C/C++ compiler found (cc/c++, gcc/g++ or clang/clang++; or set CC/CXX): install one (apt install build-essential)")
    return cmake, find_tool("ninja"), cc, cxx


def _log(message: str) -> None:
    print(f"build_llama_server: {message}", file=sys.stderr, flush=True)


def fetch_sdist(dest: Path) -> Path:
    """The llama-cpp-python sdist, downloaded once by pip with its hash pinned."""
    name = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    sdist = dest / name
    if sdist.is_file() and hashlib.sha256(sdist.read_bytes()).hexdigest() == SDIST_SHA256:
        return sdist
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} --hash=sha256:{SDIST_SHA256}\n")
        _log(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "--require-hashes",
             "-d", tmp, "-r", str(req)],
            stdout=sys.stderr, check=False,
        )
        if done.returncode != 0 or not (Path(tmp) / name).is_file():
            raise BuildError(f"pip could not download {name} (exit {done.returncode})")
        os.replace(Path(tmp) / name, sdist)
    return sdist


def extract_vendored(sdist: Path, dest: Path) -> Path:
    """Unpack only the vendored llama.cpp tree (and the CHANGELOG) into ``dest``; return the llama.cpp root."""
    top = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/"
    keep = (f"{top}vendor/llama.cpp/", f"{top}CHANGELOG.md")
    root = dest / top / "vendor" / "llama.cpp"
    marker = dest / ".extracted"
    if not marker.is_file():  # an interrupted build resumes on the same tree (same mtimes: no rebuild)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(keep)]
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=members, **kwargs)
        marker.write_text(f"{sdist.name}\n")
    commit = vendored_commit((dest / top / "CHANGELOG.md").read_text(), LLAMA_CPP_PYTHON_VERSION)
    if commit is None or not (LLAMA_CPP_COMMIT.startswith(commit) or commit.startswith(LLAMA_CPP_COMMIT)):
        raise BuildError(f"the sdist vendors llama.cpp@{commit}, not the pinned {LLAMA_CPP_COMMIT}: update LLAMA_CPP_COMMIT")
    # The sdist's .git file points at a parent repository it does not ship; without it
    # build-info.cmake cannot be fooled by a repository the cache happens to sit in.
    (root / ".git").unlink(missing_ok=True)
    return root


def build(args: list[str], out: Path) -> Path:
    cmake, ninja, cc, cxx = check_tools()
    work = out.parent / f"{out.name}.partial"
    work.mkdir(parents=True, exist_ok=True)
    sdist = fetch_sdist(cache_root() / "sdist")
    source = extract_vendored(sdist, work / "src")
    build_dir = work / "build"
    configure = [cmake, "-S", str(source), "-B", str(build_dir), f"-DCMAKE_C_COMPILER={cc}",
                 f"-DCMAKE_CXX_COMPILER={cxx}", *args]
    if ninja and not (build_dir / "CMakeCache.txt").exists():
        configure[1:1] = ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    _log(f"configuring llama.cpp@{LLAMA_CPP_COMMIT} with {' '.join(args)}")
    if subprocess.run(configure, stdout=sys.stderr, check=False).returncode != 0:
        raise BuildError(f"cmake configure failed (see above; build tree kept in {build_dir})")
    jobs = int(os.environ.get("GEARSHIFT_BUILD_JOBS", BUILD_JOBS))
    _log(f"building llama-server with -j{jobs} (about 15 minutes on 2 cores)")
    started = time.monotonic()
    done = subprocess.run([cmake, "--build", str(build_dir), "--target", "llama-server", "-j", str(jobs)],
                          stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise BuildError(f"llama-server build failed (see above; build tree kept in {build_dir})")
    binary = build_dir / "bin" / "llama-server"
    if not binary.is_file():
        raise BuildError(f"the build produced no {binary}")
    _log(f"built in {time.monotonic() - started:.0f} s")
    out.mkdir(parents=True, exist_ok=True)
    staged = out / "llama-server.partial"
    shutil.copy2(binary, staged)
    (out / "build-info.json").write_text(json.dumps({
        "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION, "llama_cpp_commit": LLAMA_CPP_COMMIT,
        "sdist_sha256": SDIST_SHA256, "cmake_args": args,
    }, indent=2) + "\n")
    os.replace(staged, out / "llama-server")  # atomic: never a half-written binary in the cache
    shutil.rmtree(work, ignore_errors=True)
    return out / "llama-server"


def _usable(binary: Path) -> bool:
    return binary.is_file() and os.access(binary, os.X_OK)


def main() -> int:
    args = server_cmake_args(build_llama.cmake_args(build_llama.cpu_flags()))
    out = server_cache_dir(args)
    binary = out / "llama-server"
    try:
        if not _usable(binary):
            out.parent.mkdir(parents=True, exist_ok=True)
            # One build at a time per key: a second caller (another checkout, a parallel make) waits for it.
            with open(out.parent / f"{out.name}.lock", "w") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    _log("another build of this llama-server is running; waiting for it")
                    fcntl.flock(lock, fcntl.LOCK_EX)
                if not _usable(binary):
                    binary = build(args, out)
    except BuildError as exc:
        print(f"build_llama_server: {exc}", file=sys.stderr)
        return 1
    print(binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
