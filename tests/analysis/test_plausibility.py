from __future__ import annotations

import math

import numpy as np
import pytest

from attnviz.analysis.plausibility import auprc, rationale_mask, topk_f1, words_to_spans

TEXT = "The movie was great, truly GREAT; the greatest."
# Tokens: [CLS] the movie was great , truly great ; the greatest . [SEP]
OFFSETS = [
    (0, 0),
    (0, 3),
    (4, 9),
    (10, 13),
    (14, 19),
    (19, 20),
    (21, 26),
    (27, 32),
    (32, 33),
    (34, 37),
    (38, 46),
    (46, 47),
    (0, 0),
]


def test_words_to_spans_whole_word_case_insensitive():
    assert words_to_spans(TEXT, ["great"]) == [(14, 19), (27, 32)]  # not inside "greatest"
    assert words_to_spans(TEXT, ["the", " "]) == [(0, 3), (34, 37)]
    assert words_to_spans(TEXT, ["great,"]) == [(14, 20)]
    assert words_to_spans(TEXT, ["truly great"]) == [(21, 32)]


def test_rationale_mask_overlap_and_special_tokens():
    mask = rationale_mask(OFFSETS, words_to_spans(TEXT, ["great"]))
    assert np.flatnonzero(mask).tolist() == [4, 7]
    # A span covering part of a token marks it; special tokens (0, 0) are never marked.
    mask = rationale_mask(OFFSETS, [(0, 1), (8, 11)])
    assert np.flatnonzero(mask).tolist() == [1, 2, 3]
    assert not rationale_mask(OFFSETS, []).any()
    with pytest.raises(ValueError):
        rationale_mask(OFFSETS, [(5, 2)])


def test_topk_f1_by_hand():
    scores = np.array([0.1, 0.9, 0.8, 0.3, 0.7])
    rationale = np.array([False, True, False, True, False])
    # k=2: top {1, 2}, one hit; P = 1/2, R = 1/2 -> F1 = 0.5.
    assert topk_f1(scores, rationale, 2) == pytest.approx(0.5)
    # k=3: top {1, 2, 4}, one hit; P = 1/3, R = 1/2 -> F1 = 2·(1/6)/(5/6) = 0.4.
    assert topk_f1(scores, rationale, 3) == pytest.approx(0.4)
    # k=10 takes all 5: P = 2/5, R = 1 -> F1 = 2·(2/5)/(7/5) = 4/7.
    assert topk_f1(scores, rationale, 10) == pytest.approx(4 / 7)
    assert topk_f1(scores, np.zeros(5, dtype=bool), 2) == 0.0
    with pytest.raises(ValueError, match="k"):
        topk_f1(scores, rationale, 0)


def test_auprc_by_hand():
    # Ranked: pos, neg, pos, neg. Thresholds give (P, R) = (1, .5), (.5, .5), (2/3, 1), (.5, 1).
    # AP = .5·1 + 0·.5 + .5·(2/3) + 0·.5 = 5/6.
    assert auprc(np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, False, True, False])) == pytest.approx(5 / 6)


def test_auprc_with_tied_scores_by_hand():
    # Thresholds: 0.9 -> tp 0 of 1 (P 0, R 0); 0.5 -> tp 1 of 3 (P 1/3, R .5); 0.1 -> tp 2 of 4 (P .5, R 1).
    # AP = 0 + .5·(1/3) + .5·.5 = 5/12. Tied tokens enter together, so their order does not matter.
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    assert auprc(scores, np.array([False, True, False, True])) == pytest.approx(5 / 12)
    assert auprc(scores, np.array([False, False, True, True])) == pytest.approx(5 / 12)


def test_auprc_edge_cases():
    assert auprc(np.array([0.3, 0.2, 0.1]), np.array([True, True, False])) == pytest.approx(1.0)
    assert auprc(np.ones(4), np.array([True, False, False, False])) == pytest.approx(0.25)  # base rate
    assert math.isnan(auprc(np.array([0.3, 0.2]), np.zeros(2, dtype=bool)))
    with pytest.raises(ValueError, match="boolean"):
        auprc(np.array([0.3, 0.2]), np.array([1, 0]))
