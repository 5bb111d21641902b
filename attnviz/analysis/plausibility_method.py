"""``plausibility``: overlap of each method's top tokens with a human rationale (when the input has one)."""

from __future__ import annotations

import numpy as np

from attnviz.analysis.base import AnalysisContext, AnalysisResult
from attnviz.analysis.plausibility import auprc, rationale_mask, topk_f1, words_to_spans
from attnviz.types import Capture, Needs


class Plausibility:
    """Token F1 of each method's top-k tokens (k = the rationale's token count) and AUPRC (average precision).

    The rationale marks characters of ``text``: ``[[start, end], …]`` spans or a list of words (every
    whole-word occurrence). A token belongs to it when its characters overlap a span.
    """

    name = "plausibility"
    description = "token F1 of the top-k tokens and AUPRC against human rationales (JSONL `rationale`)"
    needs = Needs(reads_scores=True)

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        rationale = capture.example.rationale
        if not rationale:
            return AnalysisResult(name=self.name)
        text = capture.example.fields.get("text", "")
        spans = words_to_spans(text, rationale) if isinstance(rationale[0], str) else list(rationale)
        scalars: dict[str, float] = {}
        for result in context.previous.values():
            for scores in result.token_scores:
                seq = capture.sequences[scores.sequence]
                if not seq.offsets or seq.segment_names[0] != "text":
                    continue
                in_text = (np.asarray(seq.segments) == 0) & ~seq.special_mask
                offsets = [o if in_text[i] else (0, 0) for i, o in enumerate(seq.offsets)]
                marked = rationale_mask(offsets, spans)
                if not marked.any():
                    continue
                values = scores.at()
                scalars[f"plausibility_f1.{scores.method}"] = topk_f1(
                    values[in_text], marked[in_text], int(marked.sum())
                )
                scalars[f"auprc.{scores.method}"] = auprc(values[in_text], marked[in_text])
        return AnalysisResult(name=self.name, scalars=scalars)
