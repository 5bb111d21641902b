"""``heads``: per-head diagnostics — normalised entropy and the share of attention on special tokens."""

from __future__ import annotations

import numpy as np

from attnviz.analysis.base import AnalysisContext, AnalysisResult, HeadMetric
from attnviz.data import AttentionMap, Capture


def visible_keys(q: int, k: int, causal: bool) -> np.ndarray:
    """(q,) number of keys each query row can attend to (row i of a causal map sees i + 1 + k − q)."""
    if not causal:
        return np.full(q, k)
    return np.arange(1, q + 1) + (k - q)


def normalized_entropy(weights: np.ndarray, causal: bool = False) -> np.ndarray:
    """Mean over rows of −Σ p ln p / ln(visible keys); 1 is uniform, 0 is one-hot.

    Rows that can see a single key carry no information and are left out.

    Args:
        weights: (L, H, q, k) attention probabilities.
        causal: whether row i only sees keys up to i.

    Returns:
        (L, H) entropy in [0, 1].
    """
    p = weights.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    row_entropy = -plogp.sum(axis=-1)  # (L, H, q)
    visible = visible_keys(p.shape[2], p.shape[3], causal)
    useful = visible > 1
    if not useful.any():
        return np.zeros(p.shape[:2])
    normed = row_entropy[..., useful] / np.log(visible[useful])
    return normed.mean(axis=-1)


def mass_on(weights: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(L, H, q, k), (k,) bool → (L, H): mean over rows of the attention mass on the marked columns."""
    return weights[..., columns].astype(np.float64).sum(axis=-1).mean(axis=-1)


class HeadDiagnostics:
    name = "heads"
    description = "per-head normalised entropy and share of attention on special tokens"
    needs_gradients = False
    requires: tuple[str, ...] = ()

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        metrics: list[HeadMetric] = []
        for att in capture.attentions.values():
            metrics.extend(self._metrics(capture, att))
        return AnalysisResult(name=self.name, head_metrics=tuple(metrics))

    def _metrics(self, capture: Capture, att: AttentionMap) -> list[HeadMetric]:
        special = capture.sequences[att.key].special_mask
        return [*self._basic(att, special), *self._cross_segment(capture, att)]

    def _cross_segment(self, capture: Capture, att: AttentionMap) -> list[HeadMetric]:
        """For two-segment inputs (pairs, question + context): attention mass crossing segments."""
        seq = capture.sequences[att.key]
        if att.query != att.key or len(set(seq.segments)) < 2:
            return []
        segments = np.asarray(seq.segments)
        real = ~seq.special_mask
        names = seq.segment_names
        metrics = []
        for a, b in ((0, 1), (1, 0)):
            rows = (segments == a) & real
            cols = (segments == b) & real
            values = att.weights[:, :, rows][..., cols].astype(np.float64).sum(axis=-1).mean(axis=-1)
            metrics.append(
                HeadMetric(
                    name=f"cross_{a}_to_{b}",
                    label=f"{names[a]} → {names[b]}",
                    values=values,
                    attention=att.kind,
                    note=f"mean over {names[a]} tokens of the mass on {names[b]} tokens (special tokens left out)",
                )
            )
        return metrics

    def _basic(self, att: AttentionMap, special: np.ndarray) -> list[HeadMetric]:
        return [
            HeadMetric(
                name="entropy",
                label="normalised entropy",
                values=normalized_entropy(att.weights, att.causal),
                attention=att.kind,
                note="mean over rows of −Σ p ln p / ln(visible keys): 1 = uniform, 0 = one token",
            ),
            HeadMetric(
                name="special_share",
                label="attention on special tokens",
                values=mass_on(att.weights, special),
                attention=att.kind,
                note="mean over rows of the attention mass on special tokens ([CLS], [SEP], <s>, …)",
            ),
        ]
