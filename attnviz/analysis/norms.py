"""``norms``: value-weighted attention ‖α·f(x)‖ (Kobayashi et al., EMNLP 2020).

‖α^h_ij f^h(x_j)‖ = α^h_ij · ‖f^h(x_j)‖, so the per-head norms come from the attention and the value
norms the capture recorded; no (B, H, n, n, D) tensor is built.
"""

from __future__ import annotations

import numpy as np

from attnviz.analysis.base import AnalysisContext, AnalysisResult, HeadMetric, layer_scores
from attnviz.types import AttentionMap, Capture


def norm_weighted(att: AttentionMap) -> np.ndarray:
    """(L, H, q, k) α^h_ij · ‖f^h(x_j)‖ for an attention map with recorded value norms."""
    if att.value_norms is None:
        raise ValueError(f"{att.kind} attention has no value norms")
    return att.weights.astype(np.float64) * att.value_norms.astype(np.float64)[:, :, None, :]


def row_normalize(matrices: np.ndarray) -> np.ndarray:
    """Scale each row to sum to 1 (rows of zeros stay zero)."""
    sums = matrices.sum(axis=-1, keepdims=True)
    return np.divide(matrices, sums, out=np.zeros_like(matrices), where=sums > 0)


class Norms:
    name = "norms"
    description = "norm-weighted attention (Kobayashi et al. 2020): α·‖f(x)‖, head mean, rows rescaled to 1"
    needs_gradients = False
    needs_value_norms = True
    requires: tuple[str, ...] = ()

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        att = capture.main
        if att.value_norms is None:
            return AnalysisResult(
                name=self.name,
                messages=("norms: value norms are not available for this architecture (see README: supported models)",),
            )
        weighted = norm_weighted(att)  # (L, H, q, k)
        scores = layer_scores(
            capture,
            self.name,
            "norm-weighted attention",
            row_normalize(weighted.mean(axis=1)),
            "mean_h α^h_ij·‖f^h(x_j)‖, each row rescaled to sum to 1; f(x) = (x W_V + b_V) W_O",
        )
        metrics = []
        for kind_att in capture.attentions.values():
            if kind_att.value_norms is None:
                continue
            special = capture.sequences[kind_att.key].special_mask
            shares = row_normalize(norm_weighted(kind_att))[..., special].sum(axis=-1).mean(axis=-1)
            metrics.append(
                HeadMetric(
                    name="special_share_norm",
                    label="norm-weighted share on special tokens",
                    values=shares,
                    attention=kind_att.kind,
                    note="like the special-token share, but each weight is scaled by ‖f(x_j)‖ first",
                )
            )
        return AnalysisResult(name=self.name, token_scores=(scores,), head_metrics=tuple(metrics))
