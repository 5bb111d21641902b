from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from attnviz.analysis.flow import MAX_FLOW_TOKENS, attention_flow
from attnviz.analysis.rollout import attention_rollout

# Appendix A.1 of research/methods.md.
A1 = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]
A2 = [[0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]]


def random_stochastic(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.random(shape) ** 3
    return x / x.sum(axis=-1, keepdims=True)


def per_pair_flow(mean_attn: np.ndarray) -> np.ndarray:
    """Independent check: one fresh graph per (output node, input token) pair, as in the reference."""
    n_layers, n = mean_attn.shape[0], mean_attn.shape[-1]
    aug = 0.5 * mean_attn + 0.5 * np.eye(n)
    size = (n_layers + 1) * n
    adj = np.zeros((size, size))
    for layer in range(1, n_layers + 1):
        adj[layer * n : (layer + 1) * n, (layer - 1) * n : layer * n] = aug[layer - 1]
    out = np.zeros((n_layers, n, n))
    for layer in range(1, n_layers + 1):
        for i in range(n):
            raw = []
            for j in range(n):
                graph = nx.from_numpy_array(adj, create_using=nx.DiGraph, edge_attr="capacity")
                raw.append(nx.maximum_flow_value(graph, layer * n + i, j))
            out[layer - 1, i] = np.array(raw) / sum(raw)
    return out


def test_appendix_a1_flow_layer_two():
    flow = attention_flow(np.array([A1, A2]))
    expected = [
        [0.483871, 0.354839, 0.161290],
        [0.193548, 0.548387, 0.258065],
        [0.262295, 0.213115, 0.524590],
    ]
    np.testing.assert_allclose(flow[1], expected, rtol=0, atol=1e-6)
    # Row 0's raw max-flows are 0.75, 0.55, 0.25 (sum 1.55), computed by hand in the notes.
    np.testing.assert_allclose(flow[1, 0], np.array([0.75, 0.55, 0.25]) / 1.55, atol=1e-12)


def test_first_layer_flow_equals_first_layer_rollout():
    attn = random_stochastic(np.random.default_rng(0), (2, 5, 5))
    np.testing.assert_allclose(attention_flow(attn)[0], attention_rollout(attn)[0], atol=1e-12)


def test_matches_independent_per_pair_max_flow():
    attn = random_stochastic(np.random.default_rng(3), (3, 5, 5))
    attn[1, 2] = [0, 0, 1, 0, 0]  # a one-hot row gives zero-capacity edges (left out of the graph)
    np.testing.assert_allclose(attention_flow(attn), per_pair_flow(attn), atol=1e-9)


def test_rows_sum_to_one_and_differ_from_rollout_beyond_layer_one():
    attn = random_stochastic(np.random.default_rng(4), (3, 4, 4))
    flow = attention_flow(attn)
    np.testing.assert_allclose(flow.sum(axis=-1), 1.0, atol=1e-12)
    assert not np.allclose(flow[2], attention_rollout(attn)[2], atol=1e-3)


def test_rows_argument_computes_only_those_rows():
    attn = random_stochastic(np.random.default_rng(5), (3, 5, 5))
    full = attention_flow(attn)
    part = attention_flow(attn, rows=[3, 1, 3])
    np.testing.assert_array_equal(part[:, [1, 3]], full[:, [1, 3]])
    assert np.isnan(part[:, [0, 2, 4]]).all()


def test_refuses_inputs_longer_than_the_limit():
    assert MAX_FLOW_TOKENS == 64
    n = MAX_FLOW_TOKENS + 1
    with pytest.raises(ValueError, match="MAX_FLOW_TOKENS=64"):
        attention_flow(np.full((1, n, n), 1.0 / n), rows=[0])


def test_accepts_inputs_at_the_limit():
    n = MAX_FLOW_TOKENS
    flow = attention_flow(np.full((1, n, n), 1.0 / n), rows=[0])
    np.testing.assert_allclose(flow[0, 0], 0.5 / n + 0.5 * np.eye(n)[0], atol=1e-12)


@pytest.mark.parametrize("rows", [[5], [-1]])
def test_out_of_range_rows_raise(rows):
    with pytest.raises(ValueError, match="rows"):
        attention_flow(np.array([A1, A2]), rows=rows)


def test_bad_shape_raises():
    with pytest.raises(ValueError, match="shape"):
        attention_flow(np.ones((3, 3)))
