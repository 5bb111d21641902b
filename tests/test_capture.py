"""Capture: attention of every layer/head, cut to real tokens; batched equals one-at-a-time; clear errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from capture_helpers import EVERY_VIEW, FORWARD_VIEWS

from attnviz.config import GenerationOptions
from attnviz.errors import ModelError
from attnviz.model.capture import capture_batch, resolve_max_length
from attnviz.types import FULL, RELEVANCY, Example, Needs

GEN = GenerationOptions(max_new_tokens=4)
TEXTS = [
    "The cat sat quietly on the warm windowsill.",
    "Rainy.",
    "I really loved this movie, the acting was wonderful and the music unbelievably good.",
]


def examples(texts: list[str], pairs: list[str | None] | None = None) -> list[Example]:
    out = []
    for i, text in enumerate(texts):
        fields = {"text": text}
        if pairs and pairs[i]:
            fields["text_pair"] = pairs[i]
        out.append(Example(id=f"e{i}", source=f"test:{i + 1}", fields=fields, index=i))
    return out


CASES = [
    ("bert-classifier", "right"),
    ("distilbert-classifier", "right"),
    ("roberta-classifier", "right"),
    ("gpt2-classifier", "right"),
    ("gpt2-classifier", "left"),
    ("bert-base", "right"),
    # Tokenizers that ask for left padding: encoders must still read their own first token and positions.
    ("bert-classifier", "left"),
    ("distilbert-classifier", "left"),
    ("roberta-classifier", "left"),
]


@pytest.mark.parametrize(("kind", "side"), CASES)
def test_rows_sum_to_one_over_real_tokens(tiny_loaded: Callable, kind: str, side: str) -> None:
    loaded = tiny_loaded(kind, side)
    for cap in capture_batch(loaded, examples(TEXTS), max_length=64, needs=FORWARD_VIEWS):
        att = cap.main
        n = len(cap.sequences["input"])
        assert att.shape == (2, 4, n, n)
        assert att.full.shape == (2, 4, n, n)
        np.testing.assert_allclose(att.full.sum(axis=-1), 1.0, atol=1e-5)
        assert att.full.dtype == np.float32


@pytest.mark.parametrize(("kind", "side"), CASES)
def test_batched_equals_one_at_a_time(tiny_loaded: Callable, kind: str, side: str) -> None:
    loaded = tiny_loaded(kind, side)
    batched = capture_batch(loaded, examples(TEXTS), max_length=64, needs=FORWARD_VIEWS)
    for i, cap in enumerate(batched):
        alone = capture_batch(loaded, examples(TEXTS)[i : i + 1], max_length=64, needs=FORWARD_VIEWS)[0]
        assert cap.sequences["input"].tokens == alone.sequences["input"].tokens
        np.testing.assert_allclose(cap.main.full, alone.main.full, atol=1e-5)
        assert cap.prediction.text == alone.prediction.text
        assert cap.prediction.score == pytest.approx(alone.prediction.score, abs=1e-5)


def test_explained_row_is_first_token_for_bert_and_last_for_gpt2(tiny_loaded: Callable) -> None:
    bert = capture_batch(tiny_loaded("bert-classifier"), examples(TEXTS[:2]), max_length=64, needs=FORWARD_VIEWS)
    for cap in bert:
        assert cap.explained.weights[0, 0] == 1.0
        assert cap.explained.labels == ("first token '[CLS]'",)
    for side in ("left", "right"):
        gpt = capture_batch(
            tiny_loaded("gpt2-classifier", side), examples(TEXTS[:2]), max_length=64, needs=FORWARD_VIEWS
        )
        for cap in gpt:
            n = len(cap.sequences["input"])
            assert cap.explained.weights[0, n - 1] == 1.0
            assert cap.main.causal
            # causal: nothing above the diagonal
            assert np.allclose(np.triu(cap.main.full[0, 0], k=1), 0.0)


def test_classifier_prediction_uses_config_labels(tiny_loaded: Callable) -> None:
    cap = capture_batch(tiny_loaded("bert-classifier"), examples(TEXTS[:1]), max_length=64, needs=FORWARD_VIEWS)[0]
    assert set(cap.prediction.probabilities) == {"negative", "positive"}
    assert cap.prediction.text == max(cap.prediction.probabilities, key=cap.prediction.probabilities.get)
    assert sum(cap.prediction.probabilities.values()) == pytest.approx(1.0)


def test_encode_mean_row_and_pair_similarity(tiny_loaded: Callable) -> None:
    loaded = tiny_loaded("bert-base")
    single, pair = capture_batch(loaded, examples(TEXTS[:2], [None, "Rainy."]), max_length=64, needs=FORWARD_VIEWS)
    n = len(single.sequences["input"])
    np.testing.assert_allclose(single.explained.weights, np.full((1, n), 1 / n))
    assert set(single.attentions) == {"self"}
    assert set(pair.attentions) == {"self", "pair"}
    assert pair.prediction.score == pytest.approx(1.0, abs=1e-5)  # identical texts


def test_encode_single_text_explains_its_norm_even_beside_a_pair(tiny_loaded: Callable) -> None:
    """In a batch with a pair, a text without one still explains its embedding norm (it explained cos(x, x) = 1,
    whose gradient is 0, so its relevancy was all zeros)."""
    loaded = tiny_loaded("bert-base")
    needs = Needs(attention=frozenset({RELEVANCY}))
    mixed, _ = capture_batch(loaded, examples(TEXTS[:2], [None, "Rainy."]), max_length=64, needs=needs)
    (alone,) = capture_batch(loaded, examples(TEXTS[:1]), max_length=64, needs=needs)
    assert np.abs(alone.main.view(RELEVANCY)).max() > 0
    np.testing.assert_allclose(mixed.main.view(RELEVANCY), alone.main.view(RELEVANCY), rtol=1e-4, atol=1e-7)


def test_pairs_are_segmented(tiny_loaded: Callable) -> None:
    cap = capture_batch(
        tiny_loaded("bert-classifier"), examples(["the cat sat"], ["the dog ran"]), max_length=64, needs=FORWARD_VIEWS
    )[0]
    seq = cap.sequences["input"]
    assert seq.segments[0] == 0 and seq.segments[-1] == 1
    assert seq.words == ("the", "cat", "sat", "the", "dog", "ran")
    assert sum(seq.special) == 3


def test_truncation_is_reported(tiny_loaded: Callable) -> None:
    loaded = tiny_loaded("bert-classifier")
    long_text, short = TEXTS[2], TEXTS[1]
    capped = capture_batch(loaded, examples([long_text, short]), max_length=8, needs=FORWARD_VIEWS)
    assert capped[0].truncated and capped[0].original_length > 8
    assert len(capped[0].sequences["input"]) == 8
    assert not capped[1].truncated


def test_default_max_length_respects_model_limits(tiny_loaded: Callable) -> None:
    loaded = tiny_loaded("bert-classifier")
    assert resolve_max_length(loaded, None) == 128  # tiny models have 128 positions
    assert resolve_max_length(loaded, 16) == 16


def test_sdpa_without_weights_is_a_model_error(tiny_path: Callable) -> None:
    from attnviz.config import ModelOptions
    from attnviz.model.loading import load_model

    # The eager capture path reads the weights the model returns; plain SDPA returns none.
    loaded = load_model(ModelOptions(name=str(tiny_path("bert-classifier")), capture="eager"))
    loaded.model.set_attn_implementation("sdpa")
    try:
        with pytest.raises(ModelError, match="returned no self attention weights .*'sdpa'"):
            capture_batch(loaded, examples(TEXTS[:1]), max_length=32, needs=FORWARD_VIEWS)
    finally:
        loaded.model.set_attn_implementation("eager")


def test_wrong_layer_count_is_a_model_error(tiny_path: Callable) -> None:
    from attnviz.config import ModelOptions
    from attnviz.model.loading import load_model

    loaded = load_model(ModelOptions(name=str(tiny_path("bert-classifier")), capture="eager"))
    loaded.model.config.num_hidden_layers = 5
    with pytest.raises(ModelError, match="attention for 2 layers but its config has 5"):
        capture_batch(loaded, examples(TEXTS[:1]), max_length=32, needs=FORWARD_VIEWS)


def test_gradients_are_captured_when_asked(tiny_loaded: Callable) -> None:
    cap = capture_batch(tiny_loaded("bert-classifier"), examples(TEXTS[:2]), max_length=64, needs=EVERY_VIEW)[0]
    assert cap.main.full_grads is not None and cap.main.full_grads.shape == cap.main.full.shape
    assert np.abs(cap.main.full_grads).sum() > 0


def test_capture_is_frozen(tiny_loaded: Callable) -> None:
    needs = Needs(attention=frozenset({FULL}))
    cap = capture_batch(tiny_loaded("bert-classifier"), examples(TEXTS[:1]), max_length=64, needs=needs)[0]
    with pytest.raises(AttributeError):
        cap.task = "other"  # type: ignore[misc]
    cut = replace(cap.main, shape=(*cap.main.shape[:2], 2, 2), full=cap.main.full[:, :, :2, :2])  # valid on its own
    with pytest.raises(ValueError, match="expected"):
        replace(cap, sequences={"input": cap.sequences["input"]}, attentions={"self": cut})


def test_bfloat16_weights_still_give_float32_rows_that_sum_to_one(tiny_path: Callable) -> None:
    from attnviz.config import ModelOptions
    from attnviz.model.loading import load_model

    loaded = load_model(ModelOptions(name=str(tiny_path("bert-classifier")), dtype="bfloat16"))
    assert loaded.dtype == "bfloat16"
    cap = capture_batch(loaded, examples(TEXTS[:1]), max_length=64, needs=FORWARD_VIEWS)[0]
    assert cap.main.full.dtype == np.float32
    np.testing.assert_allclose(cap.main.full.sum(-1), 1.0, atol=2e-2)  # bf16 softmax is only ~1e-2 exact


@pytest.mark.parametrize("path", ["fast", "eager"])
@pytest.mark.parametrize("kind", ["bert-classifier", "roberta-classifier"])
def test_singles_batched_with_pairs_equal_singles_alone(tiny_loaded: Callable, kind: str, path: str) -> None:
    """A text without a pair gets no extra separator for sharing a batch with pairs: batched equals alone."""
    loaded = tiny_loaded(kind, capture=path)
    mixed = examples(["the cat sat on the mat", "a dog ran", "birds sing loudly"], [None, "it was fast", None])
    batched = capture_batch(loaded, mixed, max_length=64, needs=FORWARD_VIEWS)
    for example, together in zip(mixed, batched, strict=True):
        (alone,) = capture_batch(loaded, [example], max_length=64, needs=FORWARD_VIEWS)
        assert together.sequences["input"] == alone.sequences["input"]
        assert sum(together.sequences["input"].special) == (3 if "text_pair" in example.fields else 2) + (
            kind.startswith("roberta") and "text_pair" in example.fields
        )
        np.testing.assert_allclose(together.attentions["self"].full, alone.attentions["self"].full, atol=1e-5)
        for label, p in alone.prediction.probabilities.items():
            assert together.prediction.probabilities[label] == pytest.approx(p, abs=1e-5)


QA_ROWS = [{"question": "who sat", "context": "the cat sat on the mat"}, {"question": "what", "context": "rain"}]


@pytest.mark.parametrize(
    "kind, side, rows",
    [
        ("bert-qa", "right", QA_ROWS),
        ("bert-qa", "left", QA_ROWS),
        (
            "llama-lm",
            "right",
            [{"text": "the cat sat"}, {"text": "a dog", "target": "ran far away"}, {"text": "birds"}],
        ),
        ("bart-seq2seq", "right", [{"source": "the cat sat on the mat"}, {"source": "rain", "target": "Regen"}]),
    ],
)
def test_batched_equals_alone_for_every_task(
    tiny_loaded: Callable, kind: str, side: str, rows: list[dict[str, str]]
) -> None:
    """Mixed batches (with and without targets, of different lengths) give each example what it gets alone."""
    loaded = tiny_loaded(kind, side)
    batch = [Example(id=f"e{i}", source=f"t:{i}", fields=row, index=i) for i, row in enumerate(rows)]
    together = capture_batch(loaded, batch, max_length=64, needs=FORWARD_VIEWS, generation=GEN)
    for example, mixed in zip(batch, together, strict=True):
        (alone,) = capture_batch(loaded, [example], max_length=64, needs=FORWARD_VIEWS, generation=GEN)
        assert mixed.sequences == alone.sequences and mixed.prediction.text == alone.prediction.text
        # The score and probabilities too: a softmax must not take the batch's padding in (QA's did).
        assert mixed.prediction.score == pytest.approx(alone.prediction.score, rel=1e-5, abs=1e-7)
        assert mixed.prediction.probabilities == pytest.approx(alone.prediction.probabilities, rel=1e-5, abs=1e-7)
        for kind_name, views in alone.attentions.items():
            np.testing.assert_allclose(mixed.attentions[kind_name].full, views.full, atol=1e-5)


def test_target_label_is_what_every_check_explains(tiny_loaded: Callable) -> None:
    """``--target-label``: relevancy's gradient, the faithfulness score and the gradient attributions are all of that
    class, not the predicted one (they were of the prediction, so relevancy was judged against another class)."""
    from attnviz.errors import UnknownNameError
    from attnviz.model.tasks import get_task

    loaded = tiny_loaded("bert-classifier")
    example = Example(id="e", source="t:1", fields={"text": "a fine and warm film"})
    needs = Needs(model_reruns=True)
    (predicted,) = capture_batch(loaded, [example], max_length=64, needs=needs)
    assert len(predicted.prediction.probabilities) == 2
    other = next(name for name in predicted.prediction.probabilities if name != predicted.prediction.text)
    (targeted,) = capture_batch(loaded, [example], max_length=64, needs=needs, target=other)
    assert targeted.prediction.text == predicted.prediction.text  # the prediction itself does not change
    task = get_task(loaded.task)
    found = {}
    for capture, explained in ((predicted, predicted.prediction.text), (targeted, other)):
        predictor = task.predictor(loaded, capture)
        assert predictor.full_score() == pytest.approx(capture.prediction.probabilities[explained], rel=1e-5)
        found[explained] = predictor.attributions(32)
    # Two classes: p(other) = 1 − p(predicted), so its gradient attributions are the predicted class's, negated.
    for method in ("integrated_gradients", "input_x_gradient"):
        np.testing.assert_allclose(
            getattr(found[other], method), -getattr(found[predicted.prediction.text], method), atol=1e-6
        )
    # A label the model does not have is refused whatever the methods (without gradients it was ignored).
    with pytest.raises(UnknownNameError, match="unknown --target-label 'nope'"):
        capture_batch(loaded, [example], max_length=64, needs=Needs(), target="nope")
