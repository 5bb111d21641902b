from __future__ import annotations

import numpy as np
import pytest

from attnviz.analysis.rollout import attention_rollout, residual_augment

# Appendix A.1 of research/methods.md: head-mean attention of a 2-layer, 3-token model.
A1 = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]
A2 = [[0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]]


def random_stochastic(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.random(shape) ** 3
    return x / x.sum(axis=-1, keepdims=True)


def test_identity_attention_rolls_out_to_identity():
    eye = np.broadcast_to(np.eye(5), (4, 5, 5))
    np.testing.assert_array_equal(attention_rollout(eye), eye)


def test_appendix_a1_augmented_and_rollout_values():
    aug = residual_augment(np.array([A1, A2]))
    np.testing.assert_allclose(aug[0], [[0.8, 0.15, 0.05], [0.1, 0.75, 0.15], [0.05, 0.05, 0.9]], atol=1e-12)
    np.testing.assert_allclose(aug[1], [[0.6, 0.35, 0.05], [0.15, 0.65, 0.2], [0.25, 0.125, 0.625]], atol=1e-12)
    rollout = attention_rollout(np.array([A1, A2]))
    expected_l2 = [[0.5175, 0.355, 0.1275], [0.195, 0.52, 0.285], [0.24375, 0.1625, 0.59375]]
    np.testing.assert_allclose(rollout[1], expected_l2, rtol=0, atol=1e-9)


def test_first_layer_is_the_augmented_attention():
    attn = random_stochastic(np.random.default_rng(1), (3, 6, 6))
    np.testing.assert_allclose(attention_rollout(attn)[0], residual_augment(attn)[0], atol=0)
    # For row-stochastic input the augmentation is 0.5·A + 0.5·I.
    np.testing.assert_allclose(residual_augment(attn), 0.5 * attn + 0.5 * np.eye(6), atol=1e-15)


def test_every_row_of_every_layer_sums_to_one():
    attn = random_stochastic(np.random.default_rng(0), (6, 9, 9))
    rollout = attention_rollout(attn)
    assert rollout.shape == (6, 9, 9)
    np.testing.assert_allclose(rollout.sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(rollout >= 0)


def test_rollout_is_the_running_matrix_product():
    attn = random_stochastic(np.random.default_rng(2), (4, 5, 5))
    aug = 0.5 * attn + 0.5 * np.eye(5)
    expected = aug[3] @ aug[2] @ aug[1] @ aug[0]
    np.testing.assert_allclose(attention_rollout(attn)[3], expected, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 3), (2, 3, 4), (0, 3, 3), (1, 2, 3, 3)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match="shape"):
        attention_rollout(np.ones(shape))


def test_negative_or_nan_attention_raises():
    bad = np.full((1, 2, 2), 0.5)
    bad[0, 0, 0] = -0.1
    with pytest.raises(ValueError, match="non-negative"):
        residual_augment(bad)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        residual_augment(bad)
