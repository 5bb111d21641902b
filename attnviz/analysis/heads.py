"""``heads``: per-head diagnostics — normalised entropy and the share of attention on special tokens."""

from __future__ import annotations

import numpy as np

from attnviz.analysis.base import AnalysisContext, AnalysisResult, HeadMetric
from attnviz.types import STATS, AttentionViews, Capture, Needs

DIFFUSE_ENTROPY = 0.9  # normalised entropy above this: within 10% of spreading attention uniformly
SINK_SHARE = 0.5  # more than half of a head's attention on special tokens or the first token

#: The head metrics shown, in order: statistic name → (label, how it is computed); then, for two-segment inputs,
#: the cross-segment masses (``CROSS_SEGMENT``), labelled with the example's segment names.
HEAD_METRICS: dict[str, tuple[str, str]] = {
    "entropy": (
        "normalised entropy",
        f"mean over rows of −Σ p ln p / ln(visible keys): 1 = uniform, 0 = one token; "
        f"above {DIFFUSE_ENTROPY} the head is flagged diffuse",
    ),
    "special_share": (
        "attention on special tokens",
        "mean over rows of the attention mass on special tokens ([CLS], [SEP], <s>, …)",
    ),
    "first_token": (
        "attention on the first token",
        "mean over rows of the mass on key 0, where heads with nothing to do park attention",
    ),
    "sink_share": (
        "attention on special or first tokens (sink)",
        f"mean over rows of the mass on special tokens or key 0; above {SINK_SHARE} the head is flagged sink-bound",
    ),
    "previous_token": ("attention on the previous token", "mean over rows of A[i, i−1]"),
    "self_token": ("attention on the same token", "mean over rows of A[i, i]"),
    "next_token": ("attention on the next token", "mean over rows of A[i, i+1]"),
}
CROSS_SEGMENT = ((0, 1), (1, 0))


class HeadDiagnostics:
    """``heads``: what each head does, and which heads say little.

    A head is **diffuse** when its normalised entropy is above ``DIFFUSE_ENTROPY`` and **sink-bound**
    when more than ``SINK_SHARE`` of its attention goes to special tokens or the first token.
    """

    name = "heads"
    description = "per-head entropy, special/first-token (sink) mass, positional shares; diffuse and sink flags"
    needs = Needs(attention=frozenset({STATS}))

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

    def _metrics(self, capture: Capture, att: AttentionViews) -> list[HeadMetric]:
        """One HeadMetric per statistic capture computed for this attention kind, in ``HEAD_METRICS`` order."""
        names = capture.sequences[att.key].segment_names
        shown = dict(HEAD_METRICS)
        for a, b in CROSS_SEGMENT:
            if f"cross_{a}_to_{b}" not in att.stats:  # one-segment inputs have no second name
                continue
            shown[f"cross_{a}_to_{b}"] = (
                f"{names[a]} → {names[b]}",
                f"mean over {names[a]} tokens of the mass on {names[b]} tokens (special tokens left out)",
            )
        return [
            HeadMetric(name=name, label=label, values=att.stats[name], attention=att.kind, note=note)
            for name, (label, note) in shown.items()
            if name in att.stats
        ]


def describe_heads(entropy: np.ndarray, diffuse: np.ndarray, sink: np.ndarray, kind: str) -> str:
    """One plain sentence about the heads of the explained attention."""
    total = entropy.size
    focused = entropy.mean(axis=1).argsort()[:2] + 1
    layers = " and ".join(str(int(layer)) for layer in sorted(focused))
    plural = len(focused) > 1
    sentence = (
        f"{int(diffuse.sum())} of {total} {kind}-attention heads are diffuse (normalised entropy > "
        f"{DIFFUSE_ENTROPY}) and {int(sink.sum())} are sink-bound (> {SINK_SHARE:.0%} of their attention on "
        f"special or first tokens); on average the most focused layer{'s' if plural else ''} "
        f"{'are' if plural else 'is'} {layers}"
    )
    if np.isnan(entropy).all():  # every row had one visible key: no head has an entropy
        return sentence + "."
    layer, head = np.unravel_index(int(np.nanargmin(entropy)), entropy.shape)
    lowest = entropy[layer, head]
    return sentence + f", and the most focused head is layer {layer + 1} head {head + 1} (entropy {lowest:.2f})."
