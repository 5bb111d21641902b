"""Plausibility: agreement of token scores with human rationales (ERASER token F1, AUPRC).

Rationales arrive as character spans or as words; :func:`rationale_mask` turns them into a token
mask through the tokenizer's offsets. See ``research/methods.md`` section 2.8(a).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np


def _check_scores(scores: np.ndarray, rationale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores as float64, rationale as bool) after checking both are (n,), n ≥ 1, finite."""
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(rationale)
    if s.ndim != 1 or r.shape != s.shape or s.size == 0:
        raise ValueError(f"scores and rationale must both have shape (n,), n >= 1; got {s.shape} and {r.shape}")
    if r.dtype != np.bool_:
        raise ValueError(f"rationale must be a boolean mask; got dtype {r.dtype}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, r


def rationale_mask(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Mark the tokens whose character span overlaps any rationale span.

    Spans are half-open ``[start, end)``, like a tokenizer's ``offset_mapping``; two spans overlap
    when they share at least one character. Empty token spans (special tokens give ``(0, 0)``) are
    never in the rationale.

    Args:
        offsets: (n,) ``(start, end)`` character offsets per token.
        spans: rationale character spans ``(start, end)``.

    Returns:
        (n,) bool mask, True for rationale tokens.

    Raises:
        ValueError: if a token offset or span has ``end < start``.
    """
    tok = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)  # (n, 2)
    rat = np.asarray(spans, dtype=np.int64).reshape(-1, 2)  # (m, 2)
    if np.any(tok[:, 1] < tok[:, 0]) or np.any(rat[:, 1] < rat[:, 0]):
        raise ValueError("every offset and span must have end >= start")
    overlap = (tok[:, None, 0] < rat[None, :, 1]) & (rat[None, :, 0] < tok[:, None, 1])  # (n, m)
    return np.asarray(overlap.any(axis=1), dtype=bool)


def words_to_spans(text: str, words: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of every whole-word, case-insensitive occurrence of each word in ``text``.

    "Whole word" means the match is not preceded or followed by a word character (``\\w``), so
    ``"great"`` does not match inside ``"greatest"``, while a word with punctuation such as
    ``"great!"`` still matches. Blank words are ignored.

    Args:
        text: the input text the offsets refer to.
        words: rationale words or phrases.

    Returns:
        Sorted, de-duplicated ``(start, end)`` spans (half-open).
    """
    found: set[tuple[int, int]] = set()
    for word in words:
        word = word.strip()
        if not word:
            continue
        pattern = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)
        found.update(m.span() for m in pattern.finditer(text))
    return sorted(found)


def topk_f1(scores: np.ndarray, rationale: np.ndarray, k: int) -> float:
    """Token F1 between the top-``k`` scored tokens and the rationale tokens.

    ``F1 = 2·|P ∩ G| / (|P| + |G|)``, which equals the harmonic mean of precision and recall and is
    0 when nothing overlaps (including an empty rationale). Ties are broken by position (earlier
    first); ``k`` larger than ``n`` selects every token. Drop tokens that cannot be rationales
    (special tokens) before calling.

    Args:
        scores: (n,) importance per token.
        rationale: (n,) bool, True for rationale tokens.
        k: number of top tokens to select; ≥ 1.

    Returns:
        F1 in ``[0, 1]``.

    Raises:
        ValueError: if the shapes differ, a score is not finite, or ``k < 1``.
    """
    s, r = _check_scores(scores, rationale)
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    top = np.argsort(-s, kind="stable")[:k]
    hits = int(r[top].sum())
    return 2.0 * hits / (len(top) + int(r.sum()))


def auprc(scores: np.ndarray, rationale: np.ndarray) -> float:
    """Average precision of the scores at retrieving the rationale tokens.

    Same definition as scikit-learn's ``average_precision_score``: ``AP = Σ_t (R_t − R_{t−1})·P_t``
    over the distinct score thresholds ``t`` in decreasing order, where ``P_t`` and ``R_t`` are the
    precision and recall of "score ≥ t" (tied scores enter together) and ``R_0 = 0``.

    Args:
        scores: (n,) importance per token.
        rationale: (n,) bool, True for rationale tokens.

    Returns:
        AP in ``[0, 1]``; NaN when the rationale is empty (recall is undefined).

    Raises:
        ValueError: if the shapes differ or a score is not finite.
    """
    s, r = _check_scores(scores, rationale)
    n_pos = int(r.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s_sorted, r_sorted = s[order], r[order]
    # Index of the last element of each group of tied scores: one threshold per distinct score.
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    tp = np.cumsum(r_sorted)[last]  # (T,)
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
