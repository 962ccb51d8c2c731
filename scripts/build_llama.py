"""Build (once) and locate a llama-cpp-python wheel that is safe for this CPU.

A default llama-cpp-python build compiles ggml with ``-march=native``; on
AMX-capable Xeons that build crashes on the first multi-token decode
(llama.cpp issue #20824).  We never build native: we turn on exactly the
SIMD extensions the CPU reports (AVX2, FMA, F16C, AVX-512, VNNI) and keep
AMX off.  The wheel is cached per flag set outside the repository, so a
re-run (or a fresh clone on the same machine) reuses it instead of
spending ~12 minutes rebuilding.

Usage: python scripts/build_llama.py  -> prints the wheel path on stdout.
"""

from __future__ import annotations

import glob
import os
import platform
import subprocess
import sys
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"

# ggml CMake option -> /proc/cpuinfo flag that must be present for it.
_X86_OPTIONS: dict[str, str] = {
    "GGML_AVX": "avx",
    "GGML_AVX2": "avx2",
    "GGML_FMA": "fma",
    "GGML_F16C": "f16c",
    "GGML_BMI2": "bmi2",
    "GGML_AVX512": "avx512f",
    "GGML_AVX512_VBMI": "avx512_vbmi",
    "GGML_AVX512_VNNI": "avx512_vnni",
    "GGML_AVX512_BF16": "avx512_bf16",
}
# AMX kernels are what crash (issue #20824): always off, whatever the CPU says.
_ALWAYS_OFF = ("GGML_NATIVE", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """Return the CPU feature flags of the first processor in /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cmake_args(flags: set[str], machine: str | None = None) -> list[str]:
    """CMake options for ggml: explicit SIMD set from ``flags``, never native, never AMX."""
    machine = machine or platform.machine()
    args = [f"-D{name}=OFF" for name in _ALWAYS_OFF]
    if machine in ("x86_64", "AMD64"):
        for option, flag in _X86_OPTIONS.items():
            args.append(f"-D{option}={'ON' if flag in flags else 'OFF'}")
    return args


def wheel_cache_dir(args: list[str]) -> Path:
    enabled = "-".join(a[2:-3].removeprefix("GGML_").lower() for a in args if a.endswith("=ON")) or "generic"
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "gearshift" / "wheels" / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}-{enabled}"


def main() -> int:
    args = cmake_args(cpu_flags())
    out = wheel_cache_dir(args)
    found = sorted(glob.glob(str(out / "llama_cpp_python-*.whl")))
    if found:
        print(found[-1])
        return 0
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CMAKE_ARGS=" ".join(args), CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    print(f"building llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} with {env['CMAKE_ARGS']} (about 12 minutes on 2 cores)", file=sys.stderr)
    tmp = out.parent / f"{out.name}.partial"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(tmp),
         f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"],
        env=env, check=True, stdout=sys.stderr,
    )
    for wheel in glob.glob(str(tmp / "llama_cpp_python-*.whl")):
        os.replace(wheel, out / Path(wheel).name)  # atomic: never a half-written wheel in the cache
    found = sorted(glob.glob(str(out / "llama_cpp_python-*.whl")))
    if not found:
        print("llama-cpp-python build produced no wheel", file=sys.stderr)
        return 1
    print(found[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
