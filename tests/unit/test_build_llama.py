"""The llama.cpp build never goes native and never enables AMX, whatever the CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "build_llama", Path(__file__).resolve().parents[2] / "scripts" / "build_llama.py"
)
build_llama = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_llama)

SAPPHIRE_RAPIDS = "flags : fpu sse2 avx avx2 fma f16c bmi2 avx512f avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16"
EPYC_ZEN3 = "flags : fpu sse2 avx avx2 fma f16c bmi2 sha_ni"
OLD_SSE = "flags : fpu sse2 sse4_2"


@pytest.mark.parametrize(
    "cpuinfo, on, off",
    [
        pytest.param(SAPPHIRE_RAPIDS, {"GGML_AVX2", "GGML_AVX512", "GGML_AVX512_VNNI"}, set(), id="amx-xeon"),
        pytest.param(EPYC_ZEN3, {"GGML_AVX2", "GGML_FMA", "GGML_F16C"}, {"GGML_AVX512"}, id="epyc-no-avx512"),
        pytest.param(OLD_SSE, set(), {"GGML_AVX", "GGML_AVX2", "GGML_FMA"}, id="sse-only"),
    ],
)
def test_cmake_args_follow_cpu_flags(cpuinfo, on, off):
    args = build_llama.cmake_args(build_llama.cpu_flags(cpuinfo), machine="x86_64")
    for option in ("GGML_NATIVE", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"):
        assert f"-D{option}=OFF" in args
    for option in on:
        assert f"-D{option}=ON" in args
    for option in off:
        assert f"-D{option}=OFF" in args


def test_wheel_cache_is_keyed_by_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    xeon = build_llama.wheel_cache_dir(build_llama.cmake_args(build_llama.cpu_flags(SAPPHIRE_RAPIDS), "x86_64"))
    epyc = build_llama.wheel_cache_dir(build_llama.cmake_args(build_llama.cpu_flags(EPYC_ZEN3), "x86_64"))
    assert xeon != epyc
    assert str(xeon).startswith(str(tmp_path))
