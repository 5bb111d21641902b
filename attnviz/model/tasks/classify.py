"""Sequence classification (``*ForSequenceClassification``), single texts or pairs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attnviz.config import GenerationOptions
from attnviz.errors import UnknownNameError
from attnviz.model.loaded import LoadedModel
from attnviz.model.predictor import Predictor
from attnviz.model.tasks.base import (
    TARGET_LABEL,
    AttentionLayout,
    Batch,
    Forward,
    TaskAdapter,
    encode_stream,
    one_hot_rows,
    stream_inputs,
)
from attnviz.types import INPUT, Capture, Example, ExplainedRows, Prediction, TokenSeq


def is_decoder_only(config: Any) -> bool:
    """GPT-2/Llama-like stacks classify from the last token; BERT-like ones from the first."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = getattr(config, "model_type", "")
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def label_names(config: Any) -> list[str]:
    num = int(getattr(config, "num_labels", 0) or len(config.id2label))
    return [str(config.id2label.get(i, f"LABEL_{i}")) for i in range(num)]


def resolve_target(target: str | None, names: Sequence[str], predicted: int) -> int:
    """The class index to explain: the predicted one, or ``--target-label`` (a name or an index)."""
    if target is None:
        return predicted
    if target in names:
        return list(names).index(target)
    if target.isdigit() and int(target) < len(names):
        return int(target)
    raise UnknownNameError("--target-label", target, list(names))


class ClassifyTask(TaskAdapter):
    name = "classify"
    description = "sequence classification: label and probabilities; explained row = [CLS] or last token"

    def matches(self, architecture: str, config: Any) -> bool:
        return architecture.endswith("ForSequenceClassification")

    def load(self, name: str, **kwargs: Any) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification.from_pretrained(name, **kwargs)

    def layout(self, batch: Batch, b: int) -> Mapping[str, AttentionLayout]:
        return {"self": AttentionLayout(INPUT, INPUT, causal=batch.extras["causal"])}

    def encode(
        self, examples: Sequence[Example], loaded: LoadedModel, max_length: int, generation: GenerationOptions
    ) -> Batch:
        stream = encode_stream(
            loaded.tokenizer,
            [ex.fields["text"] for ex in examples],
            [ex.get("text_pair") for ex in examples],
            max_length,
            loaded.device,
        )
        return Batch(
            examples=list(examples),
            streams={INPUT: stream},
            extras={
                "label_names": label_names(loaded.model.config),
                "causal": is_decoder_only(loaded.model.config),
            },
        )

    def forward(self, model: Any, batch: Batch) -> Forward:
        outputs = model(**stream_inputs(batch.streams[INPUT]), output_attentions=True)
        return Forward(attentions={"self": outputs.attentions}, outputs=outputs)

    def check_target(self, loaded: LoadedModel, target: str) -> None:
        """A label name or index the model has (:func:`resolve_target`), else an :class:`UnknownNameError`."""
        resolve_target(target, label_names(loaded.model.config), 0)

    def score(self, forward: Forward, batch: Batch) -> Any:
        import torch

        logits = forward.outputs.logits
        names = batch.extras["label_names"]
        index = [resolve_target(batch.extras.get(TARGET_LABEL), names, int(p)) for p in logits.argmax(-1).tolist()]
        return logits[torch.arange(logits.shape[0]), torch.tensor(index, device=logits.device)]

    def predictor(self, loaded: LoadedModel, capture: Capture) -> Predictor | None:
        """Scores the probability of the explained class: the predicted one, or ``--target-label``'s (the class
        relevancy explains, so that its faithfulness and the gradient attributions it is compared with are of it)."""
        import torch

        from attnviz.model.predictor import build_predictor

        index = capture.prediction.details.get("explained_index")
        if index is None:  # regression heads have no class to keep
            return None
        seq = capture.sequences[INPUT]

        def read(outputs: Any, rows: Any, mask: Any, positions: list[np.ndarray]) -> Any:
            return torch.softmax(outputs.logits[rows].float(), dim=-1)[:, index]

        return build_predictor(loaded, seq, INPUT, ~seq.special_mask, read)

    def interpret(
        self, forward: Forward, batch: Batch, b: int, sequences: Mapping[str, TokenSeq], loaded: LoadedModel
    ) -> tuple[Prediction, ExplainedRows]:
        import torch

        config = loaded.model.config
        logits = forward.outputs.logits[b].detach().float().cpu()
        names = label_names(config)
        n = len(sequences[INPUT])
        if getattr(config, "attnviz_pooling", None) == "mean":
            rows = ExplainedRows(("mean of all tokens (mean pooling)",), np.full((1, n), 1.0 / n), "self")
        elif is_decoder_only(config):
            rows = one_hot_rows(f"last token '{sequences[INPUT].tokens[-1]}'", n - 1, n, "self")
        else:
            rows = one_hot_rows(f"first token '{sequences[INPUT].tokens[0]}'", 0, n, "self")
        if logits.numel() == 1:
            value = float(logits[0])
            return Prediction(text=f"{value:.4f}", score=value, details={"regression": True}), rows
        probs = torch.softmax(logits, dim=-1).numpy().astype(np.float64)
        top = int(probs.argmax())
        explained = resolve_target(batch.extras.get(TARGET_LABEL), names, top)
        return (
            Prediction(
                text=names[top],
                score=float(probs[top]),
                probabilities={names[i]: float(p) for i, p in enumerate(probs)},
                details={"class_index": top, "explained_index": explained},
            ),
            rows,
        )
