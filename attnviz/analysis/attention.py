"""``attention``: raw attention, head mean per layer, read at the explained rows."""

from __future__ import annotations

from attnviz.analysis.base import (
    AnalysisContext,
    AnalysisResult,
    TokenScores,
    explained_scores,
    head_mean,
    register_analysis,
)
from attnviz.data import Capture


class RawAttention:
    name = "attention"
    description = "raw attention weights: head mean per layer, read at the explained row(s)"
    needs_gradients = False
    requires: tuple[str, ...] = ()

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        att = capture.main
        scores = explained_scores(capture.explained.weights, head_mean(att.weights))  # (L, r, k)
        return AnalysisResult(
            name=self.name,
            token_scores=(
                TokenScores(
                    method=self.name,
                    label="raw attention (head mean)",
                    values=scores,
                    stage_labels=tuple(f"layer {i + 1}" for i in range(att.num_layers)),
                    default_stage=att.num_layers - 1,
                    sequence=att.key,
                    note="a = w · mean_h A[l, h]  (w: explained-row weights); rows of A sum to 1",
                ),
            ),
        )


register_analysis(RawAttention())
