"""The latency guard: the ladder of rungs, the measured quality that bounds it, and the shift policy."""

from lsp_server.inference.guard.ladder import Rung, Shift, build_ladder
from lsp_server.inference.guard.measurements import MIN_TOKENS_FOR_SPEED
from lsp_server.inference.guard.policy import LatencyGuard

__all__ = ["MIN_TOKENS_FOR_SPEED", "LatencyGuard", "Rung", "Shift", "build_ladder"]
