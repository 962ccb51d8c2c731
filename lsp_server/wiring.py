"""The completion pipeline's objects, built one way for the server, every command and the benchmarks.

The server, `gearshift complete`, `gearshift eval` and the benchmarks run ``CompletionService`` in-process: real
engines from ``TierManager``, a latency guard over the installed ladder.  This module is the one place that turns
"this model, these settings" into that service, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from lsp_server.settings import GearshiftSettings, ModelSettings

if TYPE_CHECKING:  # the service imports the guard, the cache and the FIM code
    from lsp_server.completion.service import CompletionService
    from lsp_server.inference.tiers import TierManager


def is_model_path(model: str) -> bool:
    """Whether ``model`` names a GGUF file rather than a catalog model."""
    return Path(model).suffix == ".gguf" or "/" in model


def with_model(settings: GearshiftSettings, model: str) -> GearshiftSettings:
    """``settings`` with ``model`` (a catalog name or a GGUF path) as the default and only rung of the ladder."""
    is_path = is_model_path(model)
    models = ModelSettings(
        default_model="custom" if is_path else model,
        model_path=Path(model) if is_path else None,
        fim_template=settings.models.fim_template,
        ladder=["custom" if is_path else model],
    )
    return settings.model_copy(update={"models": models})


def whole_answers(settings: GearshiftSettings) -> GearshiftSettings:
    """``settings`` without early answers: a script wants the whole suggestion, not the part shown while the rest
    is generated."""
    completion = settings.completion.model_copy(update={"first_answer_ms": settings.completion.time_budget_ms})
    return settings.model_copy(update={"completion": completion})


def without_guard(settings: GearshiftSettings) -> GearshiftSettings:
    """``settings`` with the latency guard off: every request stays on the starting rung (one tier measured)."""
    return settings.model_copy(update={"guard": settings.guard.model_copy(update={"enabled": False})})


def new_service(settings: GearshiftSettings, tiers: TierManager, root: Path | None = None) -> CompletionService:
    """A ``CompletionService`` over ``tiers``, its latency guard starting at the configured default model (its
    quality floor from the `gearshift eval` report of the repository at ``root``, if there is one).

    Nothing loads yet: the guard's current model loads on the first request (or when the server asks for it).
    """
    from lsp_server.completion.service import CompletionService
    from lsp_server.inference.tiers import starting_guard

    return CompletionService(settings, tiers, starting_guard(settings, tiers, root))


@contextmanager
def completion_service(settings: GearshiftSettings) -> Iterator[CompletionService]:
    """A ``CompletionService`` over real engines for ``settings``; its engines are closed on exit.

    Engines load on the first request (``TierManager.get``), so entering this costs nothing yet.
    """
    from lsp_server.inference.tiers import TierManager

    tiers = TierManager(settings)
    try:
        yield new_service(settings, tiers)
    finally:
        tiers.close()
