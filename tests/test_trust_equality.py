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


def captum_forward(predictor):  # type: ignore[no-untyped-def]
    """(B, n, D) embeddings of one example's input (and its (B, n) mask) → (B,) scores, as captum calls it."""
    import torch

    def forward(embeds, mask):  # type: ignore[no-untyped-def]
        rows = embeds.shape[0]
        outputs = predictor.run_model("inputs_embeds", embeds, mask, [predictor.segments] * rows)
        return predictor.read(outputs, torch.arange(rows), mask, [np.arange(len(predictor.ids))] * rows)

    return forward


@pytest.mark.parametrize("family", FAMILIES)
def test_attributions_match_captum_and_separate_forwards(tiny_loaded: Callable, family: str) -> None:
    """attnviz's own Integrated Gradients (every step of a batch in shared passes) gives captum's
    ``IntegratedGradients`` (Gauss-Legendre) numbers; Input×Gradient, F(x) and F(baseline) come from the same passes
    and give captum's ``InputXGradient`` and two plain forwards."""
    import torch
    from captum.attr import InputXGradient, IntegratedGradients
    from capture_helpers import task_examples

    from attnviz.analysis.pipeline import combined_needs
    from attnviz.model.capture import capture_batch
    from attnviz.model.predictor import _embeddings
    from attnviz.model.tasks import get_task

    loaded = tiny_loaded(family)
    captures = capture_batch(loaded, task_examples(loaded.task), max_length=64, needs=combined_needs(["agreement"]))
    for capture in captures:
        predictor = get_task(loaded.task).predictor(loaded, capture)
        forward = captum_forward(predictor)
        embeds, baseline = (e[None] for e in _embeddings(predictor))
        mask = torch.ones((1, len(predictor.ids)), dtype=torch.long)
        want_ixg = InputXGradient(forward).attribute(embeds.clone().requires_grad_(), additional_forward_args=(mask,))
        with torch.no_grad():
            want_gap = float((forward(embeds, mask) - forward(baseline, mask)).sum())
        for steps in (4, 7):
            found = predictor.attributions(steps)
            want_ig = IntegratedGradients(forward).attribute(
                embeds, baselines=baseline, additional_forward_args=(mask,), n_steps=steps, method="gausslegendre"
            )
            per_token = want_ig[0].sum(-1).detach().double().numpy()
            np.testing.assert_allclose(found.integrated_gradients, per_token, rtol=1e-5, atol=1e-6, err_msg=family)
            assert found.delta == pytest.approx(abs(per_token.sum() - want_gap), rel=1e-4, abs=1e-6)
        want = want_ixg[0].sum(-1).detach().double().numpy()
        np.testing.assert_allclose(found.input_x_gradient, want, rtol=1e-5, atol=1e-6, err_msg=family)
        assert found.gap == pytest.approx(abs(want_gap), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_batch_scored_together_gives_each_example_its_own_numbers(
    tiny_loaded: Callable, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edited copies and the gradient steps of a batch's examples share passes (but for encoder-decoders, whose
    decoder input is each example's own; gradient steps only with examples of the same length), and every number
    equals the example analysed alone, up to the rounding of padding."""
    import dataclasses

    from capture_helpers import task_examples

    from attnviz.analysis.pipeline import BatchReruns, analyze, analyze_batch, combined_needs
    from attnviz.config import AnalysisOptions
    from attnviz.model import predictor as predictor_module
    from attnviz.model.capture import capture_batch
    from attnviz.model.tasks import get_task

    loaded = tiny_loaded(family)
    task = get_task(loaded.task)
    methods = ["attention", "rollout", "agreement", "faithfulness"]
    options = AnalysisOptions(ig_first_steps=8, ig_steps=8)
    examples = task_examples(loaded.task)
    first = examples[0]
    field = "context" if "context" in first.fields else next(iter(first.fields))
    words = first.fields[field].split()
    words[1], words[-1] = words[-1], words[1]  # the same words (none moved to the front): as many tokens
    twin = dataclasses.replace(first, id="twin", index=len(examples), fields={**first.fields, field: " ".join(words)})
    captures = capture_batch(loaded, [*examples, twin], max_length=64, needs=combined_needs(methods))
    predictors = [task.predictor(loaded, c) for c in captures]
    assert len(predictors[0].ids) == len(predictors[-1].ids) != len(predictors[1].ids)
    alone = [
        analyze(c, methods, index=c.example.index, options=options, predictor=task.predictor(loaded, c))
        for c in captures
    ]
    passes: dict[str, list[set[int]]] = {"_score_pass": [], "_gradient_pass": []}
    for name, owners in passes.items():
        real = getattr(predictor_module, name)

        def recording(rows, real=real, owners=owners):  # type: ignore[no-untyped-def]
            owners.append({id(row.owner) for row in rows})
            return real(rows)

        monkeypatch.setattr(predictor_module, name, recording)
    for predictor in predictors:  # as on a GPU: one pass for everything that fits, whatever the padding
        predictor.pass_tokens = predictor_module.CHUNK_TOKENS
    together = analyze_batch(
        captures,
        methods,
        options=options,
        predictors=predictors,
        together=BatchReruns(predictor_module.score_copies, predictor_module.attribute),
    )
    for name, owners in passes.items():
        shared = any(len(found) > 1 for found in owners)
        assert shared == (loaded.task != "seq2seq"), (name, owners)
    for one, batch in zip(alone, together, strict=True):
        assert one.scalars.keys() == batch.scalars.keys()
        gap = abs(one.scalars["ig_total"]) + 1e-6
        for key, value in one.scalars.items():
            # IG's delta is Σ IG − gap, two nearly equal sums: rounding moves it on the scale of the gap, not its own.
            atol = {"ig_delta": 1e-5 * gap, "ig_relative_delta": 1e-5}.get(key, 1e-6)
            np.testing.assert_allclose(batch.scalars[key], value, rtol=1e-5, atol=atol, err_msg=f"{family} {key}")
