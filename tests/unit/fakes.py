"""Stand-ins for an engine and the loaded tiers, for CompletionService tests that need no model."""

from __future__ import annotations

from pathlib import Path

from lsp_server.completion.fim import TEMPLATES
from lsp_server.completion.service import CompletionService
from lsp_server.inference.guard import LatencyGuard, build_ladder
from lsp_server.inference.stream import GenerationStream
from lsp_server.inference.types import GenerationRequest, GenerationResult
from lsp_server.settings import GearshiftSettings

MODEL = "smollm2-135m"


class FakeEngine:
    name = MODEL
    label = MODEL
    model_path = Path("/nowhere/model.gguf")
    metadata: dict = {}
    fim_family = None
    vocabulary = None
    prompt_tokens_per_s = None

    def __init__(self) -> None:
        self.prewarmed: list[str] = []
        self.requests: list[GenerationRequest] = []

    def set_n_threads(self, n: int) -> None:
        pass

    def stream(self, request: GenerationRequest, cancel=None) -> GenerationStream:
        """The result of ``generate`` (which stand-ins override), with no partial outputs on the way."""
        return GenerationStream(cancel).run(self.generate(request, cancel))

    async def generate(self, request: GenerationRequest, cancel=None) -> GenerationResult:
        self.requests.append(request)
        return GenerationResult(
            text="total", stop_reason="stop", n_prompt_tokens=10, n_reused_tokens=0, n_generated_tokens=1,
            token_logprobs=[-0.1], prompt_eval_s=0.01, time_to_first_token_s=0.01, decode_s=0.0,
        )

    def count_tokens(self, text: str) -> int:
        return len(text) // 3 + 1

    async def prewarm(self, request: GenerationRequest) -> bool:
        self.prewarmed.append(request.prompt)
        return True

    def stats(self) -> dict:
        return {"model": self.name}

    def close(self) -> None:
        pass


class FakeTiers:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def get_loaded(self, model: str) -> FakeEngine:
        return self.engine

    async def get(self, model: str) -> FakeEngine:
        return self.engine


def service_with(engine: FakeEngine, prefix_tokens: int = 256, speculate: bool = False) -> CompletionService:
    """A service on ``engine``; ``speculate``: with the background speculation after a shown suggestion (off, so
    that tests counting requests see theirs only)."""
    settings = GearshiftSettings.model_validate(
        {"completion": {"prefixTokens": prefix_tokens, "speculateNext": speculate}})
    guard = LatencyGuard(build_ladder([MODEL], [MODEL], 2), settings.guard, target_tok_s=40.0)
    service = CompletionService(settings, FakeTiers(engine), guard)  # type: ignore[arg-type]
    service._templates[(str(engine.model_path), None)] = TEMPLATES["qwen"]  # no GGUF file to read here
    return service
