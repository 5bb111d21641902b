"""Sub-word token scores merged into word scores."""

from __future__ import annotations

import numpy as np

from attnviz.types import TokenSeq


def merge_to_words(scores: np.ndarray, seq: TokenSeq, how: str = "sum") -> np.ndarray:
    """Merge token scores into word scores along the last axis.

    Args:
        scores: (..., n) per-token scores.
        seq: the token sequence the scores index.
        how: ``sum`` (mass received by a word; the default for attention), ``mean`` or ``max``.

    Returns:
        (..., w) per-word scores; special tokens are left out (report their mass separately).
    """
    if how not in ("sum", "mean", "max"):
        raise ValueError(f"unknown word merge '{how}'; valid: sum, mean, max")
    out = np.zeros(scores.shape[:-1] + (len(seq.words),), dtype=np.float64)
    if how == "max":
        out.fill(-np.inf)
    counts = np.zeros(len(seq.words))
    for i, w in enumerate(seq.word_ids):
        if w is None:
            continue
        counts[w] += 1
        if how == "max":
            out[..., w] = np.maximum(out[..., w], scores[..., i])
        else:
            out[..., w] += scores[..., i]
    if how == "mean":
        out /= np.maximum(counts, 1)
    return out
