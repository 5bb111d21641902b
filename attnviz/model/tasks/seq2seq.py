"""Encoder-decoders (Marian, BART, T5): encoder self-, decoder self- and cross-attention.

Target tokens are the tokens the decoder *produces*, y_1 … y_m (ending with ``</s>``). The decoder reads
``[start] y_1 … y_{m-1}``, so the row that produces y_i is decoder position i-1; attnviz stores that row
as y_i's row. Cross-attention rows are therefore "what the model looked at in the source while writing
y_i", and decoder self-attention keys are the decoder inputs (``decoder_input``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attnviz.config import GenerationOptions
from attnviz.model.loaded import LoadedModel
from attnviz.model.predictor import Predictor
from attnviz.model.tasks.base import AttentionLayout, Batch, Forward, TaskAdapter, encode_stream, ids_stream
from attnviz.model.tasks.generate import continuation_logprobs, generate_ids, generation_panel
from attnviz.model.tokens import seq_from_ids
from attnviz.types import SOURCE, TARGET, Capture, Example, ExplainedRows, Panel, Prediction, TokenSeq

DECODER_INPUT = "decoder_input"


def decoder_start(model: Any) -> int:
    start = getattr(model.config, "decoder_start_token_id", None)
    if start is None:
        start = getattr(getattr(model, "generation_config", None), "decoder_start_token_id", None)
    if start is None:
        raise ValueError("the model config has no decoder_start_token_id")
    return int(start)


class Seq2SeqTask(TaskAdapter):
    name = "seq2seq"
    description = "encoder-decoder: source → given or generated target; explained rows = each target token"
    required_fields = ("source",)
    line_field = "source"

    def matches(self, architecture: str, config: Any) -> bool:
        return bool(getattr(config, "is_encoder_decoder", False)) and architecture.endswith(
            ("ForConditionalGeneration", "MTModel", "Seq2SeqLM")
        )

    def load(self, name: str, **kwargs: Any) -> Any:
        from transformers import AutoModelForSeq2SeqLM

        return AutoModelForSeq2SeqLM.from_pretrained(name, **kwargs)

    def layout(self, batch: Batch, b: int) -> Mapping[str, AttentionLayout]:
        return {
            "encoder": AttentionLayout(SOURCE, SOURCE),
            "decoder": AttentionLayout(TARGET, DECODER_INPUT, causal=True, aligned=True),
            "cross": AttentionLayout(TARGET, SOURCE),
        }

    def encode(
        self, examples: Sequence[Example], loaded: LoadedModel, max_length: int, generation: GenerationOptions
    ) -> Batch:
        tok, model = loaded.tokenizer, loaded.model
        source = encode_stream(
            tok, [ex.fields["source"] for ex in examples], None, max_length, loaded.device, segment_names=("source",)
        )
        start = decoder_start(model)
        targets, inputs, target_seqs, input_seqs, generated = [], [], [], [], []
        for b, ex in enumerate(examples):
            if ex.get("target") is None:
                real = source.input_ids[b][source.mask[b] == 1].tolist()
                produced = generate_ids(model, tok, real, generation, max_length)
            else:
                produced = tok(text_target=ex.fields["target"], truncation=True, max_length=max_length)["input_ids"]
            produced = produced or [tok.eos_token_id]
            decoder_ids = [start, *produced[:-1]]
            targets.append(produced)
            inputs.append(decoder_ids)
            target_seqs.append(seq_from_ids(tok, produced, len(produced), ("target",)))
            input_seqs.append(seq_from_ids(tok, decoder_ids, len(decoder_ids), ("decoder input",)))
            generated.append(ex.get("target") is None)
        return Batch(
            examples=list(examples),
            streams={
                SOURCE: source,
                TARGET: ids_stream(tok, targets, target_seqs, loaded.device),
                DECODER_INPUT: ids_stream(tok, inputs, input_seqs, loaded.device),
            },
            extras={"generated": generated},
        )

    def forward(self, model: Any, batch: Batch) -> Forward:
        source, decoder = batch.streams[SOURCE], batch.streams[DECODER_INPUT]
        outputs = model(
            input_ids=source.input_ids,
            attention_mask=source.mask,
            decoder_input_ids=decoder.input_ids,
            decoder_attention_mask=decoder.mask,
            output_attentions=True,
        )
        return Forward(
            attentions={
                "encoder": outputs.encoder_attentions,
                "decoder": outputs.decoder_attentions,
                "cross": outputs.cross_attentions,
            },
            outputs=outputs,
        )

    def score(self, forward: Forward, batch: Batch) -> Any:
        """Log-probability of the whole target."""
        stream = batch.streams[TARGET]
        logprobs = continuation_logprobs(forward.outputs.logits, stream.input_ids)
        return (logprobs * stream.mask).sum(dim=-1)

    def panel(self, example: Example, prediction: Prediction) -> Panel | None:
        return generation_panel("Target", "Source", example.fields["source"], prediction)

    def predictor(self, loaded: LoadedModel, capture: Capture) -> Predictor | None:
        """Scores the mean log-probability of the target given an edited source."""
        import torch

        from attnviz.model.predictor import build_predictor

        source = capture.sequences[SOURCE]
        target = torch.tensor([capture.sequences[TARGET].ids], device=loaded.device)
        decoder = torch.tensor([capture.sequences[DECODER_INPUT].ids], device=loaded.device)

        def read(outputs: Any, rows: Any, mask: Any, positions: list[np.ndarray]) -> Any:
            logprobs = torch.log_softmax(outputs.logits[rows].float(), dim=-1)
            return logprobs.gather(-1, target.expand(len(rows), -1).unsqueeze(-1)).squeeze(-1).mean(dim=-1)

        # The decoder input is this example's own, so its copies go through the model apart from other examples'.
        return build_predictor(
            loaded,
            source,
            SOURCE,
            ~source.special_mask,
            read,
            model_kwargs=lambda rows: {"decoder_input_ids": decoder.expand(rows, -1)},
        )

    def interpret(
        self, forward: Forward, batch: Batch, b: int, sequences: Mapping[str, TokenSeq], loaded: LoadedModel
    ) -> tuple[Prediction, ExplainedRows]:
        target = sequences[TARGET]
        m = len(target)
        stream = batch.streams[TARGET]
        logprobs = continuation_logprobs(forward.outputs.logits, stream.input_ids)[b, :m]
        values = logprobs.detach().float().cpu().numpy()
        ids = stream.input_ids[b, :m].tolist()
        text = loaded.tokenizer.decode(ids, skip_special_tokens=True)
        details = {
            "generated": batch.extras["generated"][b],
            "target_tokens": list(target.tokens),
            "token_logprobs": [float(v) for v in values],
        }
        labels = tuple(f"{tok!r} (target {i + 1})" for i, tok in enumerate(target.tokens))
        rows = ExplainedRows(labels=labels, weights=np.eye(m), attention="cross")
        return Prediction(text=text, score=float(values.mean()), details=details), rows
