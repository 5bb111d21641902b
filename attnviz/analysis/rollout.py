"""Attention rollout (Abnar & Zuidema, ACL 2020): products of residual-augmented head-mean attention.

Pure numpy; see ``research/methods.md`` section 2.1 for the formula and reference values.
"""

from __future__ import annotations

import numpy as np

from attnviz.analysis.base import AnalysisContext, AnalysisResult, stage_scores
from attnviz.types import HEAD_MEAN, ROLLOUT, Capture, Needs


def _check_layers(mean_attn: np.ndarray, name: str = "mean_attn") -> np.ndarray:
    """Return ``mean_attn`` as a float64 array after checking it is (L, n, n), finite and non-negative."""
    arr = np.asarray(mean_attn, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"{name} must have shape (L, n, n); got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have shape (L, n, n) with L, n >= 1; got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative (post-softmax attention)")
    return arr


def residual_augment(mean_attn: np.ndarray) -> np.ndarray:
    """Add the residual connection to each layer's head-mean attention and renormalise the rows.

    ``Â_l = (Ā_l + I) / rowsum(Ā_l + I)``, which equals ``0.5·Ā_l + 0.5·I`` when the rows of ``Ā_l``
    sum to 1 (the reference code's form, kept because it stays row-stochastic for any input).

    Args:
        mean_attn: (L, n, n) head-mean attention per layer; row = query, column = key.

    Returns:
        (L, n, n) residual-augmented attention; every row sums to 1.

    Raises:
        ValueError: if ``mean_attn`` is not (L, n, n), or has negative or non-finite entries.
    """
    arr = _check_layers(mean_attn)
    aug = arr + np.eye(arr.shape[-1])  # (L, n, n)
    # Rows sum to >= 1 because of the identity, so the division is always safe.
    return aug / aug.sum(axis=-1, keepdims=True)


def rollout_rows(mean_attn: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rows of every layer's rollout: ``w · R_l`` for l = 1 … L, without forming any ``R_l``.

    ``w · R_l = w · Â_l · Â_(l−1) ⋯ Â_1`` is evaluated right to left on row vectors, one layer's ``Â``
    at a time (from the top layer down, each applied to every stage that still needs it), so memory is
    O(L·r·n) plus one (n, n) matrix and the cost O(L²·r·n²) instead of O(L·n³). Equals
    ``einsum("rq,lqk->lrk", w, attention_rollout(mean_attn))`` up to rounding.

    Args:
        mean_attn: (L, n, n) head-mean attention per layer (float32 is fine; each layer is used in float64).
        weights: (r, n) row weights (explained rows), or any row vectors.

    Returns:
        (L, r, n) ``w · R_l`` for every layer.
    """
    layers = mean_attn.shape[0]
    out = np.zeros((layers, *weights.shape))
    for layer in reversed(range(layers)):
        out[layer] = weights
        out[layer:] = out[layer:] @ residual_augment(mean_attn[layer : layer + 1])[0]
    return out


def attention_rollout(mean_attn: np.ndarray) -> np.ndarray:
    """Roll attention out through the layers: ``R_1 = Â_1``, ``R_l = Â_l · R_{l-1}``.

    Row ``t`` of ``R_l`` is the relevance of every input token for position ``t`` after layer ``l``.
    Cost O(L·n³).

    Args:
        mean_attn: (L, n, n) head-mean attention per layer (crop padding first).

    Returns:
        (L, n, n) rollout after every layer; ``[l]`` is the product up to layer ``l + 1``. Every row
        of every layer sums to 1.

    Raises:
        ValueError: if ``mean_attn`` is not (L, n, n), or has negative or non-finite entries.
    """
    aug = residual_augment(mean_attn)  # (L, n, n)
    out = np.empty_like(aug)
    out[0] = aug[0]
    for layer in range(1, aug.shape[0]):
        out[layer] = aug[layer] @ out[layer - 1]  # (n, n)
    return out


class Rollout:
    """``rollout``: residual-augmented head-mean attention multiplied through the layers.

    Self-attention models read the explained rows of every layer's rollout (the ``rollout_rows`` view,
    built by capture top layer first). Encoder-decoders read the last decoder layer's cross-attention
    (head mean) through the encoder rollout (capture keeps those head means for encoder-decoders):
    ``r = a_cross · R̃_enc^l``, so the scores stay a distribution over source tokens.
    """

    name = "rollout"
    description = "attention rollout (Abnar & Zuidema 2020): (0.5·mean_h A + 0.5·I) multiplied through layers"
    needs = Needs(attention=frozenset({ROLLOUT}), produces_scores=True)

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        att = capture.main
        weights = capture.explained.weights
        if att.kind == "cross":
            cross = att.view(HEAD_MEAN)[-1].astype(np.float64)  # (n_t, n_s), last decoder layer
            encoder = capture.attentions["encoder"].view(HEAD_MEAN)  # (L_e, n_s, n_s)
            scores = stage_scores(
                capture,
                self.name,
                "attention rollout (through the encoder)",
                rollout_rows(encoder, weights @ cross),
                "r = mean_h A_cross[last] · R̃_enc^l,  R̃^l = Â^l·…·Â^1,  Â = (Ā + I)/2",
                stage_prefix="encoder layer",
            )
        else:
            scores = stage_scores(
                capture,
                self.name,
                "attention rollout",
                att.view(ROLLOUT),
                "R̃^l = Â^l · R̃^(l−1),  Â = (mean_h A + I)/2; rows sum to 1",
            )
        return AnalysisResult(name=self.name, token_scores=(scores,))
