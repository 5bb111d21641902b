"""The ``attention`` and ``heads`` analyses on hand-computable attention."""

from __future__ import annotations

import math

import numpy as np
import pytest
from capture_helpers import views

from attnviz.analysis import AnalysisContext, get_analysis, list_analyses
from attnviz.errors import UnknownNameError
from attnviz.types import AttentionViews, Capture, Example, ExplainedRows, Prediction, TokenSeq


def make_seq(special: tuple[bool, ...]) -> TokenSeq:
    n = len(special)
    word_ids: list[int | None] = []
    for s in special:
        word_ids.append(None if s else sum(1 for w in word_ids if w is not None))
    return TokenSeq(
        tokens=tuple(f"t{i}" for i in range(n)),
        pieces=tuple(f"t{i}" for i in range(n)),
        special=special,
        word_ids=tuple(word_ids),
        words=tuple(f"t{i}" for i, s in enumerate(special) if not s),
        segments=(0,) * n,
    )


def hand_views(weights: np.ndarray, special: tuple[bool, ...] | None = None, causal: bool = False) -> AttentionViews:
    """Every view of a hand-made (L, H, n, n) attention array (no special tokens unless given)."""
    n = weights.shape[-1]
    seq = make_seq(special if special is not None else (False,) * n)
    return views("self", weights.astype(np.float32), seq, causal=causal, explained=np.eye(n)[:1])


def make_capture(
    weights: np.ndarray, special: tuple[bool, ...], explained: np.ndarray, causal: bool = False
) -> Capture:
    seq = make_seq(special)
    return Capture(
        example=Example(id="x", source="t:1", fields={"text": "x"}),
        task="classify",
        sequences={"input": seq},
        attentions={"self": views("self", weights.astype(np.float32), seq, causal=causal, explained=explained)},
        explained=ExplainedRows(tuple(f"row {i}" for i in range(len(explained))), explained, "self"),
        prediction=Prediction(text="x"),
    )


def test_uniform_rows_have_entropy_one_and_one_hot_zero() -> None:
    n = 5
    uniform = np.full((1, 1, n, n), 1.0 / n)
    one_hot = np.tile(np.eye(n), (1, 1, 1, 1))
    assert hand_views(uniform).stats["entropy"][0, 0] == pytest.approx(1.0)
    assert hand_views(one_hot).stats["entropy"][0, 0] == pytest.approx(0.0)


def test_causal_rows_normalise_by_visible_keys() -> None:
    n = 4
    causal_uniform = np.tril(np.ones((n, n)))
    causal_uniform /= causal_uniform.sum(axis=1, keepdims=True)
    assert hand_views(causal_uniform[None, None], causal=True).stats["entropy"][0, 0] == pytest.approx(1.0)
    # without the causal flag, early rows look focused: ln(i+1)/ln(n) averaged over rows 0..3
    expected = np.mean([math.log(i + 1) / math.log(n) for i in range(n)])
    assert hand_views(causal_uniform[None, None]).stats["entropy"][0, 0] == pytest.approx(expected)


def test_hand_computed_entropy() -> None:
    row = np.array([0.5, 0.25, 0.25])
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)) / math.log(3)
    weights = np.tile(row, (1, 1, 3, 1))
    assert hand_views(weights).stats["entropy"][0, 0] == pytest.approx(expected)


def test_special_share_is_mean_row_mass_on_special_columns() -> None:
    weights = np.array([[[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]]]])
    special = (True, False, True)
    assert hand_views(weights, special).stats["special_share"][0, 0] == pytest.approx(np.mean([0.8, 0.9, 0.6]))


def test_heads_analysis_reports_both_metrics_per_kind() -> None:
    n = 4
    weights = np.full((2, 3, n, n), 1.0 / n)
    cap = make_capture(weights, (True, False, False, True), np.eye(n)[:1])
    result = get_analysis("heads").run(cap, AnalysisContext())
    names = {(m.name, m.attention): m.values for m in result.head_metrics}
    np.testing.assert_allclose(names[("entropy", "self")], np.ones((2, 3)))
    np.testing.assert_allclose(names[("special_share", "self")], np.full((2, 3), 0.5))


def test_attention_analysis_reads_the_explained_row_of_the_head_mean() -> None:
    a = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    b = np.array([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]])
    weights = np.stack([np.stack([a, b])])  # (1 layer, 2 heads, 3, 3)
    explained = np.array([[0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]])
    cap = make_capture(weights, (False, False, False), explained)
    scores = get_analysis("attention").run(cap, AnalysisContext()).token_scores[0]
    mean = (a + b) / 2
    np.testing.assert_allclose(scores.values[0, 0], mean[2], atol=1e-6)
    np.testing.assert_allclose(scores.values[0, 1], mean.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(scores.at(), (mean[2] + mean.mean(axis=0)) / 2, atol=1e-6)
    assert scores.stage_labels == ("layer 1",)


def test_registry_lists_valid_names() -> None:
    assert {"attention", "heads"} <= set(list_analyses())
    with pytest.raises(
        UnknownNameError, match="unknown method 'nope'; valid: attention, rollout, flow, relevancy, norms, heads"
    ):
        get_analysis("nope")


def test_explained_rows_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match="must sum to 1"):
        ExplainedRows(("r",), np.array([[0.5, 0.2]]), "self")


def test_describe_heads_names_the_focused_layers_and_the_most_focused_head() -> None:
    from attnviz.analysis.heads import describe_heads

    entropy = np.array([[0.95, 0.00], [0.40, 0.50], [0.30, 0.45]])  # layer means 0.475, 0.45, 0.375
    diffuse, sink = entropy > 0.9, np.array([[False, True], [False, False], [False, False]])
    assert describe_heads(entropy, diffuse, sink, "self") == (
        "1 of 6 self-attention heads are diffuse (normalised entropy > 0.9) and 1 are sink-bound (> 50% of their "
        "attention on special or first tokens); on average the most focused layers are 2 and 3, and the most focused "
        "head is layer 1 head 2 (entropy 0.00)."
    )
