"""Attention views built from row chunks of attention probabilities (and their gradients), in numpy.

Both capture paths feed this module the same thing, one layer and a block of query rows at a time: the
eager path slices the tensors the model returned, the fast path recomputes the block from q and k. So no
consumer needs the whole (L, H, q, k) tensor unless it asks for the ``FULL`` view, and the formulas of
every view live here once. Statistics are accumulated in float64, as sums over rows divided at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnviz.types import FULL, GRAD_MEAN, HEAD_MEAN, NORM_ROWS, ROWS, STATS, AttentionViews, Needs

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
CHUNK_ELEMENTS = 1 << 22


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


class ViewBuilder:
    """Accumulates the requested views of one attention kind of one example from (layer, row block) pieces.

    Call :meth:`add` for every layer and every block of query rows (in any order), then :meth:`build`.
    """

    def __init__(self, request: ViewRequest) -> None:
        self.request = request
        layers, heads, q, k = request.shape
        wanted = request.needs.attention
        self.self_attention = request.query == request.key
        limit = request.needs.full_max_tokens
        self.omitted: dict[str, str] = {}
        self.full_ok = FULL in wanted and (limit is None or max(q, k) <= limit)
        if FULL in wanted and not self.full_ok:
            self.omitted[FULL] = f"{max(q, k)} tokens is over the limit of {limit} for full matrices"
        main = request.explained is not None
        self.rows = np.zeros((layers, heads, len(request.explained), k)) if main and ROWS in wanted else None
        self.norm_rows = (
            np.zeros((layers, len(request.explained), k))
            if main and NORM_ROWS in wanted and request.value_norms is not None
            else None
        )
        if NORM_ROWS in wanted and main and request.value_norms is None:
            self.omitted[NORM_ROWS] = "value norms are not available for this architecture"
        self.head_mean = np.zeros((layers, q, k), np.float32) if HEAD_MEAN in wanted else None
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
        if self.self_attention:
            names += ["previous_token", "self_token"] + ([] if self.request.causal else ["next_token"])
            if len(set(self.request.segments.tolist())) >= 2:
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
        weighted = None
        if self.request.value_norms is not None and (self.norm_rows is not None or self.stats is not None):
            weighted = _row_normalize(p * self.request.value_norms[layer].astype(np.float64)[:, None, :])
        if self.norm_rows is not None:
            norm_mean = _row_normalize((p * self.request.value_norms[layer].astype(np.float64)[:, None, :]).mean(0))
            self.norm_rows[layer] += w @ norm_mean
        if self.stats is not None:
            self._add_stats(layer, start, p, weighted)

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
    for layer in range(probs.shape[0]):
        builder.add(layer, 0, probs[layer].astype(np.float32), None if grads is None else grads[layer])
    return builder.build()
