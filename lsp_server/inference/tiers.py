"""Loaded engines by model name: load off the event loop, once, and keep the ones in use.

The latency guard names a model for each request; this is where that name
becomes a running engine.  Loading takes seconds (the weights, the context), so it
happens in a thread and concurrent callers wait for the same load.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from lsp_server.errors import ModelError
from lsp_server.settings import GearshiftSettings

log = logging.getLogger(__name__)


class TierManager:
    """Owns one engine per model name for the life of the server."""

    def __init__(self, settings: GearshiftSettings) -> None:
        self._settings = settings
        self._engines: dict[str, object] = {}
        self._loading: dict[str, asyncio.Future] = {}

    def update_settings(self, settings: GearshiftSettings) -> None:
        """New settings apply to engines loaded from now on; loaded ones whose engine settings changed are dropped."""
        changed = (
            settings.engine != self._settings.engine
            or settings.models.model_path != self._settings.models.model_path
            or settings.endpoints != self._settings.endpoints
        )
        self._settings = settings
        if changed:
            self.close()

    def model_path(self, model: str) -> Path:
        """The GGUF file for a tier name; a configured ``modelPath`` replaces the default model."""
        from lsp_server.inference.installed import resolve_model

        models = self._settings.models
        if models.model_path is not None and model == models.default_model:
            return resolve_model(str(models.model_path))
        return resolve_model(model)

    def endpoint(self, name: str):
        """The team endpoint called ``name`` (an EndpointSettings), or None for a local model."""
        return next((e for e in self._settings.endpoints if e.name == name), None)

    def remote_names(self) -> set[str]:
        return {endpoint.name for endpoint in self._settings.endpoints}

    def local_model(self) -> str:
        """The model code actions run on: the default, or the first installed local one when it is an endpoint.

        Explain and refactor stay on this machine (team endpoints serve inline completion only).
        """
        default = self._settings.models.default_model
        if self.endpoint(default) is None:
            return default
        remote = self.remote_names()
        local = [name for name in self.installed() if name not in remote]
        if not local:
            raise ModelError("Code actions need a local model and the ladder has none installed besides endpoints")
        return local[0]

    def installed(self) -> list[str]:
        """Ladder models that can be loaded now (team endpoints count as installed), largest first."""
        from lsp_server.inference.installed import installed_models

        models = self._settings.models
        available = set(installed_models()) | self.remote_names()
        if models.model_path is not None:
            available.add(models.default_model)
        return [name for name in models.ladder if name in available] or (
            [models.default_model] if models.default_model in available else []
        )

    def loaded(self) -> list[str]:
        return list(self._engines)

    def get_loaded(self, model: str):
        return self._engines.get(model)

    async def get(self, model: str, purpose: str = "completion"):
        """The engine for ``model``, loading it in a thread the first time (raises ModelError/EngineError).

        Explain/refactor answers run for many seconds, so they get their own context
        (``purpose="chat"``): a long answer never queues the next keystroke's completion.
        """
        key = model if purpose == "completion" else f"{model}#{purpose}"
        engine = self._engines.get(key)
        if engine is not None:
            return engine
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self._load, model))
            self._loading[key] = pending
            pending.add_done_callback(lambda _f, k=key: self._loading.pop(k, None))
        engine = await asyncio.shield(pending)
        self._engines[key] = engine
        return engine

    def _load(self, model: str):
        from lsp_server.inference.llama.engine import LlamaEngine

        if (endpoint := self.endpoint(model)) is not None:
            from lsp_server.inference.remote import RemoteEngine

            return RemoteEngine(endpoint)  # nothing to load: connections open on the first request

        path = self.model_path(model)
        log.info("loading model %s from %s", model, path)
        return LlamaEngine(path, self._settings.engine, name=model)

    def fits_alongside(self, model: str) -> bool:
        """Whether ``model`` can be kept loaded too: what `gearshift fit` sizes it at, under these engine
        settings, fits in the memory available now (the loaded models already use theirs)."""
        from lsp_server.inference.machine import available_ram_bytes
        from lsp_server.inference.sizing import fits_in_ram

        try:
            return fits_in_ram(self.model_path(model), self._settings.engine, available_ram_bytes())
        except ModelError:
            return False

    def close(self) -> None:
        for engine in self._engines.values():
            try:
                engine.close()  # type: ignore[attr-defined]
            except Exception:  # closing must not take the server down
                log.exception("closing engine failed")
        self._engines.clear()


def default_threads(settings: GearshiftSettings) -> int:
    """Decode threads: the setting, else what the engine picks (physical cores available to us)."""
    from lsp_server.inference.llama.threads import default_n_threads

    return settings.engine.n_threads or default_n_threads()


def starting_guard(settings: GearshiftSettings, tiers: TierManager, root: Path | None = None):
    """A latency guard over the installed ladder, starting at (and never above) the configured default model;
    its quality floor judges rungs by the ``gearshift eval`` report of the repository at ``root`` if there is one."""
    from lsp_server.inference.cpu import CpuMonitor
    from lsp_server.inference.guard import LatencyGuard, build_ladder
    from lsp_server.inference.guard.quality import quality_table

    rungs = build_ladder(
        tiers.installed(), settings.models.ladder, default_threads(settings),
        prompt_lookup=settings.engine.prompt_lookup, remote=tiers.remote_names(),
    )
    start = next((i for i, rung in enumerate(rungs) if rung.model == settings.models.default_model), 0)
    return LatencyGuard(
        rungs,
        settings.guard,
        target_tok_s=settings.guard.inline_target_tok_s,
        start_index=start,
        free_cores=CpuMonitor().free_cores,
        quality=quality_table(settings.models.default_model, root),
    )
