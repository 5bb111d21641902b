"""Gradient-weighted relevancy propagation (Chefer, Gur & Wolf, ICCV 2021, "generic" rules).

Pure numpy; see ``research/methods.md`` section 2.3(b). Rule numbers follow the paper:

* rule 5: ``Ā = E_h[(∇A ⊙ A)^+]`` (:func:`gradient_weighted`);
* rules 6/7 (self-attention of stream s): ``R_ss += Ā·R_ss`` and ``R_sq += Ā·R_sq``;
* eqs. 8/9 (residual normalisation): ``R̄ = (R − I)/rowsum(R − I) + I`` (:func:`normalize_residual`);
* rule 10 (cross-attention, queries s, keys q): ``R_sq += R̄_ssᵀ · Ā_sq · R̄_qq``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from attnviz.analysis.base import AnalysisContext, AnalysisResult, stage_scores
from attnviz.types import GRAD_MEAN, RELEVANCY, Capture, Needs

_NEG_TOL = 1e-12
"""Entries of ``R − I`` may dip this far below 0 from rounding before ``normalize_residual`` objects."""


def _check_pair(attn: np.ndarray, grad: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return float64 copies of an attention tensor and its gradient after checking both are (L, H, q, k)."""
    a = np.asarray(attn, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if a.ndim != 4:
        raise ValueError(f"{name} attention must have shape (L, H, q, k); got {a.shape}")
    if g.shape != a.shape:
        raise ValueError(f"{name} gradient shape {g.shape} differs from its attention shape {a.shape}")
    if 0 in a.shape:
        raise ValueError(f"{name} attention has an empty dimension: {a.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(g))):
        raise ValueError(f"{name} attention or gradient contains NaN or infinite values")
    return a, g


def _weighted_square(attn: np.ndarray, grad: np.ndarray, name: str) -> np.ndarray:
    """Rule 5 for a self-attention stream, checking the maps are square: (L, H, n, n) ×2 → (L, n, n)."""
    cams = gradient_weighted(attn, grad)
    if cams.shape[1] != cams.shape[2]:
        raise ValueError(f"{name} self-attention must be square (L, H, n, n); got {np.shape(attn)}")
    return cams


def gradient_weighted(attn: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Rule 5: mean over heads of the positive part of gradient × attention.

    Args:
        attn: (L, H, q, k) post-softmax attention per layer and head.
        grad: (L, H, q, k) gradient of the explained logit with respect to ``attn``.

    Returns:
        (L, q, k) ``Ā_l = mean_h max(∇A ⊙ A, 0)``; non-negative.

    Raises:
        ValueError: if the shapes are not (L, H, q, k), differ, or hold non-finite values.
    """
    a, g = _check_pair(attn, grad, "the")
    return np.clip(g * a, 0.0, None).mean(axis=1)  # (L, q, k)


def self_relevancy(attn: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Relevancy of a single self-attention stream: ``R = I``, then ``R ← R + Ā_l·R`` for each layer.

    Works unchanged for encoders and causal decoders (a causal ``A`` is lower-triangular, and so is
    ``R``). Row ``t`` of the final ``R`` is the relevance of every token for position ``t``. Cost
    O(L·n³).

    Args:
        attn: (L, H, n, n) self-attention per layer and head.
        grad: (L, H, n, n) gradient of the explained logit with respect to ``attn``.

    Returns:
        (L, n, n) ``R`` after each layer; ``[-1]`` is the final relevancy. ``R ≥ 0`` and
        ``diag(R) ≥ 1``.

    Raises:
        ValueError: if the shapes are not (L, H, n, n), differ, or hold non-finite values.
    """
    cams = _weighted_square(attn, grad, "the")  # (L, n, n)
    n = cams.shape[-1]
    out = np.empty_like(cams)
    rel = np.eye(n)
    for layer, cam in enumerate(cams):
        rel = rel + cam @ rel  # rule 6
        out[layer] = rel
    return out


def normalize_residual(R: np.ndarray) -> np.ndarray:
    """Eqs. 8/9: ``R̄ = (R − I) / rowsum(R − I) + I``, separating the residual identity from the rest.

    A row of ``R − I`` that sums to 0 (no positive relevance reached that token, e.g. every gradient
    was ≤ 0) is left as the identity row instead of dividing by zero. The reference divides anyway
    and later zeroes the NaNs of the whole rule-10 product, which discards that layer's
    cross-attention term; keeping the identity row lets the rest of the matrix still contribute.

    Args:
        R: (..., n, n) relevancy matrices with ``R − I ≥ 0`` (what rules 6/7 produce).

    Returns:
        (..., n, n) normalised matrices; each row of ``R̄ − I`` sums to 1, or is all zero.

    Raises:
        ValueError: if ``R`` is not square in its last two axes, is not finite, or ``R − I`` has a
            negative entry (the reference asserts the diagonal is non-negative).
    """
    arr = np.asarray(R, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
        raise ValueError(f"R must have shape (..., n, n); got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("R contains NaN or infinite values")
    eye = np.eye(arr.shape[-1])
    excess = arr - eye  # (..., n, n)
    if np.any(excess < -_NEG_TOL):
        raise ValueError("R - I has negative entries; normalize_residual expects R from rules 6/7")
    sums = excess.sum(axis=-1, keepdims=True)  # (..., n, 1)
    safe = np.where(sums > 0, sums, 1.0)
    return np.where(sums > 0, excess / safe, 0.0) + eye


def encoder_decoder_relevancy(
    enc_cams: np.ndarray,
    dec_cams: np.ndarray,
    cross_cams: np.ndarray,
    causal: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Relevancy for an encoder–decoder, in the order of the reference DETR ``generate_ours``.

    1. Encoder self-attention over all encoder layers: ``R_ee = I``; ``R_ee += Ā_enc·R_ee``.
    2. ``R_dd = I`` and ``R_de = 0``. For each decoder layer, first its self-attention (rules 6/7)
       ``R_dd += Ā_self·R_dd`` and ``R_de += Ā_self·R_de``, then its cross-attention (rule 10)
       ``R_de += R̄_ddᵀ · Ā_cross · R̄_ee``.

    Reading of rule 10 (paper eq. 10 and ``apply_mm_attention_rules(R_qq, R_ii, cam)``, which
    computes ``R_ss_normalized.t() @ (cam_sq @ R_qq_normalized)``): ``R̄_dd`` is the normalised
    decoder relevancy *after* this layer's self-attention, ``R̄_ee`` the normalised final encoder
    relevancy, both via :func:`normalize_residual`; the left factor is **transposed**, so
    ``addition[a, :] = Σ_c R̄_dd[c, a] · (Ā_cross·R̄_ee)[c, :]``. For a causal decoder ``R̄_dd`` is
    lower-triangular, so target row ``a`` collects the cross-attention of positions ``c ≥ a``; this
    follows the paper as written (DETR's decoder is not causal). With ``causal=True`` the left factor
    is ``R̄_dd`` itself, so row ``a`` collects the cross-attention of the positions it depends on
    (``c ≤ a``): what a step-by-step decoder can actually have used. Shapes: ``R̄_dd`` (n_t, n_t),
    ``Ā_cross`` (n_t, n_s), ``R̄_ee`` (n_s, n_s).

    Args:
        enc_cams: (L_e, n_s, n_s) rule-5 maps of the encoder self-attention (:func:`gradient_weighted`).
        dec_cams: (L_d, n_t, n_t) rule-5 maps of the decoder self-attention.
        cross_cams: (L_d, n_t, n_s) rule-5 maps of the cross-attention (queries: target, keys: source).
        causal: the decoder is causal (Marian, BART, T5): use the causal reading of rule 10.

    Returns:
        ``(R_dd, R_de)``: final (n_t, n_t) relevance of the target prefix and (n_t, n_s) relevance of
        the source tokens; row ``t`` explains target step ``t``.

    Raises:
        ValueError: if any shape is wrong or the streams disagree on L_d, n_t or n_s.
    """
    enc_cams, dec_cams, cross_cams = (np.asarray(c, dtype=np.float64) for c in (enc_cams, dec_cams, cross_cams))
    for name, cams in (("encoder", enc_cams), ("decoder", dec_cams)):
        if cams.ndim != 3 or cams.shape[1] != cams.shape[2]:
            raise ValueError(f"{name} self-attention maps must be square (L, n, n); got {cams.shape}")
    n_s, n_t = enc_cams.shape[-1], dec_cams.shape[-1]
    if cross_cams.shape != (dec_cams.shape[0], n_t, n_s):
        raise ValueError(
            f"cross-attention maps must have shape (L_d, n_t, n_s) = ({dec_cams.shape[0]}, {n_t}, {n_s}); "
            f"got {cross_cams.shape}"
        )

    r_ee = np.eye(n_s)
    for cam in enc_cams:
        r_ee = r_ee + cam @ r_ee  # rule 6, encoder stream
    r_ee_bar = normalize_residual(r_ee)  # (n_s, n_s)

    r_dd = np.eye(n_t)
    r_de = np.zeros((n_t, n_s))
    for self_cam, cross_cam in zip(dec_cams, cross_cams, strict=True):
        r_de = r_de + self_cam @ r_de  # rule 7
        r_dd = r_dd + self_cam @ r_dd  # rule 6
        r_dd_bar = normalize_residual(r_dd)
        r_de = r_de + (r_dd_bar if causal else r_dd_bar.T) @ (cross_cam @ r_ee_bar)  # rule 10
    return r_dd, r_de


class Relevancy:
    """``relevancy``: Chefer et al. 2021 (generic), from one backward pass of the explained score.

    The score is the predicted class logit (``--target-label`` picks another class), the answer's
    start + end logits (qa), the cosine similarity or embedding norm (encode), or the log-probability of
    the whole continuation / target (lm, seq2seq: one backward pass for all target tokens).
    Self-attention rows are read from ``R − I``: the relevance gained through attention, without the
    identity every token starts with (the ``relevancy_rows`` view, built by capture top layer first).
    Encoder-decoders use rule 10 in its causal reading, on the rule-5 maps capture keeps for them.
    """

    name = "relevancy"
    description = "gradient-weighted relevancy (Chefer, Gur & Wolf 2021): R += mean_h (∇A ⊙ A)⁺ · R"
    needs = Needs(attention=frozenset({RELEVANCY}), produces_scores=True)

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        att = capture.main
        weights = capture.explained.weights
        if att.kind == "cross":
            enc, dec = capture.attentions["encoder"], capture.attentions["decoder"]
            _, r_de = encoder_decoder_relevancy(
                enc.view(GRAD_MEAN), dec.view(GRAD_MEAN), att.view(GRAD_MEAN), causal=True
            )
            scores = stage_scores(
                capture,
                self.name,
                "relevancy (encoder-decoder)",
                (weights @ r_de)[None],
                "R_de += R̄_dd · mean_h(∇A_cross ⊙ A_cross)⁺ · R̄_ee per decoder layer",
                stage_prefix="all layers,",
            )
            scores = replace(scores, stage_labels=("all layers",))
        else:
            scores = stage_scores(
                capture,
                self.name,
                "relevancy",
                att.view(RELEVANCY),
                "R^l = R^(l−1) + mean_h(∇A ⊙ A)⁺ · R^(l−1), R^0 = I; rows of R − I shown",
            )
        return AnalysisResult(name=self.name, token_scores=(scores,))
