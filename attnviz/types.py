"""Frozen data objects that cross module boundaries.

Shapes use: L layers, H heads, q query positions, k key positions, r explained rows. Everything after the
capture step is plain numpy; nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Called as a run goes with how many examples' worth of work is done: the examples written, plus the share of
#: the batch in hand that is analysed (so a float between whole examples; a progress bar shows it, a log rounds it).
OnProgress = Callable[[float], None]

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


#: Attention views: what capture can hand to analyses and renderers instead of whole tensors.
#: Shapes: L layers, H heads, q query and k key positions (real tokens only), r explained rows.
ROWS = "rows"  # (L, H, r, k) per-head attention read at the explained rows: w · A[l, h]
HEAD_MEAN = "head_mean"  # (L, q, k) mean over heads of each layer's attention
STATS = "stats"  # per-head statistics, name → (L, H); see ``attnviz.model.views.STAT_NAMES``
GRAD_MEAN = "grad_mean"  # (L, q, k) mean_h (∂score/∂A ⊙ A)⁺, rule 5 of Chefer et al. 2021 (needs a backward pass)
NORM_ROWS = "norm_rows"  # (L, r, k) w · rownorm(mean_h α^h_ij ‖f^h(x_j)‖), Kobayashi et al. 2020 (needs value norms)
FULL = "full"  # (L, H, q, k) every head's full matrix (and its gradient when one is taken)
# Products through the layers read at the explained rows, built top layer first without any (n, n) product:
ROLLOUT = "rollout_rows"  # (L, r, k) w · Â_l ⋯ Â_1, Â = (mean_h A + I) / rowsum (Abnar & Zuidema 2020)
RELEVANCY = "relevancy_rows"  # (L, r, k) w · ((I + Ā_l) ⋯ (I + Ā_1) − I), Ā the grad_mean maps (Chefer et al. 2021)
VIEWS: tuple[str, ...] = (ROWS, HEAD_MEAN, STATS, GRAD_MEAN, NORM_ROWS, FULL, ROLLOUT, RELEVANCY)
#: Views that need a backward pass of the explained score.
GRADIENT_VIEWS = frozenset({GRAD_MEAN, RELEVANCY})


@dataclass(frozen=True)
class Needs:
    """What an analysis or renderer needs from capture and from other analyses.

    Capture computes the union of every consumer's needs and nothing more.

    Attributes:
        attention: views (from ``VIEWS``) it reads.
        up_to: view → the longest input (tokens) it is wanted for (figures of short inputs); absent: any length.
        value_norms: value-vector norms ‖f^h(x_j)‖ (``NORM_ROWS`` implies them).
        model_reruns: it calls the model again through the task's predictor (faithfulness, agreement).
        reads_scores: it reads the token scores of other analyses, so it runs after those that make them.
        produces_scores: it makes token scores that score-reading analyses should see.
    """

    attention: frozenset[str] = frozenset()
    up_to: Mapping[str, int] = field(default_factory=dict)
    value_norms: bool = False
    model_reruns: bool = False
    reads_scores: bool = False
    produces_scores: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.attention) - set(VIEWS)
        if unknown:
            raise ValueError(f"unknown attention view(s) {sorted(unknown)}; valid: {', '.join(VIEWS)}")

    @property
    def gradients(self) -> bool:
        """Whether a backward pass of the explained score is needed."""
        return bool(self.attention & GRADIENT_VIEWS)

    def wants(self, view: str, tokens: int) -> bool:
        """Whether ``view`` is wanted for an input of this many tokens."""
        return view in self.attention and tokens <= self.up_to.get(view, tokens)

    def union(self, other: Needs) -> Needs:
        """What capture must produce for both: views (a view's length limit is the larger one, and no limit
        wins), value norms and model re-runs. Ordering fields are per analysis and are not combined."""
        limits = {}
        for view in self.attention & other.attention:
            if view in self.up_to and view in other.up_to:
                limits[view] = max(self.up_to[view], other.up_to[view])
        for mine, theirs in ((self, other), (other, self)):
            for view in mine.attention - theirs.attention:
                if view in mine.up_to:
                    limits[view] = mine.up_to[view]
        views = self.attention | other.attention
        return Needs(
            attention=views,
            up_to=limits,
            value_norms=self.value_norms or other.value_norms or NORM_ROWS in views,
            model_reruns=self.model_reruns or other.model_reruns,
        )


@dataclass(frozen=True)
class AttentionViews:
    """The views of one attention kind that capture was asked for; absent views are None.

    Attributes:
        kind: ``self`` (encoder-only or decoder-only), ``encoder``, ``decoder`` or ``cross``.
        query: name of the query-side sequence in ``Capture.sequences``.
        key: name of the key-side sequence.
        shape: (L, H, q, k) of the attention these views were computed from.
        causal: row i only sees keys up to i (decoder self-attention).
        rows: (L, H, r, k) per-head attention at the explained rows (main attention only).
        head_mean: (L, q, k) head mean per layer.
        stats: name → (L, H) per-head statistics.
        grad_mean: (L, q, k) mean_h (∂score/∂A ⊙ A)⁺.
        norm_rows: (L, r, k) norm-weighted attention at the explained rows (main attention only).
        rollout_rows: (L, r, k) rollout after each layer at the explained rows (main self-attention only).
        relevancy_rows: (L, r, k) relevancy ``R − I`` after each layer at the explained rows (main self-attention).
        full: (L, H, q, k) post-softmax probabilities; rows sum to 1.
        full_grads: (L, H, q, k) ∂score/∂A, when ``full`` was asked for and a backward pass ran.
        value_norms: (L, H, k) ‖f^h(x_j)‖, when recorded.
        omitted: view → why it was not produced although asked for (e.g. over a length limit).
    """

    kind: str
    query: str
    key: str
    shape: tuple[int, int, int, int]
    causal: bool = False
    rows: np.ndarray | None = None
    head_mean: np.ndarray | None = None
    stats: Mapping[str, np.ndarray] = field(default_factory=dict)
    grad_mean: np.ndarray | None = None
    norm_rows: np.ndarray | None = None
    rollout_rows: np.ndarray | None = None
    relevancy_rows: np.ndarray | None = None
    full: np.ndarray | None = None
    full_grads: np.ndarray | None = None
    value_norms: np.ndarray | None = None
    omitted: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        layers, heads, q, k = self.shape
        expected = {
            "head_mean": (layers, q, k),
            "grad_mean": (layers, q, k),
            "full": self.shape,
            "full_grads": self.shape,
            "value_norms": (layers, heads, k),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is not None and value.shape != shape:
                raise ValueError(f"{self.kind} attention view {name} has shape {value.shape}, expected {shape}")
        for name, value in self.stats.items():
            if value.shape != (layers, heads):
                raise ValueError(f"{self.kind} statistic {name} has shape {value.shape}, expected {(layers, heads)}")

    @property
    def num_layers(self) -> int:
        return self.shape[0]

    @property
    def num_heads(self) -> int:
        return self.shape[1]

    def view(self, name: str) -> np.ndarray:
        """An array view that must be there (statistics: ``stats``); a clear error names what is missing and why.

        Raises:
            ValueError: the view was not captured, or is not an array view.
        """
        if name == STATS or name not in VIEWS:
            raise ValueError(f"'{name}' is not an array view; valid: {', '.join(v for v in VIEWS if v != STATS)}")
        value = getattr(self, name)
        if value is None:
            why = self.omitted.get(name, "it was not requested from capture (the analysis must declare it in Needs)")
            raise ValueError(f"{self.kind} attention has no '{name}' view: {why}")
        return value


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
class Panel:
    """What only one task shows on an example page, drawn by that task's own template partial.

    Attributes:
        template: the partial in ``templates/`` that draws it (e.g. ``_panel_answer.html.j2``).
        title: the card's heading.
        fields: the untrusted texts and values the partial shows (escaped by the template engine).
    """

    template: str
    title: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Capture:
    """Everything the forward (and backward) pass produced for one example; no torch inside.

    Attributes:
        example: the input record.
        task: task adapter name.
        sequences: token sequences by name (``input``; or ``source`` and ``target``).
        attentions: attention views by kind.
        capture_path: ``fast`` (SDPA forward, views from q and k in row chunks) or ``eager`` (reference).
        panel: the task's own part of the page (answer in context, continuation), when it has one.
        explained: rows to read token importance from.
        prediction: the model's output.
        truncated: True when the input was cut at ``--max-length``.
        original_length: token count before truncation.
    """

    example: Example
    task: str
    sequences: Mapping[str, TokenSeq]
    attentions: Mapping[str, AttentionViews]
    explained: ExplainedRows
    prediction: Prediction
    truncated: bool = False
    original_length: int = 0
    capture_path: str = "eager"
    panel: Panel | None = None

    def __post_init__(self) -> None:
        for att in self.attentions.values():
            q, k = len(self.sequences[att.query]), len(self.sequences[att.key])
            if att.shape[2:] != (q, k):
                raise ValueError(f"{att.kind} attention has shape {att.shape}, expected (L, H, {q}, {k})")
        main = self.attentions[self.explained.attention]
        if self.explained.weights.shape[1] != main.shape[2]:
            raise ValueError("explained rows do not match the query length of their attention")

    @property
    def main(self) -> AttentionViews:
        """The attention the explained rows index into."""
        return self.attentions[self.explained.attention]

    @property
    def key_tokens(self) -> TokenSeq:
        return self.sequences[self.main.key]
