"""Base and sentence encoders: mean-pooled embeddings; with ``text_pair``, their cosine similarity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attnviz.config import GenerationOptions
from attnviz.model.demo import mean_pool
from attnviz.model.loaded import LoadedModel
from attnviz.model.predictor import Predictor
from attnviz.model.tasks.base import AttentionLayout, Batch, Forward, TaskAdapter, encode_stream, stream_inputs
from attnviz.types import INPUT, Capture, Example, ExplainedRows, Prediction, TokenSeq

PAIR = "pair"


class EncodeTask(TaskAdapter):
    name = "encode"
    score_is_confidence = False  # a similarity or an embedding norm says nothing about being unsure
    description = "sentence encoder: mean-pooled embedding (pair: cosine similarity); explained row = mean of rows"

    def matches(self, architecture: str, config: Any) -> bool:
        return architecture.endswith(("Model", "ForMaskedLM", "ForPreTraining"))

    def load(self, name: str, **kwargs: Any) -> Any:
        from transformers import AutoModel

        return AutoModel.from_pretrained(name, **kwargs)

    def layout(self, batch: Batch, b: int) -> Mapping[str, AttentionLayout]:
        layout = {"self": AttentionLayout(INPUT, INPUT)}
        if batch.extras["has_pair"][b]:
            layout[PAIR] = AttentionLayout(PAIR, PAIR)
        return layout

    def encode(
        self, examples: Sequence[Example], loaded: LoadedModel, max_length: int, generation: GenerationOptions
    ) -> Batch:
        tok = loaded.tokenizer
        streams = {INPUT: encode_stream(tok, [ex.fields["text"] for ex in examples], None, max_length, loaded.device)}
        pairs = [ex.get("text_pair") for ex in examples]
        if any(p is not None for p in pairs):
            # Bi-encoder: the second text is encoded on its own; a missing one repeats the first.
            second = [p if p is not None else ex.fields["text"] for p, ex in zip(pairs, examples, strict=True)]
            streams[PAIR] = encode_stream(tok, second, None, max_length, loaded.device)
        return Batch(examples=list(examples), streams=streams, extras={"has_pair": [p is not None for p in pairs]})

    def forward(self, model: Any, batch: Batch) -> Forward:
        pooled, attentions = {}, {}
        # The second text runs first: per-layer hooks (value norms) keep the last call, the main text's.
        if PAIR in batch.streams:
            from attnviz.model.fast_attention import attention_kind

            with attention_kind(PAIR):
                out2 = model(**stream_inputs(batch.streams[PAIR]), output_attentions=True)
            pooled[PAIR] = mean_pool(out2.last_hidden_state, batch.streams[PAIR].mask)
            attentions[PAIR] = out2.attentions
        out = model(**stream_inputs(batch.streams[INPUT]), output_attentions=True)
        pooled[INPUT] = mean_pool(out.last_hidden_state, batch.streams[INPUT].mask)
        attentions["self"] = out.attentions
        return Forward(attentions=attentions, outputs=pooled)

    def score(self, forward: Forward, batch: Batch) -> Any:
        import torch

        first = forward.outputs[INPUT]
        if PAIR not in forward.outputs:
            return first.norm(dim=-1)
        # Per row: a text with a pair explains their cosine similarity, one without its own embedding norm (its
        # pair stream only repeats it, and cos(x, x) = 1 has no gradient).
        has_pair = torch.tensor(batch.extras["has_pair"], device=first.device)
        cosine = torch.nn.functional.cosine_similarity(first, forward.outputs[PAIR], dim=-1)
        return torch.where(has_pair, cosine, first.norm(dim=-1))

    def predictor(self, loaded: LoadedModel, capture: Capture) -> Predictor | None:
        """Scores the embedding norm, or the cosine similarity with the (unedited) second text."""
        import torch

        from attnviz.model.predictor import build_predictor

        seq = capture.sequences[INPUT]
        pair = None
        if PAIR in capture.sequences:
            ids = torch.tensor([capture.sequences[PAIR].ids], device=loaded.device)
            with torch.inference_mode():
                out = loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids))
                pair = mean_pool(out.last_hidden_state, torch.ones_like(ids)).clone()

        def read(outputs: Any, rows: Any, mask: Any, positions: list[np.ndarray]) -> Any:
            pooled = mean_pool(outputs.last_hidden_state[rows], mask[rows])
            if pair is None:
                return pooled.norm(dim=-1)
            return torch.nn.functional.cosine_similarity(pooled, pair.expand_as(pooled), dim=-1)

        return build_predictor(loaded, seq, INPUT, ~seq.special_mask, read)

    def interpret(
        self, forward: Forward, batch: Batch, b: int, sequences: Mapping[str, TokenSeq], loaded: LoadedModel
    ) -> tuple[Prediction, ExplainedRows]:
        n = len(sequences[INPUT])
        rows = ExplainedRows(
            labels=("mean of all tokens (mean pooling)",), weights=np.full((1, n), 1.0 / n), attention="self"
        )
        first = forward.outputs[INPUT][b].detach().float().cpu()
        dim = int(first.shape[-1])
        if batch.extras["has_pair"][b]:
            import torch

            second = forward.outputs[PAIR][b].detach().float().cpu()
            cos = float(torch.nn.functional.cosine_similarity(first, second, dim=0))
            return Prediction(text=f"cosine similarity {cos:.3f}", score=cos, details={"embedding_dim": dim}), rows
        norm = float(first.norm())
        return Prediction(
            text=f"{dim}-d embedding, norm {norm:.3f}",
            score=None,
            details={"embedding_dim": dim, "embedding_norm": norm},
        ), rows
