"""``attention``: raw attention, head mean per layer, read at the explained rows."""

from __future__ import annotations

from attnviz.analysis.base import AnalysisContext, AnalysisResult, head_mean, layer_scores
from attnviz.types import Capture


class RawAttention:
    name = "attention"
    description = "raw attention weights: head mean per layer, read at the explained row(s)"
    needs_gradients = False
    requires: tuple[str, ...] = ()

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        att = capture.main
        scores = layer_scores(
            capture,
            self.name,
            "raw attention (head mean)",
            head_mean(att.weights),
            "a = w · mean_h A[l, h]  (w: explained-row weights); rows of A sum to 1",
        )
        return AnalysisResult(name=self.name, token_scores=(scores,))
