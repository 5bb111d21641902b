"""Registered methods on real captures: rollout, flow and relevancy invariants; gradient finite differences."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from capture_helpers import EVERY_VIEW, FORWARD_VIEWS, views

from attnviz.analysis import AnalysisContext, get_analysis
from attnviz.analysis.flow import MAX_FLOW_TOKENS
from attnviz.analysis.rollout import residual_augment
from attnviz.config import GenerationOptions, ModelOptions
from attnviz.model.capture import capture_batch
from attnviz.model.loading import load_model
from attnviz.types import AttentionViews, Example


def ex(i: int = 0, **fields: str) -> Example:
    return Example(id=f"x{i}", source=f"t:{i + 1}", fields=fields, index=i)


def run(name: str, capture):  # type: ignore[no-untyped-def]
    return get_analysis(name).run(capture, AnalysisContext())


def first_layers(att: AttentionViews, layers: int) -> AttentionViews:
    """The same views cut to the first ``layers`` layers.

    Every view and statistic is per layer; stage l of the products through the layers (rollout and relevancy
    rows) involves layers 1 … l only, so its first stages are those of the cut attention too.
    """
    fixed = ("kind", "query", "key", "shape", "causal", "stats", "omitted")
    names = [f.name for f in dataclasses.fields(att) if f.name not in fixed]
    cut = {name: getattr(att, name)[:layers] for name in names if getattr(att, name) is not None}
    return replace(
        att,
        shape=(layers, *att.shape[1:]),
        stats={name: values[:layers] for name, values in att.stats.items()},
        **cut,
    )


@pytest.mark.parametrize("kind", ["bert-classifier", "gpt2-classifier", "bert-base", "gpt2-lm"])
def test_rollout_rows_are_distributions_and_layer_one_is_augmented_attention(tiny_loaded: Callable, kind: str) -> None:
    cap = capture_batch(
        tiny_loaded(kind), [ex(text="The cat sat quietly on the mat")], max_length=64, needs=FORWARD_VIEWS
    )[0]
    scores = run("rollout", cap).token_scores[0]
    np.testing.assert_allclose(scores.values.sum(-1), 1.0, atol=1e-9)
    first = residual_augment(cap.main.full.astype(np.float64).mean(axis=1))[0]
    np.testing.assert_allclose(scores.values[0], cap.explained.weights @ first, atol=1e-9)
    assert scores.stage_labels[-1] == "layer 2" and scores.default_stage == 1


def test_seq2seq_rollout_goes_through_the_encoder(tiny_loaded: Callable) -> None:
    cap = capture_batch(
        tiny_loaded("bart-seq2seq"),
        [ex(source="I loved it.", target="Ich liebte es.")],
        max_length=64,
        needs=FORWARD_VIEWS,
    )[0]
    scores = run("rollout", cap).token_scores[0]
    assert scores.sequence == "source" and scores.stage_labels == ("encoder layer 1", "encoder layer 2")
    assert scores.values.shape == (2, len(cap.sequences["target"]), len(cap.sequences["source"]))
    np.testing.assert_allclose(scores.values.sum(-1), 1.0, atol=1e-9)


def test_flow_first_layer_equals_rollout_and_long_inputs_are_refused(tiny_loaded: Callable) -> None:
    loaded = tiny_loaded("bert-classifier")
    cap = capture_batch(loaded, [ex(text="The cat sat on the warm mat")], max_length=64, needs=FORWARD_VIEWS)[0]
    flow = run("flow", cap).token_scores[0]
    assert flow.stage_labels == ("layer 2",)
    np.testing.assert_allclose(flow.values.sum(-1), 1.0, atol=1e-9)
    one_layer = replace(cap, attentions={"self": first_layers(cap.main, 1)})
    np.testing.assert_allclose(
        run("flow", one_layer).token_scores[0].values[0], run("rollout", one_layer).token_scores[0].values[0], atol=1e-9
    )
    long_cap = capture_batch(loaded, [ex(text=" ".join(["word"] * 80))], max_length=128, needs=FORWARD_VIEWS)[0]
    refused = run("flow", long_cap)
    assert refused.token_scores == ()
    assert refused.messages == (f"flow refused: 82 tokens is over the limit of {MAX_FLOW_TOKENS} (its cost grows ~n⁴)",)


def test_relevancy_with_all_negative_gradients_is_the_identity(tiny_loaded: Callable) -> None:
    cap = capture_batch(tiny_loaded("bert-classifier"), [ex(text="the cat sat")], max_length=64, needs=EVERY_VIEW)[0]
    # Every view rebuilt from the captured attention with every gradient made negative.
    negated = views(
        "self",
        cap.main.full,
        cap.sequences["input"],
        explained=cap.explained.weights,
        grads=-np.abs(cap.main.full_grads) - 1e-3,
        value_norms=cap.main.value_norms,
    )
    negative = replace(cap, attentions={"self": negated})
    scores = run("relevancy", negative).token_scores[0]
    np.testing.assert_allclose(scores.values, 0.0)  # R − I = 0


def _perturbed_eager(layer: int, head: int, i: int, j: int, delta: float) -> Callable:
    """An eager attention that adds ``delta`` to one post-softmax probability of one layer."""
    calls = {"n": 0}

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):  # type: ignore[no-untyped-def]
        weights = torch.matmul(query, key.transpose(2, 3)) * scaling
        if attention_mask is not None:
            weights = weights + attention_mask
        weights = torch.softmax(weights, dim=-1)
        if calls["n"] == layer:
            bump = torch.zeros_like(weights)
            bump[0, head, i, j] = delta
            weights = weights + bump
        calls["n"] += 1
        return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights

    return attention


@pytest.mark.parametrize("path", ["eager", "fast"])
def test_attention_gradient_matches_finite_differences(
    tiny_path: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The gradient relevancy uses is d(predicted logit)/d(attention probability), on both capture paths."""
    import transformers.models.bert.modeling_bert as bert

    loaded = load_model(ModelOptions(name=str(tiny_path("bert-classifier")), capture=path))
    assert loaded.capture == path
    example = ex(text="the cat sat on the mat")
    cap = capture_batch(loaded, [example], max_length=64, needs=EVERY_VIEW)[0]
    predicted = cap.prediction.details["class_index"]
    # The perturbation patches the eager attention function, so the finite differences run on eager attention,
    # in float64: in float32 a central difference of these small gradients is mostly rounding.
    reference = load_model(ModelOptions(name=str(tiny_path("bert-classifier")), capture="eager"))
    reference.model.to(torch.float64)
    enc = reference.tokenizer(example.fields["text"], return_tensors="pt")
    eps = 1e-4
    for layer, head, i, j in [(0, 1, 0, 2), (1, 3, 0, 0), (1, 0, 0, 5), (0, 2, 3, 1)]:
        values = []
        for sign in (1, -1):
            monkeypatch.setattr(bert, "eager_attention_forward", _perturbed_eager(layer, head, i, j, sign * eps))
            with torch.no_grad():
                values.append(float(reference.model(**enc).logits[0, predicted]))
        finite = (values[0] - values[1]) / (2 * eps)
        assert cap.main.full_grads[layer, head, i, j] == pytest.approx(finite, rel=2e-2, abs=1e-4)
    monkeypatch.undo()


