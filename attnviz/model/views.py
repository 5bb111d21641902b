"""Attention views built from row chunks of attention probabilities (and their gradients), in numpy.

Both capture paths feed this module the same thing, one layer and a block of query rows at a time: the
eager path slices the tensors the model returned, the fast path recomputes the block from q and k. So no
consumer needs the whole (L, H, q, k) tensor unless it asks for the ``FULL`` view, and the formulas of
every view live here once. Statistics are accumulated in float64, as sums over rows divided at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnviz.types import (
    FULL,
    GRAD_MEAN,
    HEAD_MEAN,
    NORM_ROWS,
    RELEVANCY,
    ROLLOUT,
    ROWS,
    STATS,
    AttentionViews,
    Needs,
)

#: Per-head statistics the ``STATS`` view can hold, each (L, H), a mean over query rows (labels and formulas:
#: ``attnviz.analysis.heads.HEAD_METRICS``; ``special_share_norm`` only with value norms).
STAT_NAMES: tuple[str, ...] = (
    "entropy",
    "special_share",
    "first_token",
    "sink_share",
    "previous_token",
    "self_token",
    "next_token",
    "cross_0_to_1",
    "cross_1_to_0",
    "special_share_norm",
)

#: Elements of one (H, rows, k) block: bounds the memory of a reduction step whatever the input length.
CHUNK_ELEMENTS = 1 << 20


def chunk_rows(heads: int, keys: int) -> int:
    """How many query rows one block holds."""
    return max(1, CHUNK_ELEMENTS // max(1, heads * keys))


def visible_keys(q: int, k: int, causal: bool) -> np.ndarray:
    """(q,) number of keys each query row can attend to (row i of a causal map sees i + 1 + k − q)."""
    if not causal:
        return np.full(q, k)
    return np.arange(1, q + 1) + (k - q)


@dataclass(frozen=True)
class ViewRequest:
    """What to build for one attention kind of one example.

    Attributes:
        kind, query, key, causal: as in :class:`AttentionViews`.
        shape: (L, H, q, k) over real tokens.
        needs: the union of what consumers asked for.
        special: (k,) True for special key tokens.
        segments: (k,) segment of each key token (self-attention: also of each query row).
        explained: (r, q) explained-row weights, for the main attention; None for the others.
        aligned: query i and key i are the same position (positional shares are defined).
        value_norms: (L, H, k) value-vector norms, when recorded.
    """

    kind: str
    query: str
    key: str
    causal: bool
    shape: tuple[int, int, int, int]
    needs: Needs
    special: np.ndarray
    segments: np.ndarray
    explained: np.ndarray | None = None
    value_norms: np.ndarray | None = None
    aligned: bool = False


class ViewBuilder:
    """Accumulates the requested views of one attention kind of one example from (layer, row block) pieces.

    Call :meth:`add` for every block of query rows of a layer, then :meth:`end_layer`, layer by layer from
    the top layer down (the products of ``ROLLOUT`` and ``RELEVANCY`` are built right to left), then
    :meth:`build`.
    """

    def __init__(self, request: ViewRequest) -> None:
        self.request = request
        layers, heads, q, k = request.shape
        tokens = max(q, k)
        needs = request.needs
        wanted = {view for view in needs.attention if needs.wants(view, tokens)}
        self.omitted = {
            view: f"{tokens} tokens is over the limit of {needs.up_to[view]} for this view"
            for view in needs.attention - wanted
        }
        self.self_attention = request.query == request.key
        self.full_ok = FULL in wanted
        main = request.explained is not None
        square = main and self.self_attention
        # Products through the layers: stage l's vector enters at layer l, then every layer below applies.
        self.rollout = np.zeros((layers, len(request.explained), k)) if square and ROLLOUT in wanted else None
        self.relevancy = np.zeros((layers, len(request.explained), k)) if square and RELEVANCY in wanted else None
        self._next: dict[str, np.ndarray] = {}
        self.rows = np.zeros((layers, heads, len(request.explained), k)) if main and ROWS in wanted else None
        self.norm_rows = (
            np.zeros((layers, len(request.explained), k))
            if main and NORM_ROWS in wanted and request.value_norms is not None
            else None
        )
        if NORM_ROWS in wanted and main and request.value_norms is None:
            self.omitted[NORM_ROWS] = "value norms are not available for this architecture"
        self.head_mean = np.zeros((layers, q, k), np.float32) if HEAD_MEAN in wanted else None
        self._layer = layers
        self.grad_mean = np.zeros((layers, q, k), np.float32) if GRAD_MEAN in wanted else None
        self.full = np.zeros(request.shape, np.float32) if self.full_ok else None
        self.full_grads = np.zeros(request.shape, np.float32) if self.full_ok and GRAD_MEAN in wanted else None
        self.stats = self._stat_sums() if STATS in wanted else None
        self._first = np.zeros(k, dtype=bool)
        self._first[0] = True
        self._visible = visible_keys(q, k, request.causal)

    def _stat_sums(self) -> dict[str, np.ndarray]:
        layers, heads = self.request.shape[:2]
        names = ["entropy", "special_share", "first_token", "sink_share"]
        if self.request.aligned or self.self_attention:
            names += ["previous_token", "self_token"] + ([] if self.request.causal else ["next_token"])
        if self.self_attention and len(set(self.request.segments.tolist())) >= 2:
            names += ["cross_0_to_1", "cross_1_to_0"]
        if self.request.value_norms is not None:
            names.append("special_share_norm")
        return {name: np.zeros((layers, heads)) for name in names}

    def add(self, layer: int, start: int, probs: np.ndarray, grads: np.ndarray | None = None) -> None:
        """One block: ``probs`` (H, c, k) float32 attention of query rows start … start + c − 1 of one layer.

        Args:
            layer: 0-based layer.
            start: first query row of the block.
            probs: (H, c, k) post-softmax probabilities over real tokens.
            grads: (H, c, k) ∂score/∂A for the same block, when a backward pass ran.
        """
        stop = start + probs.shape[1]
        p = probs.astype(np.float64)
        if layer != self._layer:
            self._begin_layer(layer)
        if self.rollout is not None:
            self._rollout_block(layer, start, p.mean(axis=0))
        if self.relevancy is not None:
            if grads is None:
                raise ValueError("the relevancy view needs gradients for every block")
            self._relevancy_block(layer, start, np.clip(grads.astype(np.float64) * p, 0.0, None).mean(axis=0))
        if self.full is not None:
            self.full[layer, :, start:stop] = probs
        if self.full_grads is not None and grads is not None:
            self.full_grads[layer, :, start:stop] = grads
        if self.head_mean is not None:
            self.head_mean[layer, start:stop] = p.mean(axis=0)
        if self.grad_mean is not None:
            if grads is None:
                raise ValueError("the grad_mean view needs gradients for every block")
            self.grad_mean[layer, start:stop] = np.clip(grads.astype(np.float64) * p, 0.0, None).mean(axis=0)
        w = self.request.explained[:, start:stop] if self.request.explained is not None else None
        if self.rows is not None:
            self.rows[layer] += np.einsum("rc,hck->hrk", w, p)
        weighted = None  # (H, c, k) α^h_ij·‖f^h(x_j)‖, rows rescaled per head (for the norm share statistic)
        if self.request.value_norms is not None and (self.norm_rows is not None or self.stats is not None):
            scaled = p * self.request.value_norms[layer].astype(np.float64)[:, None, :]
            weighted = _row_normalize(scaled)
            if self.norm_rows is not None:
                self.norm_rows[layer] += w @ _row_normalize(scaled.mean(0))
        if self.stats is not None:
            self._add_stats(layer, start, p, weighted)

    def _begin_layer(self, layer: int) -> None:
        if layer != self._layer - 1:
            raise ValueError(
                f"blocks must come layer by layer from the top down; got layer {layer} after {self._layer}"
            )
        self._layer = layer
        for name, chain in (("rollout", self.rollout), ("relevancy", self.relevancy)):
            if chain is not None:
                chain[layer] = self.request.explained  # stage `layer` starts here
                self._next[name] = np.zeros_like(chain[layer:])

    def _rollout_block(self, layer: int, start: int, mean: np.ndarray) -> None:
        """Rows start… of Â = (Ā + I) / rowsum(Ā + I) applied to every open stage: v·Â, one block at a time."""
        assert self.rollout is not None
        stop = start + mean.shape[0]
        scaled = self.rollout[layer:, :, start:stop] / (mean.sum(axis=-1) + 1.0)  # (S, r, c)
        out = self._next["rollout"]
        out += scaled @ mean
        out[:, :, start:stop] += scaled  # the identity's rows of this block

    def _relevancy_block(self, layer: int, start: int, cam: np.ndarray) -> None:
        """Rows start… of (I + Ā) applied to every open stage (rule 6 on row vectors)."""
        assert self.relevancy is not None
        stop = start + cam.shape[0]
        block = self.relevancy[layer:, :, start:stop]
        out = self._next["relevancy"]
        out += block @ cam
        out[:, :, start:stop] += block

    def end_layer(self, layer: int) -> None:
        """Every block of ``layer`` has been added: the products move one layer down."""
        for name, chain in (("rollout", self.rollout), ("relevancy", self.relevancy)):
            if chain is not None:
                chain[layer:] = self._next.pop(name)

    def _add_stats(self, layer: int, start: int, p: np.ndarray, norm_weighted: np.ndarray | None) -> None:
        stats, request = self.stats, self.request
        assert stats is not None
        stop = start + p.shape[1]
        visible = self._visible[start:stop]
        useful = visible > 1
        if useful.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                plogp = np.where(p[:, useful] > 0, p[:, useful] * np.log(p[:, useful]), 0.0)
            stats["entropy"][layer] += (-plogp.sum(axis=-1) / np.log(visible[useful])).sum(axis=-1)
        special = request.special
        stats["special_share"][layer] += p[..., special].sum(axis=-1).sum(axis=-1)
        stats["first_token"][layer] += p[..., self._first].sum(axis=-1).sum(axis=-1)
        stats["sink_share"][layer] += p[..., special | self._first].sum(axis=-1).sum(axis=-1)
        rows = np.arange(start, stop)
        for name, offset in (("previous_token", -1), ("self_token", 0), ("next_token", 1)):
            if name in stats:
                ok = (rows + offset >= 0) & (rows + offset < p.shape[-1])
                local = np.flatnonzero(ok)
                stats[name][layer] += p[:, local, rows[ok] + offset].sum(axis=-1)
        if "cross_0_to_1" in stats:
            segments, real = request.segments, ~special
            for a, b in ((0, 1), (1, 0)):
                in_rows = ((segments == a) & real)[start:stop]
                cols = (segments == b) & real
                stats[f"cross_{a}_to_{b}"][layer] += p[:, in_rows][..., cols].sum(axis=-1).sum(axis=-1)
        if "special_share_norm" in stats and norm_weighted is not None:
            stats["special_share_norm"][layer] += norm_weighted[..., special].sum(axis=-1).sum(axis=-1)

    def build(self) -> AttentionViews:
        """The finished views."""
        request = self.request
        return AttentionViews(
            kind=request.kind,
            query=request.query,
            key=request.key,
            shape=request.shape,
            causal=request.causal,
            rows=self.rows,
            head_mean=self.head_mean,
            stats=self._stat_means(),
            grad_mean=self.grad_mean,
            norm_rows=self.norm_rows,
            rollout_rows=self.rollout,
            relevancy_rows=None if self.relevancy is None else self.relevancy - self.request.explained,
            full=self.full,
            full_grads=self.full_grads,
            value_norms=request.value_norms,
            omitted=self.omitted,
        )

    def _stat_means(self) -> dict[str, np.ndarray]:
        if self.stats is None:
            return {}
        q, k = self.request.shape[2:]
        rows = np.arange(q)
        counts = {
            "entropy": int((self._visible > 1).sum()),
            "previous_token": int(((rows - 1 >= 0) & (rows - 1 < k)).sum()),
            "self_token": int((rows < k).sum()),
            "next_token": int((rows + 1 < k).sum()),
        }
        real = ~self.request.special
        for a in (0, 1):
            counts[f"cross_{a}_to_{1 - a}"] = int(((self.request.segments == a) & real)[:q].sum())
        means = {}
        for name, total in self.stats.items():
            count = counts.get(name, q)
            if count:
                means[name] = total / count
            else:  # rows that see one key carry no entropy; an empty segment has no mean
                means[name] = np.zeros_like(total) if name == "entropy" else np.full_like(total, np.nan)
        return means


def _row_normalize(matrices: np.ndarray) -> np.ndarray:
    """Scale each row (last axis) to sum to 1; rows of zeros stay zero."""
    sums = matrices.sum(axis=-1, keepdims=True)
    return np.divide(matrices, sums, out=np.zeros_like(matrices), where=sums > 0)


def views_from_arrays(request: ViewRequest, probs: np.ndarray, grads: np.ndarray | None = None) -> AttentionViews:
    """The views of a whole (L, H, q, k) attention array (and its gradient) already in memory, one block a layer.

    For attention that comes from elsewhere (a saved ``.npz``, a hand-made example); capture itself feeds
    row blocks so that no such array is needed.
    """
    builder = ViewBuilder(request)
    for layer in reversed(range(probs.shape[0])):
        builder.add(layer, 0, probs[layer].astype(np.float32), None if grads is None else grads[layer])
        builder.end_layer(layer)
    return builder.build()
