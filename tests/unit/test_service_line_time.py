"""The completion service tells the guard when a single-line suggestion's line was finished (issue 13)."""

from __future__ import annotations

import pytest

from lsp_server.documents import DocumentSnapshot
from lsp_server.inference.types import GenerationRequest, GenerationResult
from tests.unit.fakes import FakeEngine, service_with


class SlowLines(FakeEngine):
    """Ten tokens at 20 tok/s after a 0.1 s prompt: under the 40 tok/s target, the line done in 0.55 s."""

    async def generate(self, request: GenerationRequest, cancel=None) -> GenerationResult:
        self.requests.append(request)
        return GenerationResult(
            text="value + 1\n", stop_reason="stop", n_prompt_tokens=40, n_reused_tokens=0, n_generated_tokens=10,
            token_logprobs=[-0.05] * 10, prompt_eval_s=0.1, time_to_first_token_s=0.1, decode_s=0.45,
        )


def doc(text: str, uri: str) -> DocumentSnapshot:
    offset = text.index("|")
    text = text.replace("|", "")
    return DocumentSnapshot(uri=uri, version=1, text=text, offset=offset, language_id="python", path=None)


SINGLE = "def f(value):\n    result = |\n    return result\n"
MULTI = "def f(value):\n    |\n"


@pytest.mark.asyncio
async def test_single_line_positions_report_their_line_time_and_multi_line_ones_do_not(monkeypatch):
    service = service_with(SlowLines())
    seen: list[float | None] = []
    record = service.guard.record

    def spy(rung, tokens_per_s, ttft_s, n_tokens, *, line_s=None):
        seen.append(line_s)
        return record(rung, tokens_per_s, ttft_s, n_tokens, line_s=line_s)

    monkeypatch.setattr(service.guard, "record", spy)
    single = doc(SINGLE, "file:///a.py")
    assert not service._context(single, service.tiers.engine, service.guard.current).multiline
    await service.complete(single)
    multi = doc(MULTI, "file:///b.py")
    assert service._context(multi, service.tiers.engine, service.guard.current).multiline
    await service.complete(multi)
    assert seen == [pytest.approx(0.55), None]


@pytest.mark.asyncio
async def test_slow_tokens_on_single_lines_finished_in_time_do_not_shift_the_guard():
    service = service_with(SlowLines())
    for n in range(8):
        await service.complete(doc(SINGLE.replace("result", f"r{n}"), f"file:///{n}.py"))
    assert service.guard.shifts == []
