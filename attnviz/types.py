"""Frozen data objects that cross module boundaries.

Shapes use: L layers, H heads, q query positions, k key positions, r explained rows. Everything after the
capture step is plain numpy; nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

INPUT = "input"
SOURCE = "source"
TARGET = "target"


@dataclass(frozen=True)
class Example:
    """One input record.

    Attributes:
        id: user-given id or ``<file>:<line>``.
        source: where it came from, ``<file>:<line>`` (used in error messages).
        fields: text fields by canonical name (``text``, ``text_pair``, ``question``, ``context``,
            ``source``, ``target``) — only those present.
        label: gold label, when the input has one.
        rationale: human evidence as character spans into ``fields["text"]`` or a list of words.
        metadata: every other JSON field, kept as given.
        index: 0-based position in the whole input stream (stable across shards).
    """

    id: str
    source: str
    fields: Mapping[str, str]
    label: str | None = None
    rationale: tuple[Any, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    index: int = 0

    def get(self, name: str) -> str | None:
        return self.fields.get(name)


@dataclass(frozen=True)
class SkippedRecord:
    """An input line left out under ``--on-error skip``, with the reason."""

    source: str
    reason: str
    field: str | None = None
    index: int = 0


@dataclass(frozen=True)
class TokenSeq:
    """The real (unpadded) tokens of one sequence, n of them.

    Attributes:
        tokens: (n,) display text of each token (the text span it covers, or the raw piece).
        pieces: (n,) the tokenizer's own token strings (``##ing``, ``Ġthe``, ``▁the``).
        special: (n,) True for special tokens ([CLS], </s>, padding never appears).
        word_ids: (n,) index into ``words`` for each token; None for special tokens.
        words: (w,) merged words: consecutive tokens with the same tokenizer word id.
        segments: (n,) 0 for the first text, 1 for ``text_pair``/context; special tokens take the
            segment they were placed in.
        offsets: (n,) character span of each token in its segment's text ((0, 0) for special tokens).
        segment_names: what each segment is (``text``, ``text_pair``; ``question``, ``context``; ...).
        ids: (n,) the token ids (used to re-run edited inputs for faithfulness checks).
    """

    tokens: tuple[str, ...]
    pieces: tuple[str, ...]
    special: tuple[bool, ...]
    word_ids: tuple[int | None, ...]
    words: tuple[str, ...]
    segments: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...] = ()
    segment_names: tuple[str, ...] = ("text",)
    ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.tokens)
        for name in ("pieces", "special", "word_ids", "segments"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TokenSeq.{name} has {len(getattr(self, name))} entries, expected {n}")
        if self.offsets and len(self.offsets) != n:
            raise ValueError("TokenSeq.offsets must have one entry per token")
        if self.ids and len(self.ids) != n:
            raise ValueError("TokenSeq.ids must have one entry per token")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def special_mask(self) -> np.ndarray:
        return np.asarray(self.special, dtype=bool)

    @property
    def segment_starts(self) -> list[int]:
        """Positions where a new segment begins (the second text of a pair, the context of a question)."""
        return [i for i in range(1, len(self.segments)) if self.segments[i] != self.segments[i - 1]]


@dataclass(frozen=True)
class AttentionMap:
    """Attention of every layer and head for one attention kind.

    Attributes:
        kind: ``self`` (encoder-only or decoder-only), ``encoder``, ``decoder`` or ``cross``.
        weights: (L, H, q, k) float32 post-softmax probabilities cut to real tokens; rows sum to 1.
        query: name of the query-side sequence in ``Capture.sequences``.
        key: name of the key-side sequence.
        grads: (L, H, q, k) gradient of the explained score w.r.t. ``weights``, when captured.
        causal: row i only sees keys up to i (decoder self-attention).
        value_norms: (L, H, k) ‖f^h(x_j)‖, the norm of each key's value vector after the output
            projection (Kobayashi et al. 2020), when captured.
    """

    kind: str
    weights: np.ndarray
    query: str
    key: str
    grads: np.ndarray | None = None
    causal: bool = False
    value_norms: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.weights.ndim != 4:
            raise ValueError(f"attention weights must be (L, H, q, k), got shape {self.weights.shape}")
        if self.grads is not None and self.grads.shape != self.weights.shape:
            raise ValueError(f"grads shape {self.grads.shape} != weights shape {self.weights.shape}")
        if self.value_norms is not None and self.value_norms.shape != self.weights.shape[:2] + self.weights.shape[3:]:
            raise ValueError(f"value_norms shape {self.value_norms.shape} does not match weights {self.weights.shape}")

    @property
    def num_layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.weights.shape[1])


@dataclass(frozen=True)
class ExplainedRows:
    """Which query rows an explanation is read from, as weights over query positions.

    A one-hot row picks a token ([CLS], the last token, an answer start); a uniform row over real
    tokens matches mean pooling.

    Attributes:
        labels: (r,) what each row explains, e.g. ``[CLS]`` or ``token 7 'cat'``.
        weights: (r, q) non-negative weights over query positions; each row sums to 1.
        attention: the ``AttentionMap.kind`` the rows index into.
    """

    labels: tuple[str, ...]
    weights: np.ndarray
    attention: str

    def __post_init__(self) -> None:
        if self.weights.ndim != 2 or self.weights.shape[0] != len(self.labels):
            raise ValueError(f"explained weights must be (r, q) with r={len(self.labels)}")
        if not np.allclose(self.weights.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError("each explained row's weights must sum to 1")


@dataclass(frozen=True)
class Prediction:
    """What the model predicted, in words.

    Attributes:
        text: the label, answer span or generated text shown to the user.
        score: probability of the predicted label / answer score / similarity, when there is one.
        probabilities: label → probability for classifiers.
        details: task-specific extras (answer span token indices, generated token count, ...).
    """

    text: str
    score: float | None = None
    probabilities: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Capture:
    """Everything the forward (and backward) pass produced for one example; no torch inside.

    Attributes:
        example: the input record.
        task: task adapter name.
        sequences: token sequences by name (``input``; or ``source`` and ``target``).
        attentions: attention maps by kind.
        explained: rows to read token importance from.
        prediction: the model's output.
        truncated: True when the input was cut at ``--max-length``.
        original_length: token count before truncation.
    """

    example: Example
    task: str
    sequences: Mapping[str, TokenSeq]
    attentions: Mapping[str, AttentionMap]
    explained: ExplainedRows
    prediction: Prediction
    truncated: bool = False
    original_length: int = 0

    def __post_init__(self) -> None:
        for att in self.attentions.values():
            q, k = len(self.sequences[att.query]), len(self.sequences[att.key])
            if att.weights.shape[2:] != (q, k):
                raise ValueError(f"{att.kind} attention has shape {att.weights.shape}, expected (L, H, {q}, {k})")
        main = self.attentions[self.explained.attention]
        if self.explained.weights.shape[1] != main.weights.shape[2]:
            raise ValueError("explained rows do not match the query length of their attention")

    @property
    def main(self) -> AttentionMap:
        """The attention the explained rows index into."""
        return self.attentions[self.explained.attention]

    @property
    def key_tokens(self) -> TokenSeq:
        return self.sequences[self.main.key]
