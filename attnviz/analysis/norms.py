"""``norms``: value-weighted attention ‖α·f(x)‖ (Kobayashi et al., EMNLP 2020).

‖α^h_ij f^h(x_j)‖ = α^h_ij · ‖f^h(x_j)‖, so capture builds the norm-weighted views from the attention and
the value norms it recorded (``attnviz.model.views``); no (B, H, n, n, D) tensor is built.
"""

from __future__ import annotations

from attnviz.analysis.base import AnalysisContext, AnalysisResult, HeadMetric, stage_scores
from attnviz.types import NORM_ROWS, STATS, Capture, Needs

NORM_SHARE = "special_share_norm"


class Norms:
    name = "norms"
    description = "norm-weighted attention (Kobayashi et al. 2020): α·‖f(x)‖, head mean, rows rescaled to 1"
    needs = Needs(attention=frozenset({NORM_ROWS, STATS}), value_norms=True, produces_scores=True)

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        att = capture.main
        if att.norm_rows is None:
            return AnalysisResult(
                name=self.name,
                messages=("norms: value norms are not available for this architecture (see README: supported models)",),
            )
        scores = stage_scores(
            capture,
            self.name,
            "norm-weighted attention",
            att.norm_rows,
            "mean_h α^h_ij·‖f^h(x_j)‖, each row rescaled to sum to 1; f(x) = (x W_V + b_V) W_O",
        )
        metrics = tuple(
            HeadMetric(
                name=NORM_SHARE,
                label="norm-weighted share on special tokens",
                values=views.stats[NORM_SHARE],
                attention=views.kind,
                note="like the special-token share, but each weight is scaled by ‖f(x_j)‖ first",
            )
            for views in capture.attentions.values()
            if NORM_SHARE in views.stats
        )
        return AnalysisResult(name=self.name, token_scores=(scores,), head_metrics=metrics)
