"""``heads``: per-head diagnostics — normalised entropy and the share of attention on special tokens."""

from __future__ import annotations

import numpy as np

from attnviz.analysis.base import AnalysisContext, AnalysisResult, HeadMetric
from attnviz.types import AttentionMap, Capture


def visible_keys(q: int, k: int, causal: bool) -> np.ndarray:
    """(q,) number of keys each query row can attend to (row i of a causal map sees i + 1 + k − q)."""
    if not causal:
        return np.full(q, k)
    return np.arange(1, q + 1) + (k - q)


def normalized_entropy(weights: np.ndarray, causal: bool = False) -> np.ndarray:
    """Mean over rows of −Σ p ln p / ln(visible keys); 1 is uniform, 0 is one-hot.

    Rows that can see a single key carry no information and are left out.

    Args:
        weights: (L, H, q, k) attention probabilities.
        causal: whether row i only sees keys up to i.

    Returns:
        (L, H) entropy in [0, 1].
    """
    p = weights.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    row_entropy = -plogp.sum(axis=-1)  # (L, H, q)
    visible = visible_keys(p.shape[2], p.shape[3], causal)
    useful = visible > 1
    if not useful.any():
        return np.zeros(p.shape[:2])
    normed = row_entropy[..., useful] / np.log(visible[useful])
    return normed.mean(axis=-1)


def mass_on(weights: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(L, H, q, k), (k,) bool → (L, H): mean over rows of the attention mass on the marked columns."""
    return weights[..., columns].astype(np.float64).sum(axis=-1).mean(axis=-1)


DIFFUSE_ENTROPY = 0.9  # normalised entropy above this: within 10% of spreading attention uniformly
SINK_SHARE = 0.5  # more than half of a head's attention on special tokens or the first token


def positional_share(weights: np.ndarray, offset: int) -> np.ndarray:
    """(L, H, n, n) → (L, H): mean over rows i (that have one) of A[i, i + offset].

    offset −1 is the previous token, 0 the token itself, +1 the next token.
    """
    n = weights.shape[-1]
    rows = np.arange(max(0, -offset), min(n, n - offset))
    if len(rows) == 0:
        return np.zeros(weights.shape[:2])
    return weights[..., rows, rows + offset].astype(np.float64).mean(axis=-1)


class HeadDiagnostics:
    """``heads``: what each head does, and which heads say little.

    A head is **diffuse** when its normalised entropy is above ``DIFFUSE_ENTROPY`` and **sink-bound**
    when more than ``SINK_SHARE`` of its attention goes to special tokens or the first token.
    """

    name = "heads"
    description = "per-head entropy, special/first-token (sink) mass, positional shares; diffuse and sink flags"
    needs_gradients = False
    requires: tuple[str, ...] = ()

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        metrics: list[HeadMetric] = []
        for att in capture.attentions.values():
            metrics.extend(self._metrics(capture, att))
        main = capture.explained.attention
        by_name = {m.name: m.values for m in metrics if m.attention == main}
        diffuse = by_name["entropy"] > DIFFUSE_ENTROPY
        sink = by_name["sink_share"] > SINK_SHARE
        flags = {
            "diffuse": [(int(layer), int(h)) for layer, h in zip(*np.nonzero(diffuse), strict=True)],
            "sink_bound": [(int(layer), int(h)) for layer, h in zip(*np.nonzero(sink), strict=True)],
        }
        scalars = {"diffuse_head_share": float(diffuse.mean()), "sink_head_share": float(sink.mean())}
        return AnalysisResult(
            name=self.name,
            head_metrics=tuple(metrics),
            scalars=scalars,
            messages=(describe_heads(by_name["entropy"], diffuse, sink, main),),
            flags=flags,
        )

    def _metrics(self, capture: Capture, att: AttentionMap) -> list[HeadMetric]:
        special = capture.sequences[att.key].special_mask
        return [*self._basic(att, special), *self._positional(att), *self._cross_segment(capture, att)]

    def _basic(self, att: AttentionMap, special: np.ndarray) -> list[HeadMetric]:
        first = np.zeros_like(special)
        first[0] = True
        return [
            HeadMetric(
                name="entropy",
                label="normalised entropy",
                values=normalized_entropy(att.weights, att.causal),
                attention=att.kind,
                note=f"mean over rows of −Σ p ln p / ln(visible keys): 1 = uniform, 0 = one token; "
                f"above {DIFFUSE_ENTROPY} the head is flagged diffuse",
            ),
            HeadMetric(
                name="special_share",
                label="attention on special tokens",
                values=mass_on(att.weights, special),
                attention=att.kind,
                note="mean over rows of the attention mass on special tokens ([CLS], [SEP], <s>, …)",
            ),
            HeadMetric(
                name="first_token",
                label="attention on the first token",
                values=mass_on(att.weights, first),
                attention=att.kind,
                note="mean over rows of the mass on key 0, where heads with nothing to do park attention",
            ),
            HeadMetric(
                name="sink_share",
                label="attention on special or first tokens (sink)",
                values=mass_on(att.weights, special | first),
                attention=att.kind,
                note=f"mean over rows of the mass on special tokens or key 0; above {SINK_SHARE} the head is "
                "flagged sink-bound",
            ),
        ]

    def _positional(self, att: AttentionMap) -> list[HeadMetric]:
        if att.query != att.key:
            return []
        names = {
            -1: ("previous_token", "previous token", "A[i, i−1]"),
            0: ("self_token", "same token", "A[i, i]"),
            1: ("next_token", "next token", "A[i, i+1]"),
        }
        return [
            HeadMetric(
                name=name,
                label=f"attention on the {label}",
                values=positional_share(att.weights, offset),
                attention=att.kind,
                note=f"mean over rows of {formula}",
            )
            for offset, (name, label, formula) in names.items()
            if not (att.causal and offset == 1)  # a causal head cannot see the next token
        ]

    def _cross_segment(self, capture: Capture, att: AttentionMap) -> list[HeadMetric]:
        """For two-segment inputs (pairs, question + context): attention mass crossing segments."""
        seq = capture.sequences[att.key]
        if att.query != att.key or len(set(seq.segments)) < 2:
            return []
        segments = np.asarray(seq.segments)
        real = ~seq.special_mask
        names = seq.segment_names
        metrics = []
        for a, b in ((0, 1), (1, 0)):
            rows = (segments == a) & real
            cols = (segments == b) & real
            values = att.weights[:, :, rows][..., cols].astype(np.float64).sum(axis=-1).mean(axis=-1)
            metrics.append(
                HeadMetric(
                    name=f"cross_{a}_to_{b}",
                    label=f"{names[a]} → {names[b]}",
                    values=values,
                    attention=att.kind,
                    note=f"mean over {names[a]} tokens of the mass on {names[b]} tokens (special tokens left out)",
                )
            )
        return metrics


def describe_heads(entropy: np.ndarray, diffuse: np.ndarray, sink: np.ndarray, kind: str) -> str:
    """One plain sentence about the heads of the explained attention."""
    total = entropy.size
    focused = entropy.mean(axis=1).argsort()[:2] + 1
    layers = " and ".join(str(int(layer)) for layer in sorted(focused))
    return (
        f"{int(diffuse.sum())} of {total} {kind}-attention heads are diffuse (normalised entropy > "
        f"{DIFFUSE_ENTROPY}) and {int(sink.sum())} are sink-bound (> {SINK_SHARE:.0%} of their attention on "
        f"special or first tokens); the most focused heads are in layer{'s' if len(focused) > 1 else ''} {layers}."
    )
