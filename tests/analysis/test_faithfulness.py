from __future__ import annotations

import numpy as np
import pytest

from attnviz.analysis.faithfulness import DEFAULT_BINS, aopc, random_orders, tokens_to_remove

# Appendix A.3 of research/methods.md: p(x) = 0.90, then 0.80/0.60/0.50/0.40/0.20 after the bins.
FULL = 0.90
AFTER = [0.80, 0.60, 0.50, 0.40, 0.20]  # deltas .1 .3 .4 .5 .7, sum 2.0


def test_appendix_a3_both_conventions():
    assert aopc(FULL, AFTER, "paper") == pytest.approx(2.0 / 6)  # 0.3333...
    assert aopc(FULL, AFTER, "eraser") == pytest.approx(0.40)


def test_eraser_is_six_fifths_of_paper_when_the_zero_bin_is_zero():
    rng = np.random.default_rng(0)
    for _ in range(5):
        after = rng.random(len(DEFAULT_BINS))
        assert aopc(0.7, after, "eraser") == pytest.approx(6 / 5 * aopc(0.7, after, "paper"))


def test_no_change_gives_zero_and_sufficiency_can_be_negative():
    assert aopc(0.9, [0.9] * 5) == 0.0
    assert aopc(0.5, [0.6, 0.7], "eraser") == pytest.approx(-0.15)


def test_aopc_rejects_bad_input():
    with pytest.raises(ValueError, match="convention"):
        aopc(0.9, AFTER, "mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        aopc(0.9, [])


def test_default_bins():
    assert DEFAULT_BINS == (0.01, 0.05, 0.10, 0.20, 0.50)


def test_never_removes_special_tokens_and_removes_at_least_one():
    scores = np.array([9.0, 0.1, 0.5, 0.3, 9.0])  # the specials carry the highest scores
    removable = np.array([False, True, True, True, False])
    picked = tokens_to_remove(scores, 0.01, removable)
    np.testing.assert_array_equal(picked, [2])  # ceil(0.01 · 3) = 1, the best removable token
    np.testing.assert_array_equal(tokens_to_remove(scores, 0.5, removable), [2, 3])  # ceil(1.5) = 2
    np.testing.assert_array_equal(tokens_to_remove(scores, 1.0, removable), [2, 3, 1])
    assert tokens_to_remove(scores, 0.0, removable).size == 0


def test_ties_break_by_position():
    scores = np.array([0.2, 0.5, 0.5, 0.1, 0.5, 0.5])
    removable = np.ones(6, dtype=bool)
    np.testing.assert_array_equal(tokens_to_remove(scores, 0.5, removable), [1, 2, 4])
    np.testing.assert_array_equal(tokens_to_remove(scores, 0.5, removable), [1, 2, 4])


def test_k_uses_the_decimal_fraction():
    # float: 0.1 * 30 = 3.0000000000000004, whose ceil would be 4.
    removable = np.ones(30, dtype=bool)
    assert tokens_to_remove(np.arange(30.0), 0.1, removable).size == 3
    assert tokens_to_remove(np.arange(30.0), 0.05, removable).size == 2  # ceil(1.5)


def test_special_token_scores_may_be_nan():
    scores = np.array([np.nan, 0.3, 0.7, np.nan])
    removable = np.array([False, True, True, False])
    np.testing.assert_array_equal(tokens_to_remove(scores, 0.2, removable), [2])
    with pytest.raises(ValueError, match="finite"):
        tokens_to_remove(scores, 0.2, np.ones(4, dtype=bool))


def test_no_removable_tokens_gives_empty_selection():
    assert tokens_to_remove(np.ones(2), 0.5, np.zeros(2, dtype=bool)).size == 0


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_bad_fraction_raises(fraction):
    with pytest.raises(ValueError, match="fraction"):
        tokens_to_remove(np.ones(3), fraction, np.ones(3, dtype=bool))


def test_bad_mask_raises():
    with pytest.raises(ValueError, match="shape"):
        tokens_to_remove(np.ones(3), 0.5, np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        tokens_to_remove(np.ones(3), 0.5, np.ones(3))


def test_random_orders_are_seeded_permutations():
    orders = random_orders(7, 4, seed=3)
    assert orders.shape == (4, 7)
    for row in orders:
        np.testing.assert_array_equal(np.sort(row), np.arange(7.0))  # no ties
    np.testing.assert_array_equal(orders, random_orders(7, 4, seed=3))
    assert not np.array_equal(orders, random_orders(7, 4, seed=4))
    assert len({tuple(row) for row in orders}) > 1
    with pytest.raises(ValueError):
        random_orders(-1, 2)
