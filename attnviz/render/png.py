"""PNG figures for one example, drawn with matplotlib's object API (no pyplot state)."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnviz.analysis import HeadMetric, TokenScores
from attnviz.data import AttentionMap
from attnviz.render.base import example_dir, register_renderer
from attnviz.render.colors import matplotlib_cmap
from attnviz.report import ExampleReport

DPI = 100
MAX_LABELLED_TOKENS = 48  # beyond this, tick labels overlap; axes show positions instead
GRID_COLUMNS = 4


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing glyphs for exotic tokens are not worth a warning
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _label_axes(ax: Any, rows: Sequence[str], cols: Sequence[str], small: bool = False) -> None:
    size = 6 if small else 8
    if len(cols) <= MAX_LABELLED_TOKENS:
        ax.set_xticks(range(len(cols)), list(cols), rotation=90, fontsize=size, parse_math=False)
    if len(rows) <= MAX_LABELLED_TOKENS:
        ax.set_yticks(range(len(rows)), list(rows), fontsize=size, parse_math=False)


def head_grid(att: AttentionMap, layer: int, rows: Sequence[str], cols: Sequence[str]) -> bytes:
    """All heads of one layer as a grid of heatmaps sharing one colour bar (0 to the layer's max)."""
    heads = att.num_heads
    ncols = min(GRID_COLUMNS, heads)
    nrows = math.ceil(heads / ncols)
    cell = 2.2 if len(cols) <= 16 else 3.0
    fig = _figure(cell * ncols + 1.0, cell * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    weights = att.weights[layer]
    vmax = float(weights.max()) or 1.0
    image = None
    for h in range(nrows * ncols):
        ax = axes[h // ncols][h % ncols]
        if h >= heads:
            ax.set_axis_off()
            continue
        image = ax.imshow(weights[h], cmap=matplotlib_cmap(), vmin=0.0, vmax=vmax, aspect="auto",
                          interpolation="nearest")
        ax.set_title(f"head {h + 1}", fontsize=8)
        if h % ncols == 0 and len(rows) <= 24:
            ax.set_yticks(range(len(rows)), list(rows), fontsize=6, parse_math=False)
        else:
            ax.set_yticks([])
        if h // ncols == nrows - 1 and len(cols) <= 24:
            ax.set_xticks(range(len(cols)), list(cols), rotation=90, fontsize=6, parse_math=False)
        else:
            ax.set_xticks([])
    fig.suptitle(f"{att.kind} attention, layer {layer + 1} (rows: queries, columns: keys)", fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    return _png(fig)


def heatmap(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str) -> bytes:
    """One full-size labelled heatmap."""
    side = max(4.0, min(14.0, 0.28 * max(len(rows), len(cols)) + 2.0))
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap=matplotlib_cmap(), vmin=0.0, vmax=float(matrix.max()) or 1.0,
                      aspect="auto", interpolation="nearest")
    _label_axes(ax, rows, cols)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="attention weight")
    return _png(fig)


def metric_map(metric: HeadMetric) -> bytes:
    """A layer × head map of one head metric, with the values written in the cells."""
    layers, heads = metric.values.shape
    fig = _figure(max(4.0, 0.55 * heads + 2.0), max(2.5, 0.45 * layers + 1.4))
    ax = fig.add_subplot()
    image = ax.imshow(metric.values, cmap=matplotlib_cmap(), vmin=metric.vmin, vmax=metric.vmax,
                      aspect="auto", interpolation="nearest")
    if heads * layers <= 400:
        for (l, h), value in np.ndenumerate(metric.values):
            ax.text(h, l, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if value > 0.55 * (metric.vmax or 1.0) else "black")
    ax.set_xticks(range(heads), [str(h + 1) for h in range(heads)], fontsize=7)
    ax.set_yticks(range(layers), [str(l + 1) for l in range(layers)], fontsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"{metric.label} ({metric.attention} attention)", fontsize=10)
    fig.colorbar(image, ax=ax, label=metric.label)
    return _png(fig)


def score_bars(words: Sequence[str], values: np.ndarray, title: str) -> bytes:
    """Horizontal bar chart of word scores, in text order."""
    height = max(2.0, 0.26 * len(words) + 1.0)
    fig = _figure(6.0, min(height, 20.0))
    ax = fig.add_subplot()
    positions = np.arange(len(words))
    ax.barh(positions, values, color=matplotlib_cmap()(0.75))
    ax.set_yticks(positions, list(words), fontsize=8, parse_math=False)
    ax.invert_yaxis()
    ax.set_xlabel("score")
    ax.set_title(title, fontsize=10)
    return _png(fig)


def figure_name(*parts: str) -> str:
    return "_".join(parts) + ".png"


def draw_example(report: ExampleReport) -> dict[str, bytes]:
    """Every figure for an example, by file name (deterministic order)."""
    capture = report.capture
    figures: dict[str, bytes] = {}
    for att in capture.attentions.values():
        rows = capture.sequences[att.query].tokens
        cols = capture.sequences[att.key].tokens
        for layer in range(att.num_layers):
            figures[figure_name("heads", att.kind, f"layer{layer + 1}")] = head_grid(att, layer, rows, cols)
        last = att.num_layers - 1
        figures[figure_name("mean", att.kind)] = heatmap(
            att.weights[last].mean(axis=0), rows, cols, f"{att.kind} attention, layer {last + 1}, mean of heads"
        )
    for metric in report.head_metrics:
        figures[figure_name(metric.name, metric.attention)] = metric_map(metric)
    for scores in report.token_scores:
        seq = capture.sequences[scores.sequence]
        figures[figure_name("scores", scores.method)] = score_bars(
            seq.words, report.word_scores(scores),
            f"{scores.label}, {scores.stage_labels[scores.default_stage]} (words: {report.word_merge} of pieces)",
        )
    return figures


def write_figures(figures: dict[str, bytes], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in figures.items():
        (folder / name).write_bytes(data)


class PngRenderer:
    name = "png"
    description = "examples/<id>/*.png: head grids per layer, head-metric maps, score bars, mean heatmap"
    needs_figures = True

    def write_example(self, report: ExampleReport, figures: Mapping[str, bytes], out: Path,
                      run: Mapping[str, Any]) -> None:
        write_figures(dict(figures), example_dir(out, report))

    def write_run(self, summary: Mapping[str, Any], out: Path) -> None:
        """Per-example figures only; dataset figures belong to the dataset report."""


register_renderer(PngRenderer())
