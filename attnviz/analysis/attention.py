"""``attention``: raw attention, head mean per layer, read at the explained rows."""

from __future__ import annotations

from attnviz.analysis.base import AnalysisContext, AnalysisResult, stage_scores
from attnviz.types import ROWS, Capture, Needs


class RawAttention:
    name = "attention"
    description = "raw attention weights: head mean per layer, read at the explained row(s)"
    needs = Needs(attention=frozenset({ROWS}), produces_scores=True)

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        rows = capture.main.view(ROWS)  # (L, H, r, k)
        scores = stage_scores(
            capture,
            self.name,
            "raw attention (head mean)",
            rows.mean(axis=1),
            "a = w · mean_h A[l, h]  (w: explained-row weights); rows of A sum to 1",
        )
        return AnalysisResult(name=self.name, token_scores=(scores,))
