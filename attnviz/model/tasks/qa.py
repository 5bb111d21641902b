"""Extractive question answering (``*ForQuestionAnswering``): answer span, score, start/end rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attnviz.config import GenerationOptions
from attnviz.model.loaded import LoadedModel
from attnviz.model.predictor import Predictor
from attnviz.model.tasks.base import AttentionLayout, Batch, Forward, TaskAdapter, encode_stream, stream_inputs
from attnviz.types import INPUT, Capture, Example, ExplainedRows, Panel, Prediction, TokenSeq

MAX_ANSWER_TOKENS = 30


def best_span(
    start: np.ndarray, end: np.ndarray, allowed: np.ndarray, max_tokens: int = MAX_ANSWER_TOKENS
) -> tuple[int, int]:
    """Highest start+end logit over spans inside ``allowed`` positions with start <= end < start + max_tokens."""
    scores = start[:, None] + end[None, :]
    n = len(start)
    i, j = np.indices((n, n))
    valid = (j >= i) & (j - i < max_tokens) & allowed[:, None] & allowed[None, :]
    if not valid.any():
        raise ValueError("no context tokens to answer from")
    flat = np.where(valid, scores, -np.inf).argmax()
    return int(flat // n), int(flat % n)


class QuestionAnsweringTask(TaskAdapter):
    name = "qa"
    description = "extractive QA: answer span and score; explained rows = the answer's start and end tokens"
    required_fields = ("question", "context")
    line_field = "question"

    def matches(self, architecture: str, config: Any) -> bool:
        return architecture.endswith("ForQuestionAnswering")

    def load(self, name: str, **kwargs: Any) -> Any:
        from transformers import AutoModelForQuestionAnswering

        return AutoModelForQuestionAnswering.from_pretrained(name, **kwargs)

    def layout(self, batch: Batch, b: int) -> Mapping[str, AttentionLayout]:
        return {"self": AttentionLayout(INPUT, INPUT)}

    def encode(
        self, examples: Sequence[Example], loaded: LoadedModel, max_length: int, generation: GenerationOptions
    ) -> Batch:
        stream = encode_stream(
            loaded.tokenizer,
            [ex.fields["question"] for ex in examples],
            [ex.fields["context"] for ex in examples],
            max_length,
            loaded.device,
            truncation="only_second",  # never cut the question
            segment_names=("question", "context"),
        )
        return Batch(examples=list(examples), streams={INPUT: stream})

    def forward(self, model: Any, batch: Batch) -> Forward:
        outputs = model(**stream_inputs(batch.streams[INPUT]), output_attentions=True)
        return Forward(attentions={"self": outputs.attentions}, outputs=outputs)

    def _spans(self, forward: Forward, batch: Batch) -> list[tuple[int, int]]:
        """Best span per example, in padded positions."""
        stream = batch.streams[INPUT]
        starts = forward.outputs.start_logits.detach().float().cpu().numpy()
        ends = forward.outputs.end_logits.detach().float().cpu().numpy()
        spans = []
        for b in range(starts.shape[0]):
            ids = stream.encoding.sequence_ids(b)
            allowed = np.array([s == 1 for s in ids]) & (stream.mask[b].cpu().numpy() == 1)
            spans.append(best_span(starts[b], ends[b], allowed))
        return spans

    def score(self, forward: Forward, batch: Batch) -> Any:
        """Start logit + end logit of the predicted span."""
        import torch

        spans = self._spans(forward, batch)
        rows = torch.arange(len(spans))
        start = torch.tensor([s for s, _ in spans])
        end = torch.tensor([e for _, e in spans])
        return forward.outputs.start_logits[rows, start] + forward.outputs.end_logits[rows, end]

    def panel(self, example: Example, prediction: Prediction) -> Panel | None:
        context, details = example.fields["context"], prediction.details
        start, end = details["char_start"], details["char_end"]
        return Panel(
            template="_panel_answer.html.j2",
            title="Answer in context",
            fields={
                "question": example.fields["question"],
                "before": context[:start],
                "answer": context[start:end],
                "after": context[end:],
            },
        )

    def predictor(self, loaded: LoadedModel, capture: Capture) -> Predictor | None:
        """Scores p(start) · p(end) of the original answer tokens (0 once either is erased, deleted or masked)."""
        import torch

        from attnviz.model.predictor import build_predictor

        seq = capture.sequences[INPUT]
        start, end = capture.prediction.details["start_token"], capture.prediction.details["end_token"]

        def read(outputs: Any, rows: Any, mask: Any, positions: list[np.ndarray]) -> Any:
            padding = mask[rows] == 0
            p_start = torch.softmax(outputs.start_logits[rows].float().masked_fill(padding, -1e9), dim=-1)
            p_end = torch.softmax(outputs.end_logits[rows].float().masked_fill(padding, -1e9), dim=-1)
            scores = []
            for b, kept in enumerate(positions):
                where = {int(p): j for j, p in enumerate(kept) if p >= 0}  # a masked answer token is erased too
                if start in where and end in where:
                    scores.append(p_start[b, where[start]] * p_end[b, where[end]])
                else:
                    scores.append(p_start.new_zeros(()))
            return torch.stack(scores)

        return build_predictor(loaded, seq, INPUT, ~seq.special_mask, read)

    def interpret(
        self, forward: Forward, batch: Batch, b: int, sequences: Mapping[str, TokenSeq], loaded: LoadedModel
    ) -> tuple[Prediction, ExplainedRows]:
        import torch

        stream = batch.streams[INPUT]
        keep = list(stream.keep(b))
        start, end = self._spans(forward, batch)[b]
        s, e = keep.index(start), keep.index(end)  # positions among real tokens
        seq = sequences[INPUT]
        context = stream.texts[b][1]
        char_start, char_end = seq.offsets[s][0], seq.offsets[e][1]
        # Over the example's own tokens: a batch's padding must not take probability, or the score would depend on
        # what else is in the batch.
        real = torch.tensor(keep, device=forward.outputs.start_logits.device)
        p_start = torch.softmax(forward.outputs.start_logits[b, real].detach().float(), -1)[s]
        p_end = torch.softmax(forward.outputs.end_logits[b, real].detach().float(), -1)[e]
        n = len(seq)
        weights = np.zeros((2, n))
        weights[0, s] = weights[1, e] = 1.0
        rows = ExplainedRows(
            labels=(f"answer start {seq.tokens[s]!r}", f"answer end {seq.tokens[e]!r}"),
            weights=weights,
            attention="self",
        )
        details = {"start_token": s, "end_token": e, "char_start": char_start, "char_end": char_end}
        answer = context[char_start:char_end]
        return Prediction(text=answer, score=float(p_start * p_end), details=details), rows
