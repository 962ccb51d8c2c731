"""`gearshift fit` sizes, times and describes the set-up the engine really runs (and the tier manager asks it)."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest

from lsp_server.cli.fit import options_from_args
from lsp_server.inference import machine
from lsp_server.inference.fit import measure_model, notes
from lsp_server.inference.machine import MachineMemory
from lsp_server.inference.sizing import FitOptions, fit_model
from lsp_server.inference.tiers import TierManager
from lsp_server.settings import EngineSettings, GearshiftSettings, ModelSettings

PLENTY = MachineMemory(ram_total_bytes=64 << 30, ram_available_bytes=60 << 30)


class _RecordingEngine:
    """Stands in for LlamaEngine: keeps the settings it was built with and decodes nothing real."""

    built: list[EngineSettings] = []

    def __init__(self, path: Path, settings: EngineSettings, name: str = "") -> None:
        self.built.append(settings)

    def generate_blocking(self, request):
        return SimpleNamespace(decode_tokens_per_s=50.0, n_generated_tokens=request.max_tokens)

    def close(self) -> None:
        pass


def _fit_args(*argv: str) -> argparse.Namespace:
    from lsp_server.cli import build_parser

    return build_parser("fit").parse_args(["fit", *argv])


@pytest.mark.parametrize("flag", ["off", "on", "auto"])
def test_measure_times_the_flash_attention_it_sized(
    smollm_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    from lsp_server.inference.llama import engine

    monkeypatch.setattr(engine, "LlamaEngine", _RecordingEngine)
    _RecordingEngine.built.clear()
    options = options_from_args(_fit_args("--flash-attn", flag, "--measure"))
    assert options.flash_attn is (flag != "off")
    fit = fit_model("smollm2-135m", smollm_path, options, PLENTY, bandwidth=None)
    measure_model(fit, options)
    assert [settings.flash_attention for settings in _RecordingEngine.built] == [options.flash_attn]
    assert _RecordingEngine.built[0].use_mmap is options.use_mmap is EngineSettings().use_mmap
    assert fit.measured_tok_s == 50.0


def test_the_note_says_how_the_engine_loads_the_weights() -> None:
    assert EngineSettings().use_mmap is False  # the engine reads the weights into memory by default
    shipped = " ".join(notes(FitOptions()))
    assert "read into memory" in shipped and "memory-mapped" not in shipped
    mapped = " ".join(notes(FitOptions.for_engine(EngineSettings(use_mmap=True))))
    assert "memory-mapped" in mapped and "read into memory" not in mapped


def test_sizing_for_the_engine_counts_flash_attention_as_the_engine_decides_it() -> None:
    assert FitOptions.for_engine(EngineSettings(flash_attention=False)).flash_attn is False
    # llama.cpp reads a quantized V cache only inside the flash-attention kernel: the engine turns it on
    forced = FitOptions.for_engine(EngineSettings(flash_attention=False, kv_cache_type_v="q8_0"))
    assert forced.flash_attn is True and forced.cache_type_v == "q8_0"


def test_keeping_a_tier_loaded_uses_fits_sizing(smollm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = GearshiftSettings(
        models=ModelSettings(default_model="custom", model_path=smollm_path, ladder=["custom"]),
        engine=EngineSettings(n_ctx=2048),
    )
    tiers = TierManager(settings)
    needed = fit_model("custom", smollm_path, FitOptions.for_engine(settings.engine), PLENTY, None).total_bytes
    # the old guess (twice the file plus 1 GB) is far above what llama.cpp allocates for this model
    assert needed < 2 * smollm_path.stat().st_size + 1_000_000_000
    monkeypatch.setattr(machine, "available_ram_bytes", lambda: needed)
    assert tiers.fits_alongside("custom")
    monkeypatch.setattr(machine, "available_ram_bytes", lambda: needed - 1)
    assert not tiers.fits_alongside("custom")
    monkeypatch.setattr(machine, "available_ram_bytes", lambda: None)
    assert not tiers.fits_alongside("custom")


def test_a_longer_context_needs_more_room(smollm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short = FitOptions.for_engine(EngineSettings(n_ctx=2048))
    needed = fit_model("custom", smollm_path, short, PLENTY, None).total_bytes
    monkeypatch.setattr(machine, "available_ram_bytes", lambda: needed)
    models = ModelSettings(default_model="custom", model_path=smollm_path, ladder=["custom"])
    assert TierManager(GearshiftSettings(models=models, engine=EngineSettings(n_ctx=2048))).fits_alongside("custom")
    assert not TierManager(GearshiftSettings(models=models, engine=EngineSettings(n_ctx=8192))).fits_alongside(
        "custom"
    )


def test_an_unknown_model_does_not_fit() -> None:
    assert not TierManager(GearshiftSettings()).fits_alongside("no-such-model")
