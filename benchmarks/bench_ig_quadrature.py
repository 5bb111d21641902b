"""How many gradient rows Integrated Gradients needs for its 1 % delta bound, by quadrature rule (issue 11).

    python benchmarks/bench_ig_quadrature.py --examples 48 --json ig-quadrature.json

On the demo model, for the 24 demo reviews and ``--examples`` review-like benchmark sentences, each example's
IG integrand (per token: (x − b) · ∂F/∂x at b + α (x − b)) is integrated by:

* ``GL m``: Gauss-Legendre with m points on [0, 1], what attnviz runs (m = 32, doubled while the delta is above 1 %);
* ``pilot K/M``: a forward-only scan of F at K + 1 evenly spaced α (the K − 1 inner ones cost a forward each; F at
  0 and 1 are the input and baseline rows attnviz computes anyway), then composite Gauss-Legendre with M points
  in all, at least ``min`` in each of the K pieces and the rest shared in proportion to |ΔF| over the piece.

For each rule: the share of examples whose delta |Σ IG − (F(x) − F(b))| is at most 1 % of |F(x) − F(b)|, and the
per-token error against a 256-point Gauss-Legendre reference, Σ_i |IG_i − ref_i| / |F(x) − F(b)| (median, 90th
percentile), with its cost in gradient rows a example (a forward-only row counted at its measured share of a
gradient row).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_capture import batches_of, print_table, review_texts, write_json, write_jsonl  # noqa: E402

REVIEWS = HERE.parent / "sample_inputs" / "reviews.jsonl"
BOUND = 0.01
REFERENCE_POINTS = 256
ROWS_PER_PASS = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=48, help="benchmark sentences besides the demo reviews")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from attnviz.config import ModelOptions
    from attnviz.inputs import InputSpec, read_inputs
    from attnviz.model.capture import capture_batch, resolve_max_length
    from attnviz.model.loading import load_model
    from attnviz.model.tasks import get_task
    from attnviz.types import Needs

    loaded = load_model(ModelOptions())
    task = get_task(loaded.task)
    data = write_jsonl(Path(tempfile.mkdtemp()) / "sentences.jsonl", review_texts(args.examples, seed=0))
    reviews = len(list(read_inputs([str(REVIEWS)], InputSpec())))
    examples = list(read_inputs([str(REVIEWS), str(data)], InputSpec()))
    max_length = resolve_max_length(loaded, None)
    predictors = [
        task.predictor(loaded, capture)
        for batch in batches_of(examples, 8)
        for capture in capture_batch(loaded, batch, max_length=max_length, needs=Needs(model_reruns=True))
    ]
    paths = [IgPath(p) for p in predictors]
    gradient_share = forward_share(paths)
    for path in paths:
        path.reference = path.integrate(*gauss_legendre(REFERENCE_POINTS, 0.0, 1.0))

    rules: dict[str, Callable[[IgPath], tuple[np.ndarray, float]]] = {
        f"GL {m}": (lambda path, m=m: (path.integrate(*gauss_legendre(m, 0.0, 1.0)), float(m)))
        for m in (16, 24, 32, 48, 64)
    }
    for pieces, points, least in ((4, 20, 2), (8, 20, 1), (8, 24, 2), (8, 32, 2)):
        rules[f"pilot {pieces}/{points}, min {least}"] = lambda path, k=pieces, m=points, low=least: (
            path.integrate(*pilot_nodes(path, k, m, low)),
            m + (k - 1) * gradient_share,
        )
    rows, found = [], {}
    for name, rule in rules.items():
        relative, error, costs = [], [], []
        for path in paths:
            ig, cost = rule(path)
            relative.append(abs(ig.sum() - path.gap) / abs(path.gap))
            error.append(np.abs(ig - path.reference).sum() / abs(path.gap))
            costs.append(cost)
        cost = statistics.mean(costs)
        under = np.asarray(relative) <= BOUND
        found[name] = {"rows": cost, "relative_delta": relative, "token_error": error}
        rows.append(
            [
                name,
                f"{cost:.1f}",
                f"{under[:reviews].mean():.0%}",
                f"{under[reviews:].mean():.0%}",
                f"{max(relative):.2%}",
                f"{statistics.median(error):.2%}",
                f"{np.quantile(error, 0.9):.2%}",
            ]
        )
    print(
        f"demo-sentiment · {reviews} demo reviews + {len(paths) - reviews} sentences · forward row = "
        f"{gradient_share:.2f} gradient row"
    )
    print_table(
        [
            "rule",
            "gradient rows",
            "≤ 1 % (reviews)",
            "≤ 1 % (sentences)",
            "worst delta",
            "token error median",
            "token error p90",
        ],
        rows,
        [False, True, True, True, True, True, True],
    )
    write_json(args.json, {"forward_share": gradient_share, "rules": found})


class IgPath:
    """One example's straight path from its IG baseline b to its input x, in input embeddings."""

    def __init__(self, predictor: Any) -> None:
        import torch

        self.predictor = predictor
        with torch.no_grad():
            ids = torch.tensor([predictor.ids, predictor.baseline_ids], device=predictor.device)
            self.inputs, self.baseline = predictor.embed(ids)
        scores = self.scores([0.0, 1.0])
        self.gap = float(scores[1] - scores[0])
        self.reference = np.zeros(len(predictor.ids))

    def _run(self, alphas: Sequence[float]) -> tuple[Any, Any]:
        import torch

        p = self.predictor
        embeds = torch.stack([self.baseline + a * (self.inputs - self.baseline) for a in alphas])
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        every = [np.arange(embeds.shape[1])] * len(alphas)
        outputs = p.run_model(
            "inputs_embeds", embeds.requires_grad_(torch.is_grad_enabled()), mask, [p.segments] * len(alphas)
        )
        return p.read(outputs, torch.arange(len(alphas), device=embeds.device), mask, every).float(), embeds

    def scores(self, alphas: Sequence[float]) -> np.ndarray:
        """F at each α, forward only."""
        import torch

        with torch.inference_mode():
            return self._run(alphas)[0].double().cpu().numpy()

    def integrand(self, alphas: Sequence[float]) -> np.ndarray:
        """(A, n): per token, (x − b) · ∂F/∂x at each α."""
        import torch

        with torch.enable_grad():
            scores, embeds = self._run(alphas)
            (gradient,) = torch.autograd.grad(scores.sum(), embeds)
        return (gradient * (self.inputs - self.baseline)).sum(-1).double().cpu().numpy()

    def integrate(self, alphas: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(n,) Σ_s w_s · integrand(α_s)."""
        total = np.zeros(len(self.predictor.ids))
        for start in range(0, len(alphas), ROWS_PER_PASS):
            chunk = slice(start, start + ROWS_PER_PASS)
            total += weights[chunk] @ self.integrand(alphas[chunk].tolist())
        return total


def gauss_legendre(points: int, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(points)
    return low + (high - low) * (1 + nodes) / 2, weights * (high - low) / 2


def pilot_nodes(path: IgPath, pieces: int, points: int, least: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes placed where a forward-only scan of F sees it change."""
    edges = np.linspace(0.0, 1.0, pieces + 1)
    change = np.abs(np.diff(path.scores(edges.tolist())))
    share = change / change.sum() if change.sum() > 0 else np.full(pieces, 1 / pieces)
    spare = points - least * pieces
    counts = least + np.floor(share * spare).astype(int)
    leftover = share * spare - np.floor(share * spare)
    counts[np.argsort(-leftover)[: points - counts.sum()]] += 1
    parts = [gauss_legendre(int(c), lo, hi) for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True) if c]
    return np.concatenate([a for a, _ in parts]), np.concatenate([w for _, w in parts])


def forward_share(paths: Sequence[IgPath]) -> float:
    """Time of a forward-only row as a share of a gradient row (32 rows each, first 24 examples, after a warm-up)."""
    alphas = gauss_legendre(32, 0.0, 1.0)[0].tolist()
    paths[0].integrand(alphas)
    gradient = forward = 0.0
    for path in paths[:24]:
        start = time.perf_counter()
        path.integrand(alphas)
        middle = time.perf_counter()
        path.scores(alphas)
        gradient, forward = gradient + middle - start, forward + time.perf_counter() - middle
    return forward / gradient


if __name__ == "__main__":
    main()
