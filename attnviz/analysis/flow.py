"""Attention flow (Abnar & Zuidema, ACL 2020): normalised max-flow through the layered attention graph.

Pure numpy + networkx; see ``research/methods.md`` section 2.2. The cost is one max-flow per
(output node, input token) pair, so it is only offered for short inputs (``MAX_FLOW_TOKENS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import networkx as nx
import numpy as np
from networkx.algorithms.flow import build_residual_network, shortest_augmenting_path

from attnviz.analysis.base import AnalysisContext, AnalysisResult, stage_scores
from attnviz.analysis.rollout import residual_augment
from attnviz.types import HEAD_MEAN, Capture, Needs

MAX_FLOW_TOKENS = 64
MAX_FLOW_ROWS = 32
"""Longest input (tokens) attention flow accepts; the cost grows roughly as n⁴."""


def _resolve_rows(rows: Sequence[int] | None, n: int) -> list[int]:
    """Return the sorted, de-duplicated query rows to compute, checking each is in ``[0, n)``."""
    if rows is None:
        return list(range(n))
    resolved = sorted({int(r) for r in rows})
    bad = [r for r in resolved if not 0 <= r < n]
    if bad:
        raise ValueError(f"rows must lie in [0, {n}); got {bad}")
    return resolved


def attention_flow(
    mean_attn: np.ndarray, rows: Sequence[int] | None = None, layers: Sequence[int] | None = None
) -> np.ndarray:
    """Normalised maximum flow from each output node to each input token, after every layer.

    The graph has nodes ``(l, i)`` for ``l = 0..L`` and an edge ``(l, i) → (l-1, j)`` with capacity
    ``Â_l[i, j]``, the residual-augmented head mean (:func:`residual_augment`). For layer ``l``:
    ``F_l[i, j] = maxflow((l, i) → (0, j)) / Σ_j' maxflow((l, i) → (0, j'))``.

    Each pair is its own max-flow problem, as in the reference: the per-pair values are not the
    decomposition of one joint flow (row sums of the raw max-flows exceed 1), so a super-sink
    would give different numbers. For efficiency the graph and its residual network are built once
    per layer and the residual network is reused (reset by networkx) for every pair. The max-flow
    value does not depend on the algorithm; networkx's shortest-augmenting-path is used because it
    was the fastest measured (n = 64, 8 layers, peaked random attention, one row: ~15 s, against
    ~40 s for preflow-push and over 6 min for the reference's Edmonds–Karp). Pass ``rows=[t]`` for
    the explained position; all rows cost n times as much.

    Args:
        mean_attn: (L, n, n) head-mean attention per layer; row = query, column = key.
        rows: query rows to compute in every layer (e.g. ``[t]`` for the explained position);
            ``None`` computes all ``n`` rows.
        layers: 0-based layers whose flows to compute (the graph is still built through them);
            ``None`` computes every layer. Layers not requested are NaN.

    Returns:
        (L, n, n) flow after every layer; each computed row sums to 1, rows not requested are NaN.
        Layer 1 equals layer 1 of attention rollout.

    Raises:
        ValueError: if ``mean_attn`` is not (L, n, n), has negative or non-finite entries, has more
            than ``MAX_FLOW_TOKENS`` tokens, or a requested row is out of range.
    """
    arr = np.asarray(mean_attn, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[-1] > MAX_FLOW_TOKENS:
        raise ValueError(
            f"attention flow is limited to MAX_FLOW_TOKENS={MAX_FLOW_TOKENS} tokens "
            f"(its cost grows as n^4); got {arr.shape[-1]}. Use rollout for longer inputs."
        )
    aug = residual_augment(arr)  # (L, n, n); also validates the shape
    n_layers, n = aug.shape[0], aug.shape[-1]
    wanted = _resolve_rows(rows, n)

    out = np.full((n_layers, n, n), np.nan)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))  # layer-0 nodes (the input tokens) are 0..n-1
    for layer in range(1, n_layers + 1):
        # Node (l, i) is l*n + i; edges point down towards the inputs.
        top, below = layer * n, (layer - 1) * n
        src_idx, dst_idx = np.nonzero(aug[layer - 1])
        graph.add_edges_from(
            (top + int(i), below + int(j), {"capacity": float(aug[layer - 1, i, j])})
            for i, j in zip(src_idx, dst_idx, strict=True)
        )
        if layers is not None and layer - 1 not in layers:
            continue
        residual = build_residual_network(graph, "capacity")
        for i in wanted:
            values = np.array(
                [
                    nx.maximum_flow_value(graph, top + i, j, flow_func=shortest_augmenting_path, residual=residual)
                    for j in range(n)
                ]
            )  # (n,)
            # The diagonal path (l,i) → … → (0,i) has positive capacity (Â_ii > 0), so the sum is > 0.
            out[layer - 1, i] = values / values.sum()
    return out


class Flow:
    """``flow``: normalised max-flow through the layered attention graph, for the explained rows only.

    Opt-in (not in the default set): refused with a message above ``MAX_FLOW_TOKENS`` tokens or when
    the explained rows would need more than ``MAX_FLOW_ROWS`` max-flow sources (mean pooling reads every
    row), and not defined for cross-attention.
    """

    name = "flow"
    description = f"attention flow (Abnar & Zuidema 2020): max-flow on the attention graph; ≤ {MAX_FLOW_TOKENS} tokens"
    needs = Needs(attention=frozenset({HEAD_MEAN}), up_to={HEAD_MEAN: MAX_FLOW_TOKENS}, produces_scores=True)

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult:
        att = capture.main
        n = att.shape[-1]
        rows = np.flatnonzero(capture.explained.weights.sum(axis=0) > 0)
        if att.kind == "cross":
            return _refused("flow is defined on self-attention only; use rollout for encoder-decoders")
        if n > MAX_FLOW_TOKENS:
            return _refused(f"flow refused: {n} tokens is over the limit of {MAX_FLOW_TOKENS} (its cost grows ~n⁴)")
        if len(rows) > MAX_FLOW_ROWS:
            return _refused(f"flow refused: the explanation reads {len(rows)} rows, over the limit of {MAX_FLOW_ROWS}")
        last = att.num_layers - 1  # one layer: flow costs a max-flow per (row, token, layer)
        flows = np.nan_to_num(attention_flow(att.view(HEAD_MEAN), rows=rows.tolist(), layers=[last]))
        scores = stage_scores(
            capture,
            self.name,
            "attention flow",
            np.einsum("rq,sqk->srk", capture.explained.weights, flows[last:]),
            "F[i, j] = maxflow((L, i) → (0, j)) / Σ_j' maxflow, capacities Â = (Ā + I)/2; last layer only",
        )
        scores = replace(scores, stage_labels=(f"layer {last + 1}",))
        return AnalysisResult(name=self.name, token_scores=(scores,))


def _refused(message: str) -> AnalysisResult:
    return AnalysisResult(name="flow", messages=(message,))
