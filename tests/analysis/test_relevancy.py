from __future__ import annotations

import numpy as np
import pytest

from attnviz.analysis.relevancy import (
    encoder_decoder_relevancy,
    gradient_weighted,
    normalize_residual,
    self_relevancy,
)

# Appendix A.2 of research/methods.md: 2 layers, 2 heads, 3 tokens.
ATTN = np.array(
    [
        [
            [[0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]],
            [[0.2, 0.2, 0.6], [0.4, 0.4, 0.2], [0.1, 0.1, 0.8]],
        ],
        [
            [[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.25, 0.25, 0.5]],
            [[0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.6, 0.2, 0.2]],
        ],
    ]
)
GRAD = np.array(
    [
        [[[1, -0.5, 2], [0.3, 0.3, -1], [0, 1, 0.5]], [[-1, 0.5, 0.5], [2, -2, 1], [0.2, 0.2, 0.2]]],
        [[[0.5, 1.5, -0.5], [1, 0, 1], [-0.3, 0.6, 0.9]], [[2, -1, 1], [0.5, 0.5, 0.5], [1, 1, -2]]],
    ]
)


def random_attention(rng: np.random.Generator, shape: tuple[int, ...], causal: bool = False) -> np.ndarray:
    x = rng.random(shape) ** 2
    if causal:
        x = np.tril(x)
    return x / x.sum(axis=-1, keepdims=True)


def test_appendix_a2_gradient_weighted_means():
    cams = gradient_weighted(ATTN, GRAD)
    np.testing.assert_allclose(cams[0], [[0.25, 0.05, 0.35], [0.415, 0.12, 0.10], [0.01, 0.16, 0.18]], atol=1e-12)
    np.testing.assert_allclose(cams[1], [[0.275, 0.15, 0.15], [0.175, 0.075, 0.20], [0.30, 0.175, 0.225]], atol=1e-12)


def test_appendix_a2_relevancy():
    rel = self_relevancy(ATTN, GRAD)
    expected = [[1.6575, 0.25575, 0.63825], [0.666875, 1.24475, 0.40475], [0.459875, 0.407, 1.568]]
    np.testing.assert_allclose(rel[-1], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rel[0], np.eye(3) + gradient_weighted(ATTN, GRAD)[0], atol=1e-12)


def test_all_negative_gradients_give_identity():
    rng = np.random.default_rng(0)
    attn = random_attention(rng, (3, 4, 5, 5))
    rel = self_relevancy(attn, -rng.random(attn.shape))
    np.testing.assert_array_equal(rel, np.broadcast_to(np.eye(5), (3, 5, 5)))


@pytest.mark.parametrize("causal", [False, True])
def test_relevancy_is_non_negative_with_diagonal_at_least_one(causal):
    rng = np.random.default_rng(1)
    attn = random_attention(rng, (4, 3, 6, 6), causal=causal)
    rel = self_relevancy(attn, rng.normal(size=attn.shape))
    assert np.all(rel >= 0)
    assert np.all(np.diagonal(rel, axis1=-2, axis2=-1) >= 1)
    if causal:
        np.testing.assert_array_equal(rel, np.tril(rel))  # no relevance flows from future tokens


def test_normalize_residual_rows_and_zero_row_guard():
    rel = np.array([[1.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.2, 1.6]])
    # R - I = [[.5,.5,0],[0,0,0],[.2,.2,.6]]; row sums 1, 0 (kept as I), 1.
    expected = np.array([[1.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.2, 1.6]])
    np.testing.assert_allclose(normalize_residual(rel), expected, atol=1e-12)
    scaled = normalize_residual(np.eye(3) + 4 * (rel - np.eye(3)))
    np.testing.assert_allclose(scaled, expected, atol=1e-12)  # invariant to the scale of R - I


