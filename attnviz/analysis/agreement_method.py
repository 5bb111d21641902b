"""``agreement``: how attention-derived scores rank tokens compared with gradient attributions.

Input×Gradient and Integrated Gradients (as captum computes them, on the input embeddings) are computed
through the example's predictor; each attention-derived method's scores are compared with both by Kendall τ over
the erasable tokens. These are descriptive numbers: transformer explanation methods often disagree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnviz.analysis.agreement import kendall_tau
from attnviz.analysis.base import AnalysisContext, AnalysisResult, TokenScores, without_predictor
from attnviz.analysis.faithfulness import scored_methods
from attnviz.config import AnalysisOptions
from attnviz.types import Capture, Needs

#: Integrated Gradients is trusted when its convergence delta is under this share of |F(x) − F(baseline)|.
IG_DELTA_BOUND = 0.01


class Agreement:
    name = "agreement"
    description = "Kendall τ between attention-derived scores and Input×Gradient / Integrated Gradients"
    # Reads the attention-derived scores; its own gradient scores are then tested by faithfulness.
    needs = Needs(model_reruns=True, reads_scores=True, produces_scores=True)

    def steps_wanted(self, capture: Capture, context: AnalysisContext) -> int | None:
        """The Integrated Gradients step count :meth:`run` still needs (None: none), so that a batch's steps can be
        computed together first (``attnviz.analysis.pipeline.analyze_batch``)."""
        if context.predictor is None:
            return None
        steps, found = ig_schedule(context.predictor, context.options)
        return steps if found is None else None

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        predictor = context.predictor
        if predictor is None:
            return without_predictor(self.name, capture, context)
        steps, found = ig_schedule(predictor, context.options)
        while found is None:
            predictor.attributions(steps)
            steps, found = ig_schedule(predictor, context.options)
        ixg, ig = found.input_x_gradient, found.integrated_gradients
        removable = predictor.removable
        n = len(predictor.ids)
        gradient_scores = tuple(
            TokenScores(
                method=method,
                label=label,
                values=np.abs(values)[None, None, :] * np.ones((1, len(capture.explained.labels), n)),
                stage_labels=("input",),
                default_stage=0,
                sequence=predictor.sequence,
                note=note,
            )
            for method, label, values, note in (
                ("input_x_gradient", "Input×Gradient", ixg, "|Σ_d x_d · ∂F/∂x_d| on the input embeddings"),
                (
                    "integrated_gradients",
                    "Integrated Gradients",
                    ig,
                    f"|Σ_d IG_d|, {steps} Gauss-Legendre steps from a baseline with every non-special token = pad",
                ),
            )
        )
        scalars: dict[str, float] = {
            "ig_delta": found.delta,
            "ig_total": float(ig.sum()),
            "ig_relative_delta": found.relative_delta,
            "ig_steps": float(steps),
        }
        messages = ()
        if found.relative_delta > IG_DELTA_BOUND:
            share = (
                f"its delta is {found.relative_delta:.1%} of |F(x) − F(baseline)|"
                if found.gap > 0
                else f"F(x) equals F(baseline), yet its attributions sum to {found.delta:.3g}"
            )
            messages = (
                f"Integrated Gradients did not converge: {share} (bound {IG_DELTA_BOUND:.0%}); rerun with a larger "
                f"--ig-steps (it ran {steps}) before reading its scores.",
            )
        for scores in scored_methods(context.previous, predictor.sequence):
            attention = scores.at()[removable]
            scalars[f"agreement_ig.{scores.method}"] = kendall_tau(attention, np.abs(ig)[removable])
            scalars[f"agreement_ixg.{scores.method}"] = kendall_tau(attention, np.abs(ixg)[removable])
        return AnalysisResult(name=self.name, token_scores=gradient_scores, scalars=scalars, messages=messages)


def ig_schedule(predictor: Any, options: AnalysisOptions) -> tuple[int, Any]:
    """Where Integrated Gradients stands: ``ig_first_steps`` steps, doubled (up to ``ig_steps``) while the delta is
    above :data:`IG_DELTA_BOUND`. Returns the steps it stopped at and their attributions, or the next steps to
    compute and None."""
    steps = options.ig_first_steps
    while (found := predictor.attributed(steps)) is not None:
        if found.relative_delta <= IG_DELTA_BOUND or steps >= options.ig_steps:
            return steps, found
        steps = min(2 * steps, options.ig_steps)
    return steps, None
