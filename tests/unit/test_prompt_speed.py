"""The prompt window follows the fastest prompt speed seen, not only the engine's one measurement at load."""

from __future__ import annotations

import asyncio

from lsp_server.documents import DocumentSnapshot
from lsp_server.inference.types import GenerationRequest, GenerationResult
from tests.unit.fakes import FakeEngine, service_with

TEXT = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(200)) + "def g(y):\n    "


class MeasuredEngine(FakeEngine):
    """Measured 28 prompt tokens/s at load (the machine was busy); its requests then evaluate at 400 tokens/s."""

    prompt_tokens_per_s = 28.0

    async def generate(self, request: GenerationRequest, cancel=None) -> GenerationResult:
        self.requests.append(request)
        evaluated = 800
        return GenerationResult(
            text="return y", stop_reason="stop", n_prompt_tokens=evaluated, n_reused_tokens=0, n_generated_tokens=3,
            token_logprobs=[-0.1] * 3, prompt_eval_s=evaluated / 400, time_to_first_token_s=2.0, decode_s=0.1,
        )


def window(service, engine) -> int:
    doc = DocumentSnapshot("file:///a.py", 1, TEXT, len(TEXT), "python", "/a.py")
    ctx = service._context(doc, engine, service.guard.current)
    return engine.count_tokens(ctx.prefix) + engine.count_tokens(ctx.suffix)


def test_a_slow_measurement_at_load_does_not_keep_the_window_small():
    engine = MeasuredEngine()
    service = service_with(engine, prefix_tokens=1024)
    service.settings.completion.cold_prompt_ms = 8000
    before = window(service, engine)
    assert before <= 28 * 8 + 64  # sized from the load measurement: 224 tokens
    doc = DocumentSnapshot("file:///a.py", 1, TEXT, len(TEXT), "python", "/a.py")
    asyncio.run(service.complete(doc))
    assert window(service, engine) > 3 * before  # 400 tokens/s x 8 s covers the configured window


def test_a_request_that_reused_its_prompt_says_nothing_about_prompt_speed():
    engine = MeasuredEngine()
    service = service_with(engine, prefix_tokens=1024)
    service.settings.completion.cold_prompt_ms = 8000
    before = window(service, engine)

    async def reused(request, cancel=None):
        return GenerationResult(
            text="return y", stop_reason="stop", n_prompt_tokens=800, n_reused_tokens=790, n_generated_tokens=3,
            token_logprobs=[-0.1] * 3, prompt_eval_s=0.001, time_to_first_token_s=0.05, decode_s=0.1,
        )

    engine.generate = reused  # type: ignore[method-assign]
    asyncio.run(service.complete(DocumentSnapshot("file:///a.py", 1, TEXT, len(TEXT), "python", "/a.py")))
    assert window(service, engine) == before