def test_normalize_residual_rejects_negative_excess():
    with pytest.raises(ValueError, match="negative"):
        normalize_residual(np.array([[0.5, 0.2], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        normalize_residual(np.ones((2, 3)))


def cams(
    enc_a: np.ndarray, enc_g: np.ndarray, dec_a: np.ndarray, dec_g: np.ndarray, x_a: np.ndarray, x_g: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rule-5 maps (:func:`gradient_weighted`) of the encoder, decoder and cross streams."""
    return gradient_weighted(enc_a, enc_g), gradient_weighted(dec_a, dec_g), gradient_weighted(x_a, x_g)


def reference_encoder_decoder(enc_a, enc_g, dec_a, dec_g, x_a, x_g):
    """The ICCV-2021 rules written out independently, with explicit products."""

    def cam(a, g):  # rule 5, one layer: (H, q, k) -> (q, k)
        total = np.zeros(a.shape[1:])
        for h in range(a.shape[0]):
            total += np.maximum(g[h] * a[h], 0)
        return total / a.shape[0]

    def bar(r):  # eqs. 8/9 without any guard (the test inputs never hit a zero row)
        e = r - np.eye(len(r))
        return e / e.sum(axis=1)[:, None] + np.eye(len(r))

    n_s, n_t = enc_a.shape[-1], dec_a.shape[-1]
    r_ee = np.eye(n_s)
    for layer in range(enc_a.shape[0]):
        r_ee = r_ee + np.matmul(cam(enc_a[layer], enc_g[layer]), r_ee)
    r_dd, r_de = np.eye(n_t), np.zeros((n_t, n_s))
    for layer in range(dec_a.shape[0]):
        c = cam(dec_a[layer], dec_g[layer])
        r_dd, r_de = r_dd + np.matmul(c, r_dd), r_de + np.matmul(c, r_de)
        c_x = cam(x_a[layer], x_g[layer])
        # Rule 10 entry by entry: add[a, b] = sum_c sum_d bar(R_dd)[c, a] * cam[c, d] * bar(R_ee)[d, b].
        b_dd, b_ee = bar(r_dd), bar(r_ee)
        add = np.zeros((n_t, n_s))
        for a in range(n_t):
            for b in range(n_s):
                add[a, b] = sum(b_dd[c, a] * c_x[c, d] * b_ee[d, b] for c in range(n_t) for d in range(n_s))
        np.testing.assert_allclose(add, np.matmul(b_dd.T, np.matmul(c_x, b_ee)), atol=1e-12)
        r_de = r_de + add
    return r_dd, r_de


def test_encoder_decoder_matches_independent_reference():
    rng = np.random.default_rng(7)
    n_s, n_t, heads = 5, 4, 3
    enc_a = random_attention(rng, (3, heads, n_s, n_s))
    dec_a = random_attention(rng, (2, heads, n_t, n_t), causal=True)
    x_a = random_attention(rng, (2, heads, n_t, n_s))
    # Mostly positive gradients so no row of R - I is zero (the reference has no guard).
    enc_g, dec_g, x_g = (rng.normal(0.5, 1.0, size=a.shape) for a in (enc_a, dec_a, x_a))
    r_dd, r_de = encoder_decoder_relevancy(*cams(enc_a, enc_g, dec_a, dec_g, x_a, x_g))
    ref_dd, ref_de = reference_encoder_decoder(enc_a, enc_g, dec_a, dec_g, x_a, x_g)
    assert r_dd.shape == (n_t, n_t) and r_de.shape == (n_t, n_s)
    np.testing.assert_allclose(r_dd, ref_dd, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r_de, ref_de, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r_dd, self_relevancy(dec_a, dec_g)[-1], atol=1e-12)


def test_one_layer_encoder_decoder_by_hand():
    enc_a = np.array([[[[0.5, 0.5], [0.5, 0.5]]]])
    enc_g = np.array([[[[1.0, 1.0], [0.0, 1.0]]]])
    # cam_e = [[.5,.5],[0,.5]]; R_ee = I + cam_e = [[1.5,.5],[0,1.5]];
    # R_ee - I row sums 1 and .5 -> R̄_ee = [[.5,.5],[0,1]] + I = [[1.5,.5],[0,2]].
    dec_a = np.array([[[[1.0, 0.0], [0.5, 0.5]]]])
    dec_g = np.array([[[[1.0, 0.0], [2.0, 2.0]]]])
    # cam_d = [[1,0],[1,1]]; R_dd = I + cam_d = [[2,0],[1,2]]; R_de = cam_d·0 = 0;
    # R_dd - I row sums 1 and 2 -> R̄_dd = [[1,0],[.5,.5]] + I = [[2,0],[.5,1.5]].
    x_a = np.array([[[[0.25, 0.75], [0.5, 0.5]]]])
    x_g = np.array([[[[4.0, 0.0], [2.0, 2.0]]]])
    # cam_x = [[1,0],[1,1]]; cam_x·R̄_ee = [[1.5,.5],[1.5,2.5]];
    # R̄_ddᵀ = [[2,.5],[0,1.5]] -> R_de = [[2·1.5+.5·1.5, 2·.5+.5·2.5], [1.5·1.5, 1.5·2.5]]
    #                               = [[3.75, 2.25], [2.25, 3.75]].
    # (Without the transpose it would be [[3, 1], [3, 4]].)
    r_dd, r_de = encoder_decoder_relevancy(*cams(enc_a, enc_g, dec_a, dec_g, x_a, x_g))
    np.testing.assert_allclose(r_dd, [[2.0, 0.0], [1.0, 2.0]], atol=1e-12)
    np.testing.assert_allclose(r_de, [[3.75, 2.25], [2.25, 3.75]], atol=1e-12)


def test_encoder_decoder_with_negative_gradients():
    rng = np.random.default_rng(8)
    enc_a = random_attention(rng, (2, 2, 4, 4))
    dec_a = random_attention(rng, (2, 2, 3, 3), causal=True)
    x_a = random_attention(rng, (2, 2, 3, 4))

    def neg(shape: tuple[int, ...]) -> np.ndarray:  # gradients <= 0 contribute nothing
        return -rng.random(shape)

    r_dd, r_de = encoder_decoder_relevancy(*cams(enc_a, neg(enc_a.shape), dec_a, neg(dec_a.shape), x_a, neg(x_a.shape)))
    np.testing.assert_array_equal(r_dd, np.eye(3))
    np.testing.assert_array_equal(r_de, np.zeros((3, 4)))
    # Only the cross-attention gradients positive: R̄_dd = R̄_ee = I by the zero-row guard,
    # so each decoder layer adds its cross cam, and the second layer's self-attention adds nothing.
    x_g = rng.random(x_a.shape)
    _, r_de = encoder_decoder_relevancy(*cams(enc_a, neg(enc_a.shape), dec_a, neg(dec_a.shape), x_a, x_g))
    np.testing.assert_allclose(r_de, gradient_weighted(x_a, x_g).sum(axis=0), atol=1e-12)


def test_shape_errors():
    with pytest.raises(ValueError, match="differs"):
        gradient_weighted(ATTN, GRAD[:, :1])
    with pytest.raises(ValueError, match=r"\(L, H, q, k\)"):
        gradient_weighted(ATTN[0], GRAD[0])
    with pytest.raises(ValueError, match="square"):
        self_relevancy(ATTN[..., :2], GRAD[..., :2])
    enc = np.full((1, 1, 2, 2), 0.5)
    dec = np.full((1, 1, 3, 3), 1 / 3)
    with pytest.raises(ValueError, match="cross-attention"):
        encoder_decoder_relevancy(*cams(enc, enc, dec, dec, np.full((1, 1, 3, 3), 1 / 3), np.ones((1, 1, 3, 3))))
