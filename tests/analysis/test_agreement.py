from __future__ import annotations

import math

import numpy as np
import pytest

from attnviz.analysis.agreement import kendall_tau, spearman, spearman_pairs


def test_identical_and_reversed_rankings():
    a = np.array([0.1, 0.4, 0.2, 0.9, 0.5])
    assert kendall_tau(a, a) == pytest.approx(1.0)
    assert spearman(a, 2 * a + 1) == pytest.approx(1.0)
    assert kendall_tau(a, -a) == pytest.approx(-1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)


def test_tau_b_with_a_tie_by_hand():
    a = [1, 2, 3, 4]
    b = [2, 1, 2, 3]
    # Pairs: (0,1) discordant; (0,2) tied in b only; (0,3) (1,2) (1,3) (2,3) concordant.
    # tau_b = (C - D) / sqrt((n0 - ties_a) (n0 - ties_b)) = (4 - 1) / sqrt(6 · 5) = 3 / sqrt(30).
    assert kendall_tau(np.array(a), np.array(b)) == pytest.approx(3 / math.sqrt(30))


@pytest.mark.parametrize("n", [2, 7, 40, 1500])  # 1,500 tokens: the pairwise signs go in three blocks of rows
def test_tau_b_equals_scipys_with_ties_and_at_any_length(n: int) -> None:
    from scipy import stats

    rng = np.random.default_rng(n)
    for _ in range(5):
        a, b = rng.integers(0, max(2, n // 3), n).astype(float), rng.normal(size=n)
        a[:2] = [0.0, 1.0]  # never constant
        b[: n // 4] = 0.0  # ties in both vectors, some of them joint
        assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)


def test_spearman_by_hand():
    # Ranks [1,2,3,4] vs [1,3,2,4]: d² sums to 2, rho = 1 - 6·2 / (4·15) = 0.8.
    assert spearman(np.array([10, 20, 30, 40]), np.array([1, 3, 2, 4])) == pytest.approx(0.8)


def test_constant_or_too_short_vectors_give_nan():
    assert math.isnan(kendall_tau(np.ones(4), np.arange(4)))
    assert math.isnan(spearman(np.arange(4), np.full(4, 2.0)))
    assert math.isnan(kendall_tau(np.array([1.0]), np.array([2.0])))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="shape"):
        kendall_tau(np.arange(3), np.arange(4))
    with pytest.raises(ValueError, match="finite"):
        spearman(np.array([1.0, np.nan, 2.0]), np.arange(3))


def test_spearman_pairs_equal_spearman_per_pair():
    rng = np.random.default_rng(3)
    vectors = [rng.normal(size=9), np.round(rng.normal(size=9), 1), np.ones(9), rng.integers(0, 3, 9).astype(float)]
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    got = spearman_pairs(vectors, pairs)
    want = [spearman(vectors[i], vectors[j]) for i, j in pairs]
    np.testing.assert_allclose(got, want, atol=1e-12)  # ties ranked by average; constant vectors give NaN
    assert np.isnan(got[pairs.index((0, 2))])