def test_relevancy_runs_on_every_family(tiny_loaded: Callable) -> None:
    gen = GenerationOptions(max_new_tokens=3)
    cases = [
        ("gpt2-lm", {"text": "The cat sat"}),
        ("bart-seq2seq", {"source": "I loved it."}),
        ("t5-seq2seq", {"source": "I loved it.", "target": "Ich liebte es."}),
        ("bert-qa", {"question": "Who sat?", "context": "The cat sat on the mat."}),
        ("bert-base", {"text": "the cat", "text_pair": "a dog"}),
    ]
    for kind, fields in cases:
        cap = capture_batch(tiny_loaded(kind), [ex(**fields)], max_length=64, generation=gen, needs=EVERY_VIEW)[0]
        scores = run("relevancy", cap).token_scores[0]
        assert np.isfinite(scores.values).all() and (scores.values >= -1e-9).all()
        assert scores.values.sum() > 0, kind


def test_target_label_changes_what_relevancy_explains(tiny_loaded: Callable, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from attnviz.api import render_reports
    from attnviz.config import RenderOptions
    from attnviz.errors import UnknownNameError

    loaded = tiny_loaded("bert-classifier")
    cap = capture_batch(loaded, [ex(text="the cat sat on the mat")], max_length=64, needs=EVERY_VIEW)[0]
    other = "negative" if cap.prediction.text == "positive" else "positive"
    flipped = capture_batch(loaded, [ex(text="the cat sat on the mat")], max_length=64, needs=EVERY_VIEW, target=other)[
        0
    ]
    assert not np.allclose(cap.main.full_grads, flipped.main.full_grads)
    np.testing.assert_allclose(cap.main.full, flipped.main.full)
    with pytest.raises(UnknownNameError, match="unknown --target-label 'neutral'; valid: negative, positive"):
        render_reports(
            ["the cat"], RenderOptions(out_dir=tmp_path, formats=("json",), target_label="neutral"), loaded=loaded
        )
