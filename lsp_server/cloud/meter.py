"""Tokens and US dollars spent on the cloud model in this session.

Each request is priced when it is recorded, at the prices configured then, so
changing prices mid-session does not rewrite what was already spent.
"""

from __future__ import annotations

import threading
from typing import Any

from lsp_server.settings import CloudSettings
from lsp_server.wire import WireModel


class MeterTotals(WireModel):
    """What the session spent on the cloud model so far."""

    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    """Rounded to a millionth of a dollar."""


class CostMeter:
    """Per-session totals, safe to record from any thread; ``snapshot()`` is the ``cloud`` part of status."""

    def __init__(self, settings: CloudSettings | None = None) -> None:
        settings = settings or CloudSettings()
        self._input_price = settings.input_cost_per_mtok
        self._output_price = settings.output_cost_per_mtok
        self._lock = threading.Lock()
        self.requests = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0

    def update_settings(self, settings: CloudSettings) -> None:
        """Price requests recorded from now on at the new settings' prices."""
        with self._lock:
            self._input_price = settings.input_cost_per_mtok
            self._output_price = settings.output_cost_per_mtok

    def price(self, input_tokens: int, output_tokens: int) -> float:
        """What a request of this size costs at the current prices, in US dollars."""
        return (input_tokens * self._input_price + output_tokens * self._output_price) / 1_000_000

    def record(self, *, input_tokens: int, output_tokens: int) -> float:
        """Add one cloud request; returns its cost in US dollars."""
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError("token counts cannot be negative")
        with self._lock:
            cost = self.price(input_tokens, output_tokens)
            self.requests += 1
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            self.cost_usd += cost
            return cost

    def totals(self) -> MeterTotals:
        with self._lock:
            return MeterTotals(requests=self.requests, input_tokens=self.input_tokens,
                               output_tokens=self.output_tokens, cost_usd=round(self.cost_usd, 6))

    def snapshot(self) -> dict[str, Any]:
        """``{"requests", "inputTokens", "outputTokens", "costUsd"}`` as in docs/protocol.md."""
        return self.totals().to_json()
