"""Rank agreement between two token-score vectors (Jain & Wallace 2019 style): Kendall τ-b, Spearman ρ.

See ``research/methods.md`` section 2.8(b). Agreement is descriptive, not a pass/fail test.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def _check_vectors(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the vectors as float64, or None when a rank correlation is undefined for them.

    Undefined means fewer than two entries or a constant vector (no ranking to compare).
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"a and b must both have shape (n,); got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("a and b must be finite (drop NaN positions first)")
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    return x, y


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's τ-b (ties corrected) between two score vectors: ``scipy.stats.kendalltau``'s value.

    τ-b = (P − Q) / √((P + Q + T)(P + Q + U)), with P and Q the concordant and discordant pairs and T, U the pairs
    tied only in ``a`` or only in ``b``, counted from the signs of all pairwise differences (in blocks of rows,
    so memory stays small at any length). It is computed here rather than by scipy, whose per-call overhead
    (about 0.3 ms) was most of the agreement analysis' time on short inputs.

    Args:
        a: (n,) scores, e.g. attention-derived relevance per token.
        b: (n,) scores to compare with, e.g. Input×Gradient per token.

    Returns:
        τ-b in ``[-1, 1]``; NaN when it is undefined: fewer than two tokens, or either vector
        constant (scipy would return NaN with a warning; here it is returned silently).

    Raises:
        ValueError: if the shapes differ or are not 1-D, or a value is not finite.
    """
    checked = _check_vectors(a, b)
    if checked is None:
        return float("nan")
    x, y = checked
    n = x.size
    signed = tied_x = tied_y = 0
    rows = max(1, 2**20 // n)
    for start in range(0, n, rows):
        dx = np.sign(x[start : start + rows, None] - x[None, :])
        dy = np.sign(y[start : start + rows, None] - y[None, :])
        signed += int((dx * dy).sum())
        tied_x += int(np.count_nonzero(dx == 0))
        tied_y += int(np.count_nonzero(dy == 0))
    # Every pair is seen twice (i, j and j, i) and each position ties with itself once.
    pairs = n * (n - 1) // 2
    untied_x, untied_y = pairs - (tied_x - n) // 2, pairs - (tied_y - n) // 2
    return (signed // 2) / math.sqrt(untied_x * untied_y)


def spearman_pairs(vectors: list[np.ndarray], pairs: list[tuple[int, int]]) -> list[float]:
    """Spearman's ρ for many pairs of score vectors, each vector ranked once (what :func:`spearman` gives per pair).

    Args:
        vectors: (n,) finite score vectors.
        pairs: index pairs into ``vectors`` (vectors of a pair must have the same length).

    Returns:
        ρ per pair; NaN where it is undefined (fewer than two values, or a constant vector).
    """
    ranks = [stats.rankdata(np.asarray(v, dtype=np.float64)) for v in vectors]
    out = []
    for i, j in pairs:
        checked = _check_vectors(vectors[i], vectors[j])
        out.append(float("nan") if checked is None else float(np.corrcoef(ranks[i], ranks[j])[0, 1]))
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ (Pearson correlation of average ranks) between two score vectors.

    Args:
        a: (n,) scores.
        b: (n,) scores.

    Returns:
        ρ in ``[-1, 1]``; NaN when undefined (fewer than two tokens, or either vector constant).

    Raises:
        ValueError: if the shapes differ or are not 1-D, or a value is not finite.
    """
    checked = _check_vectors(a, b)
    if checked is None:
        return float("nan")
    return float(stats.spearmanr(*checked).statistic)
