"""The task adapter interface and the tokenisation helpers adapters share.

An adapter says what the input is (fields), how to run the model (one or more forward passes), which
attention tensors come back and which tokens they index, what was predicted, and which rows explain it.
Everything here runs inside the capture stage and may use torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from attnviz.config import GenerationOptions
from attnviz.errors import UsageError
from attnviz.model.loaded import LoadedModel
from attnviz.model.predictor import Predictor
from attnviz.types import Capture, Example, ExplainedRows, Panel, Prediction, TokenSeq


@dataclass
class Stream:
    """One tokenised sequence of a batch (padded), with what is needed to cut each row to real tokens.

    Attributes:
        input_ids: (B, n) token ids.
        mask: (B, n) 1 for real tokens, 0 for padding (left or right).
        texts: per example, the texts indexed by sequence id.
        encoding: the tokenizer's BatchEncoding (word ids, sequence ids, offsets).
        truncated: per example, whether ``--max-length`` cut it.
        original_lengths: per example, token count before truncation.
        segment_names: what each text is (``text``/``text_pair``, ``question``/``context``).
        seqs: per example, a ready token view of the real tokens (for ids that came from generation,
            which have no tokenizer encoding); None means build it from ``encoding``.
    """

    input_ids: Any
    mask: Any
    texts: list[tuple[str, ...]]
    encoding: Any
    truncated: list[bool]
    original_lengths: list[int]
    segment_names: tuple[str, ...] = ("text", "text_pair")
    seqs: list[TokenSeq] | None = None

    def keep(self, b: int) -> np.ndarray:
        """Positions of real tokens of example ``b`` (whatever the padding side)."""
        return np.flatnonzero(self.mask[b].detach().cpu().numpy())


#: ``Batch.extras`` key of ``--target-label`` (None: the prediction), which classifiers explain.
TARGET_LABEL = "target_label"


@dataclass
class Batch:
    """A prepared batch: examples, their streams, and extras the adapter needs later."""

    examples: list[Example]
    streams: dict[str, Stream]
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Forward:
    """Raw results of the model call(s).

    Attributes:
        attentions: attention kind → tuple of L tensors (B, H, q, k) as the model returned them.
        outputs: the model outputs the adapter reads predictions from.
    """

    attentions: dict[str, Any]
    outputs: Any


@dataclass(frozen=True)
class AttentionLayout:
    """Where an attention kind's queries and keys come from (stream names), whether it is causal, and whether
    query i and key i are the same position (``aligned``: self-attention, or a decoder's targets over its
    shifted inputs), which is what previous/same/next-token shares need."""

    query: str
    key: str
    causal: bool = False
    aligned: bool | None = None  # None: aligned when queries and keys are one sequence

    @property
    def positions_aligned(self) -> bool:
        return self.query == self.key if self.aligned is None else self.aligned


class TaskAdapter(ABC):
    """One task: classify, encode, qa, lm, seq2seq."""

    name: str
    description: str
    required_fields: tuple[str, ...] = ("text",)
    #: The prediction's score is a confidence (low = unsure), so summaries list the least confident first.
    score_is_confidence: bool = True
    line_field: str = "text"

    @abstractmethod
    def matches(self, architecture: str, config: Any) -> bool:
        """Whether this task fits a model with this architecture class name."""

    @abstractmethod
    def load(self, name: str, **kwargs: Any) -> Any:
        """Load the model class this task needs."""

    def prepare_tokenizer(self, tokenizer: Any, model: Any) -> None:
        """Adjust the tokenizer for batching (e.g. give GPT-2 a pad token)."""
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
            model.config.pad_token_id = tokenizer.pad_token_id

    @abstractmethod
    def layout(self, batch: Batch, b: int) -> Mapping[str, AttentionLayout]:
        """Attention kinds captured for example ``b`` and the streams their queries/keys index."""

    @abstractmethod
    def encode(
        self, examples: Sequence[Example], loaded: LoadedModel, max_length: int, generation: GenerationOptions
    ) -> Batch:
        """Tokenise (and, for generative tasks, generate) a batch."""

    @abstractmethod
    def forward(self, model: Any, batch: Batch) -> Forward:
        """Run the model with attention output."""

    @abstractmethod
    def score(self, forward: Forward, batch: Batch) -> Any:
        """(B,) differentiable score each explanation is about (the predicted class logit, or ``batch.extras``'
        ``TARGET_LABEL`` class when given)."""

    def check_target(self, loaded: LoadedModel, target: str) -> None:
        """Refuse a ``--target-label`` this model cannot explain, before the run writes anything.

        Raises:
            UsageError: the task has no classes to pick from (exit 2); classifiers refuse a label they do not have.
        """
        raise UsageError(f"--target-label picks the class a classifier explains; the {self.name} task has no classes")

    def panel(self, example: Example, prediction: Prediction) -> Panel | None:
        """What only this task shows on the page (a template partial and its fields); None: nothing."""
        return None

    def predictor(self, loaded: LoadedModel, capture: Capture) -> Predictor | None:
        """A :class:`attnviz.model.predictor.Predictor` for erasure and attribution checks (None: not offered)."""
        return None

    @abstractmethod
    def interpret(
        self, forward: Forward, batch: Batch, b: int, sequences: Mapping[str, TokenSeq], loaded: LoadedModel
    ) -> tuple[Prediction, ExplainedRows]:
        """Prediction and explained rows of example ``b`` (positions in cut, real-token coordinates)."""


def expected_layers(config: Any, kind: str) -> int | None:
    """How many layers the config says an attention kind has (None when it does not say)."""
    names = {
        "encoder": ("encoder_layers", "num_layers", "num_hidden_layers"),
        "decoder": ("decoder_layers", "num_decoder_layers", "num_layers", "num_hidden_layers"),
        "cross": ("decoder_layers", "num_decoder_layers", "num_layers", "num_hidden_layers"),
    }.get(kind, ("num_hidden_layers", "n_layer", "num_layers"))
    for attr in names:
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    return None


def encode_stream(
    tokenizer: Any,
    texts: Sequence[str],
    pairs: Sequence[str | None] | None,
    max_length: int,
    device: str,
    *,
    truncation: str | bool = True,
    segment_names: tuple[str, ...] = ("text", "text_pair"),
) -> Stream:
    """Tokenise texts (and optional second texts) with padding, truncation and offsets.

    Examples with and without a second text are tokenised apart (a missing pair must not become ``""``, which
    adds a separator) and padded to one width, so a batch gives each example exactly what it gets alone. The
    length before truncation is measured first so truncation can be reported.

    Padding goes on the right whatever side the tokenizer prefers: encoders read their first token (a left-padded
    BERT would classify from ``[PAD]``, RoBERTa would number positions from the padding), causal models never
    see later padding, and generation runs one example at a time with none.
    """
    import torch
    from transformers import BatchEncoding

    firsts = list(texts)
    seconds: list[str | None] = list(pairs) if pairs is not None else [None] * len(firsts)
    groups = [
        g
        for g in ([i for i, p in enumerate(seconds) if p is None], [i for i, p in enumerate(seconds) if p is not None])
        if g
    ]
    options = {"truncation": truncation, "verbose": False}

    def call(group: list[int], **kwargs: Any) -> Any:
        pair = [seconds[i] for i in group] if seconds[group[0]] is not None else None
        return tokenizer([firsts[i] for i in group], pair, **kwargs)

    full = {
        i: len(ids)
        for g in groups
        for i, ids in zip(g, call(g, truncation=False, verbose=False)["input_ids"], strict=True)
    }
    # One group (the usual batch) pads to its own longest; two pad to the longest of both, measured first.
    padding: dict[str, Any] = {"max_length": max_length, "padding": True, "padding_side": "right"}
    if len(groups) > 1:
        width = max(len(ids) for g in groups for ids in call(g, max_length=max_length, **options)["input_ids"])
        padding = {"max_length": width, "padding": "max_length", "padding_side": "right"}
    parts = [
        call(
            g,
            **padding,
            return_tensors="pt",
            return_offsets_mapping=bool(getattr(tokenizer, "is_fast", False)),
            return_special_tokens_mask=True,
            **options,
        )
        for g in groups
    ]
    order = torch.as_tensor([i for g in groups for i in g]).argsort()
    data = {key: torch.cat([part[key] for part in parts])[order] for key in parts[0]}
    encodings = [e for part in parts for e in (part.encodings or [])]
    enc = BatchEncoding(data, encoding=[encodings[i] for i in order.tolist()] if encodings else None)
    lengths = [full[i] for i in range(len(firsts))]
    kept = enc["attention_mask"].sum(dim=1).tolist()
    text_tuples = [(t,) if s is None else (t, s) for t, s in zip(firsts, seconds, strict=True)]
    return Stream(
        input_ids=enc["input_ids"].to(device),
        mask=enc["attention_mask"].to(device),
        texts=text_tuples,
        encoding=enc,
        truncated=[orig > k for orig, k in zip(lengths, kept, strict=True)],
        original_lengths=lengths,
        segment_names=segment_names,
    )


def ids_stream(
    tokenizer: Any,
    sequences: Sequence[Sequence[int]],
    seqs: list[TokenSeq],
    device: str,
    truncated: list[bool] | None = None,
    original_lengths: list[int] | None = None,
) -> Stream:
    """A right-padded stream from token ids (prompt + continuation, decoder inputs), with ready token views."""
    import torch

    width = max(len(ids) for ids in sequences)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for b, ids in enumerate(sequences):
        input_ids[b, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        mask[b, : len(ids)] = 1
    return Stream(
        input_ids=input_ids.to(device),
        mask=mask.to(device),
        texts=[(seq.words and " ".join(seq.words),) for seq in seqs],
        encoding=None,
        truncated=truncated or [False] * len(sequences),
        original_lengths=original_lengths or [len(ids) for ids in sequences],
        seqs=seqs,
    )


def stream_inputs(stream: Stream) -> dict[str, Any]:
    """Model keyword arguments for a (right-padded) stream."""
    inputs = {"input_ids": stream.input_ids, "attention_mask": stream.mask}
    enc = stream.encoding
    if "token_type_ids" in enc:
        inputs["token_type_ids"] = enc["token_type_ids"].to(stream.input_ids.device)
    return inputs


def token_seq(stream: Stream, b: int, tokenizer: Any) -> TokenSeq:
    """The real-token view of example ``b`` of a stream."""
    from attnviz.model.tokens import build_token_seq, seq_from_ids

    if stream.seqs is not None:
        return stream.seqs[b]
    keep = stream.keep(b)
    enc = stream.encoding
    ids = stream.input_ids[b].detach().cpu().tolist()
    pieces = tokenizer.convert_ids_to_tokens([ids[i] for i in keep])
    special_mask = enc["special_tokens_mask"][b].tolist()
    if getattr(tokenizer, "is_fast", False):
        seq_ids = enc.sequence_ids(b)
        word_ids = enc.word_ids(b)
        offsets = [tuple(o) for o in enc["offset_mapping"][b].tolist()]
        special = [special_mask[i] == 1 or seq_ids[i] is None for i in keep]
        seq = build_token_seq(
            pieces,
            special,
            [None if special[j] else seq_ids[i] for j, i in enumerate(keep)],
            [word_ids[i] for i in keep],
            [offsets[i] for i in keep],
            stream.texts[b],
            stream.segment_names,
        )
        return replace(seq, ids=tuple(ids[i] for i in keep))
    # Slow tokenizers give no word ids or offsets: rebuild both by decoding (SentencePiece included).
    return seq_from_ids(tokenizer, [ids[i] for i in keep], len(keep), stream.segment_names)


def one_hot_rows(label: str, position: int, n: int, attention: str) -> ExplainedRows:
    weights = np.zeros((1, n))
    weights[0, position] = 1.0
    return ExplainedRows(labels=(label,), weights=weights, attention=attention)
