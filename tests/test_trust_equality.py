"""Trust checks give the numbers they gave before copies were de-duplicated and scored packed by length.

``fixtures/golden/trust_scalars.json`` was written by ``fixtures/golden/make_trust_golden.py`` with the
package of commit 0d6dc1e (each ranking's copies scored on their own, every copy scored). Batching copies of
other lengths together changes only float rounding (padding), so 1e-5 relative.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fixtures.golden.make_trust_golden import trust_numbers
from tiny_models import FAMILIES

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "golden" / "trust_scalars.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("family", FAMILIES)
def test_trust_numbers_unchanged(tiny_loaded: Callable, family: str) -> None:
    got = trust_numbers(tiny_loaded(family))
    want = GOLDEN[family]
    assert set(want) <= set(got)  # every number there was (new ones may be added)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=f"{family} {key}")


@pytest.mark.parametrize("family", FAMILIES)
def test_input_x_gradient_and_the_ig_gap_match_captum_and_separate_forwards(tiny_loaded: Callable, family: str) -> None:
    """I×G and F(x) come from one forward and backward; captum's InputXGradient and two plain forwards agree."""
    import torch
    from captum.attr import InputXGradient
    from capture_helpers import task_examples

    from attnviz.analysis.pipeline import combined_needs
    from attnviz.model.capture import capture_batch
    from attnviz.model.predictor import _embeddings
    from attnviz.model.tasks import get_task

    loaded = tiny_loaded(family)
    examples = task_examples(loaded.task)
    (capture, *_) = capture_batch(loaded, examples, max_length=64, needs=combined_needs(["agreement"]))
    predictor = get_task(loaded.task).predictor(loaded, capture)
    found = predictor.attributions(4)
    embeds, baseline = _embeddings(predictor)
    args = predictor.extra_args
    want = InputXGradient(predictor.forward_embeds).attribute(
        embeds.clone().requires_grad_(), additional_forward_args=args
    )
    np.testing.assert_allclose(found.input_x_gradient, want[0].sum(-1).detach().double().numpy(), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        gap = float((predictor.forward_embeds(embeds, *args) - predictor.forward_embeds(baseline, *args)).sum())
    assert found.gap == pytest.approx(abs(gap), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_batch_scored_together_gives_each_example_its_own_numbers(
    tiny_loaded: Callable, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edited copies of a batch's examples share passes (but for encoder-decoders, whose decoder input is each
    example's own), and every number equals the example analysed alone, up to the rounding of padding."""
    from capture_helpers import task_examples

    from attnviz.analysis.pipeline import analyze, analyze_batch, combined_needs
    from attnviz.config import AnalysisOptions
    from attnviz.model import predictor as predictor_module
    from attnviz.model.capture import capture_batch
    from attnviz.model.tasks import get_task

    loaded = tiny_loaded(family)
    task = get_task(loaded.task)
    methods = ["attention", "rollout", "agreement", "faithfulness"]
    options = AnalysisOptions(ig_first_steps=8, ig_steps=8)
    captures = capture_batch(loaded, task_examples(loaded.task), max_length=64, needs=combined_needs(methods))
    alone = [
        analyze(c, methods, index=c.example.index, options=options, predictor=task.predictor(loaded, c))
        for c in captures
    ]
    passes: list[set[str]] = []
    real = predictor_module._score_pass

    def recording(copies):  # type: ignore[no-untyped-def]
        passes.append({copy.owner.sequence + str(id(copy.owner)) for copy in copies})
        return real(copies)

    monkeypatch.setattr(predictor_module, "_score_pass", recording)
    together = analyze_batch(
        captures,
        methods,
        options=options,
        predictors=[task.predictor(loaded, c) for c in captures],
        score_copies=predictor_module.score_copies,
    )
    shared = any(len(owners) > 1 for owners in passes)
    assert shared == (loaded.task != "seq2seq"), passes
    for one, batch in zip(alone, together, strict=True):
        assert one.scalars.keys() == batch.scalars.keys()
        for key, value in one.scalars.items():
            np.testing.assert_allclose(batch.scalars[key], value, rtol=1e-5, atol=1e-6, err_msg=f"{family} {key}")
