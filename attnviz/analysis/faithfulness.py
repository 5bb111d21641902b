"""ERASER comprehensiveness / sufficiency (DeYoung et al., ACL 2020): the model-free arithmetic.

Which tokens to delete for each bin, the AOPC average, and random-order baselines. Calling the
model on the reduced inputs is the caller's job. See ``research/methods.md`` section 2.8(a).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from attnviz.analysis.base import AnalysisContext, AnalysisResult, TokenScores, without_predictor
from attnviz.types import Capture, Needs

DEFAULT_BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
"""Fractions of the removable tokens deleted (comprehensiveness) or kept (sufficiency), as in ERASER."""


def tokens_to_remove(scores: np.ndarray, fraction: float, removable: np.ndarray) -> np.ndarray:
    """Indices of the top ``fraction`` of the removable tokens, most important first.

    ``k = ceil(fraction · m)`` where ``m`` is the number of removable tokens, as in the ALTI
    reference (``math.ceil(len(order) * bin)``), so any ``fraction > 0`` selects at least one token
    when one is removable. The product is taken on the decimal value of ``fraction``
    (``Fraction(repr(fraction))``), so ``0.1 · 30`` gives 3, not the 4 a float ``ceil`` would give.
    Ties are broken by position (earlier token first); special tokens (``removable`` False) are
    never selected.

    Args:
        scores: (n,) importance per token; higher = more important. Non-removable entries are
            ignored and may be NaN.
        fraction: share of the removable tokens to select, in ``[0, 1]``.
        removable: (n,) bool, False for tokens that must stay (e.g. ``[CLS]``, ``[SEP]``).

    Returns:
        (k,) int64 token indices in decreasing score order (ties: increasing position).

    Raises:
        ValueError: if the shapes differ or are not 1-D, ``fraction`` is outside ``[0, 1]``, or a
            removable token's score is not finite.
    """
    s = np.asarray(scores, dtype=np.float64)
    mask = np.asarray(removable)
    if s.ndim != 1 or mask.shape != s.shape:
        raise ValueError(f"scores and removable must both have shape (n,); got {s.shape} and {mask.shape}")
    if mask.dtype != np.bool_:
        raise ValueError(f"removable must be a boolean mask; got dtype {mask.dtype}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1]; got {fraction}")
    candidates = np.flatnonzero(mask)  # (m,) in position order
    if not np.all(np.isfinite(s[candidates])):
        raise ValueError("scores of removable tokens must be finite")
    k = math.ceil(Fraction(repr(float(fraction))) * len(candidates))
    # A stable sort on -score keeps equal scores in position order.
    order = np.argsort(-s[candidates], kind="stable")
    return candidates[order[:k]].astype(np.int64)


def aopc(
    full_prob: float,
    probs_after: Sequence[float],
    convention: Literal["paper", "eraser"] = "paper",
) -> float:
    """Area over the perturbation curve: the mean drop ``full_prob − p_k`` over the bins.

    Comprehensiveness passes the probabilities after *deleting* the top-k tokens of each bin;
    sufficiency passes those after *keeping only* them (lower is better there). ``"paper"`` divides
    by ``|B| + 1``, counting the 0-bin whose delta is 0 (ERASER paper, ALTI's sum/6); ``"eraser"``
    averages over the given bins only (ERASER code), which is ``(|B|+1)/|B|`` times larger.

    Args:
        full_prob: probability of the predicted class on the full input.
        probs_after: probability of the same class after each bin, one value per bin (``|B|``).
        convention: ``"paper"`` (divide by ``|B| + 1``) or ``"eraser"`` (divide by ``|B|``).

    Returns:
        The AOPC value.

    Raises:
        ValueError: if ``probs_after`` is empty, a value is not finite, or the convention is unknown.
    """
    after = np.asarray(probs_after, dtype=np.float64)
    if after.ndim != 1 or after.size == 0:
        raise ValueError(f"probs_after must be a non-empty 1-D sequence; got shape {after.shape}")
    if not (np.isfinite(full_prob) and np.all(np.isfinite(after))):
        raise ValueError("probabilities must be finite")
    if convention == "paper":
        divisor = after.size + 1
    elif convention == "eraser":
        divisor = after.size
    else:
        raise ValueError(f"unknown AOPC convention {convention!r}; valid: 'paper', 'eraser'")
    return float(np.sum(full_prob - after) / divisor)


def random_orders(n_tokens: int, n_orders: int, seed: int = 0) -> np.ndarray:
    """Random score vectors for the random-ranking baseline, reproducible from ``seed``.

    Each row is a random permutation of ``0..n_tokens-1`` cast to float, so no two tokens tie and
    ``tokens_to_remove`` on a row deletes tokens in a uniformly random order.

    Args:
        n_tokens: length of each score vector (all tokens; special ones are masked by the caller).
        n_orders: number of random orders ``K``.
        seed: seed for ``np.random.default_rng``.

    Returns:
        (K, n_tokens) float64 scores.

    Raises:
        ValueError: if ``n_tokens`` or ``n_orders`` is negative.
    """
    if n_tokens < 0 or n_orders < 0:
        raise ValueError(f"n_tokens and n_orders must be >= 0; got {n_tokens} and {n_orders}")
    rng = np.random.default_rng(seed)
    out = np.empty((n_orders, n_tokens), dtype=np.float64)
    for row in out:
        row[:] = rng.permutation(n_tokens)
    return out


CONVENTION: Literal["paper", "eraser"] = "paper"


def erasure_masks(
    order_scores: np.ndarray, removable: np.ndarray, bins: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Kept-token masks for comprehensiveness (top-k removed) and sufficiency (only top-k kept).

    Args:
        order_scores: (n,) token importance; higher is removed (or kept) first.
        removable: (n,) tokens that may be erased; the others are always kept.
        bins: fractions of the removable tokens.

    Returns:
        ``(comprehensive, sufficient)``, each (len(bins), n) bool.
    """
    n = len(removable)
    comp = np.ones((len(bins), n), dtype=bool)
    suff = np.tile(~removable, (len(bins), 1))
    for b, fraction in enumerate(bins):
        top = tokens_to_remove(order_scores, fraction, removable)
        comp[b, top] = False
        suff[b, top] = True
    return comp, suff


@dataclass(frozen=True)
class ErasureScores:
    """AOPC comprehensiveness (higher: erasing the top tokens hurts) and sufficiency (lower: they suffice)."""

    comprehensiveness: float
    sufficiency: float
    removed_curve: tuple[float, ...]
    kept_curve: tuple[float, ...]


def curve_scores(full: float, values: np.ndarray, bins: int) -> ErasureScores:
    """AOPCs from the scores of one ranking's copies: ``bins`` with the top tokens removed, then ``bins`` with
    only them kept."""
    removed, kept = values[:bins], values[bins:]
    return ErasureScores(
        comprehensiveness=aopc(full, removed, CONVENTION),
        sufficiency=aopc(full, kept, CONVENTION),
        removed_curve=tuple(float(v) for v in removed),
        kept_curve=tuple(float(v) for v in kept),
    )


class Faithfulness:
    """``faithfulness``: ERASER comprehensiveness and sufficiency for every score shown, against random orders.

    Tokens are ranked by each method's scores (default stage, explained rows averaged); the top 1, 5,
    10, 20 and 50 % of the removable tokens are deleted (comprehensiveness) or kept alone
    (sufficiency), and the change in the explained score is averaged with the paper's divisor
    |B| + 1. The baseline is the mean over ``--random-orders`` seeded random rankings; each method's
    margin says how far it beats it.
    """

    name = "faithfulness"
    description = "ERASER comprehensiveness/sufficiency (AOPC over 1-50% erasures) vs random orders"
    needs = Needs(model_reruns=True, reads_scores=True)

    def copies(self, capture: Capture, context: AnalysisContext) -> tuple[np.ndarray, str] | None:
        """The (V, n) kept-token masks and the erasure :meth:`run` will ask the predictor to score (None: none),
        so that a batch's copies can be scored together first (``attnviz.analysis.pipeline.analyze_batch``)."""
        predictor = context.predictor
        if predictor is None or not predictor.removable.any():
            return None
        return erasure_plan(predictor, context)[2], context.options.erasure

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        predictor = context.predictor
        if predictor is None:
            return without_predictor(self.name, capture, context)
        if not predictor.removable.any():
            return AnalysisResult(name=self.name, messages=("faithfulness: no token can be erased",))
        orders, methods, masks = erasure_plan(predictor, context)
        bins = DEFAULT_BINS
        values = predictor.score(masks, context.options.erasure)
        full, curves = float(values[0]), values[1:].reshape(len(orders) + len(methods), 2 * len(bins))
        results = [curve_scores(full, curve, len(bins)) for curve in curves]
        random_runs = results[: len(orders)]
        random_comp = float(np.mean([r.comprehensiveness for r in random_runs]))
        random_suff = float(np.mean([r.sufficiency for r in random_runs]))
        scalars: dict[str, float] = {
            "full_score": full,
            "random_comprehensiveness": random_comp,
            "random_sufficiency": random_suff,
            "random_orders": float(len(orders)),
        }
        for scores, result in zip(methods, results[len(orders) :], strict=True):
            scalars[f"comprehensiveness.{scores.method}"] = result.comprehensiveness
            scalars[f"sufficiency.{scores.method}"] = result.sufficiency
            scalars[f"comprehensiveness_margin.{scores.method}"] = result.comprehensiveness - random_comp
            scalars[f"sufficiency_margin.{scores.method}"] = random_suff - result.sufficiency
        scalars["erasure_model_calls"] = float(predictor.calls)
        scalars["erasure_distinct_copies"] = float(predictor.distinct)
        return AnalysisResult(name=self.name, scalars=scalars)


def erasure_plan(predictor: Any, context: AnalysisContext) -> tuple[list[np.ndarray], list[TokenScores], np.ndarray]:
    """The random orders, the methods' scores, and every copy of every curve: the unedited input first, then for
    each ranking (random orders, then methods) its bins with the top tokens removed, then with only them kept."""
    n = len(predictor.ids)
    orders = list(random_orders(n, context.options.random_orders, seed=context.options.seed))
    methods = scored_methods(context.previous, predictor.sequence)
    rankings = orders + [scores.at() for scores in methods]
    masks = [np.ones((1, n), dtype=bool)] + [
        np.concatenate(erasure_masks(r, predictor.removable, DEFAULT_BINS)) for r in rankings
    ]
    return orders, methods, np.concatenate(masks)


def scored_methods(previous: Mapping[str, AnalysisResult], sequence: str) -> list[TokenScores]:
    """Token scores from earlier analyses over the predictor's sequence (the ones erasure can test)."""
    return [ts for result in previous.values() for ts in result.token_scores if ts.sequence == sequence]
