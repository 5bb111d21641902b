"""PNG figures for one example, drawn with matplotlib's object API (no pyplot state)."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnviz.analysis import HeadMetric
from attnviz.analysis.pipeline import ExampleReport
from attnviz.output.base import DRAWN_VIEWS, drawable, example_dir, register_renderer
from attnviz.output.colors import matplotlib_cmap
from attnviz.output.summary import RunDocument
from attnviz.types import FULL, HEAD_MEAN, AttentionViews, TokenSeq

DPI = 100
MAX_LABELLED_TOKENS = 48  # beyond this, tick labels overlap; axes show positions instead
GRID_COLUMNS = 4


def _figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout=layout)


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


def head_grid(att: AttentionViews, layer: int, row_seq: TokenSeq, col_seq: TokenSeq) -> bytes:
    """All heads of one layer as a grid of heatmaps sharing one colour bar (0 to the layer's max).

    The heads are tiled into one image on one axes: drawing a dozen separate axes per layer made the
    PNG step the slowest part of a run.
    """
    weights = att.view(FULL)
    heads, q, k = weights.shape[1:]
    rows, cols = row_seq.tokens, col_seq.tokens
    ncols = min(GRID_COLUMNS, heads)
    nrows = math.ceil(heads / ncols)
    gap = max(1, round(0.12 * max(q, k)))
    mosaic = np.full((nrows * (q + gap) - gap, ncols * (k + gap) - gap), np.nan)
    for h in range(heads):
        r, c = divmod(h, ncols)
        mosaic[r * (q + gap) : r * (q + gap) + q, c * (k + gap) : c * (k + gap) + k] = weights[layer, h]
    cell = 2.2 if max(q, k) <= 16 else 3.0
    width, height = cell * ncols + 2.4, cell * nrows * q / max(k, 1) + 1.6
    fig = _figure(width, height, layout=None)
    # Fixed margins (inches) for the tick labels; a layout engine would measure every label again.
    fig.subplots_adjust(left=1.0 / width, right=1 - 1.4 / width, bottom=0.9 / height, top=1 - 0.6 / height)
    ax = fig.add_subplot()
    cmap = matplotlib_cmap().with_extremes(bad="white")
    vmax = float(weights[layer].max()) or 1.0
    image = ax.imshow(mosaic, cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    from matplotlib.patches import Rectangle

    for h in range(heads):
        r, c = divmod(h, ncols)
        ax.add_patch(
            Rectangle(
                (c * (k + gap) - 0.5, r * (q + gap) - 0.5),
                k,
                q,
                fill=False,
                linewidth=0.5,
                edgecolor="#b0b7c0",
            )
        )
        _segment_lines(ax, row_seq, col_seq, x0=c * (k + gap), y0=r * (q + gap))
        ax.text(
            c * (k + gap) + (k - 1) / 2,
            r * (q + gap) - 0.6,
            f"head {h + 1}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    # Tokens label the first tile's rows and the bottom-left tile's columns; the others share them.
    labelled = max(q, k) <= 24
    ax.set_yticks(range(q) if labelled else [], list(rows) if labelled else [], fontsize=6, parse_math=False)
    ax.set_xticks(
        range(k) if labelled else [],
        list(cols) if labelled else [],
        fontsize=6,
        rotation=90,
        parse_math=False,
    )
    if labelled and nrows > 1:
        ax.tick_params(axis="x", labelbottom=True)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"{att.kind} attention, layer {layer + 1} (rows: queries, columns: keys)", fontsize=10, pad=14)
    cax = fig.add_axes((1 - 1.1 / width, 0.9 / height, 0.15 / width, 1 - 1.5 / height))
    fig.colorbar(image, cax=cax, label="attention weight")
    return _png(fig)


def _segment_lines(ax: Any, row_seq: TokenSeq, col_seq: TokenSeq, x0: float = 0, y0: float = 0) -> None:
    """Mark where the second segment (text pair, context, continuation) starts."""
    q, k = len(row_seq), len(col_seq)
    for i in row_seq.segment_starts:
        ax.plot([x0 - 0.5, x0 + k - 0.5], [y0 + i - 0.5] * 2, color="#c55a11", linewidth=0.8)
    for j in col_seq.segment_starts:
        ax.plot([x0 + j - 0.5] * 2, [y0 - 0.5, y0 + q - 0.5], color="#c55a11", linewidth=0.8)


def _fixed_axes(width: float, height: float, rows: Sequence[str], cols: Sequence[str]) -> tuple[Any, Any]:
    """A figure whose margins are sized from the longest tick label, plus room for a colour bar.

    Fixed margins instead of a layout engine: measuring every label again made each figure slow.
    """
    char = 0.075  # inches per character of 8 pt text
    left = 0.7 + char * max((len(r) for r in rows), default=1) if len(rows) <= MAX_LABELLED_TOKENS else 0.8
    bottom = 0.7 + char * max((len(c) for c in cols), default=1) if len(cols) <= MAX_LABELLED_TOKENS else 0.8
    top, right = 0.5, 1.4
    fig = _figure(width + left + right, height + bottom + top, layout=None)
    total_w, total_h = width + left + right, height + bottom + top
    fig.subplots_adjust(left=left / total_w, right=1 - right / total_w, bottom=bottom / total_h, top=1 - top / total_h)
    fig.attnviz_colorbar_box = (1 - (right - 0.25) / total_w, bottom / total_h, 0.18 / total_w, height / total_h)
    return fig, fig.add_subplot()


def _colorbar(fig: Any, image: Any, label: str) -> None:
    fig.colorbar(image, cax=fig.add_axes(fig.attnviz_colorbar_box), label=label)


def heatmap(matrix: np.ndarray, row_seq: TokenSeq, col_seq: TokenSeq, title: str) -> bytes:
    """One full-size labelled heatmap."""
    rows, cols = row_seq.tokens, col_seq.tokens
    side = max(4.0, min(14.0, 0.28 * max(len(rows), len(cols)) + 2.0))
    fig, ax = _fixed_axes(side, side, rows, cols)
    image = ax.imshow(
        matrix,
        cmap=matplotlib_cmap(),
        vmin=0.0,
        vmax=float(matrix.max()) or 1.0,
        aspect="auto",
        interpolation="nearest",
    )
    _label_axes(ax, rows, cols)
    _segment_lines(ax, row_seq, col_seq)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title, fontsize=10)
    _colorbar(fig, image, "attention weight")
    return _png(fig)


def metric_map(metric: HeadMetric) -> bytes:
    """A layer × head map of one head metric, with the values written in the cells."""
    layers, heads = metric.values.shape
    fig, ax = _fixed_axes(max(3.0, 0.55 * heads), max(1.5, 0.45 * layers), ["00"], ["00"])
    image = ax.imshow(
        metric.values,
        cmap=matplotlib_cmap(),
        vmin=metric.vmin,
        vmax=metric.vmax,
        aspect="auto",
        interpolation="nearest",
    )
    if heads * layers <= 400:
        for (row, h), value in np.ndenumerate(metric.values):
            ax.text(
                h,
                row,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if value > 0.55 * (metric.vmax or 1.0) else "black",
            )
    ax.set_xticks(range(heads), [str(h + 1) for h in range(heads)], fontsize=7)
    ax.set_yticks(range(layers), [str(i + 1) for i in range(layers)], fontsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"{metric.label} ({metric.attention} attention)", fontsize=10)
    _colorbar(fig, image, metric.label)
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


FIGURE_GROUPS = frozenset({"heads", "mean", "metrics", "scores"})
# Head metrics drawn as PNG too; the others are tables on the page and numbers in summary.json.
PNG_METRICS = ("entropy", "special_share", "sink_share")


def draw_example(report: ExampleReport, groups: frozenset[str] = FIGURE_GROUPS) -> dict[str, bytes]:
    """The example's figures in the requested groups, by file name (deterministic order).

    Groups: ``heads`` (every head of each layer), ``mean`` (last layer, mean of heads, labelled),
    ``metrics`` (layer × head maps), ``scores`` (word-score bars).
    """
    capture = report.capture
    figures: dict[str, bytes] = {}
    for att in capture.attentions.values():
        rows = capture.sequences[att.query]
        cols = capture.sequences[att.key]
        # Head grids need every head's matrix, captured only for inputs short enough to draw.
        for layer in range(att.num_layers if "heads" in groups and att.full is not None else 0):
            figures[figure_name("heads", att.kind, f"layer{layer + 1}")] = head_grid(att, layer, rows, cols)
        last = att.num_layers - 1
        if "mean" in groups and drawable(att):
            figures[figure_name("mean", att.kind)] = heatmap(
                att.view(HEAD_MEAN)[last], rows, cols, f"{att.kind} attention, layer {last + 1}, mean of heads"
            )
    for metric in report.head_metrics if "metrics" in groups else ():
        if metric.name not in PNG_METRICS:
            continue
        figures[figure_name(metric.name, metric.attention)] = metric_map(metric)
    for scores in report.token_scores if "scores" in groups else ():
        seq = capture.sequences[scores.sequence]
        figures[figure_name("scores", scores.method)] = score_bars(
            seq.words,
            report.word_scores(scores),
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
    needs_figures = FIGURE_GROUPS
    needs = DRAWN_VIEWS

    def write_example(
        self, report: ExampleReport, figures: Mapping[str, bytes], out: Path, run: Mapping[str, Any]
    ) -> None:
        write_figures(dict(figures), example_dir(out, report))

    def write_run(self, summary: RunDocument, out: Path) -> None:
        """Dataset maps: mean entropy, special/sink share and diffuse-head frequency per layer × head."""
        figures = {}
        for kind, maps in summary.header["dataset"]["heads"].items():
            for name, grid in maps.items():
                values = np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=np.float64)
                label = f"{name.replace('_', ' ')} (mean over examples)"
                figures[figure_name(name, kind)] = metric_map(HeadMetric(name, label, values, kind))
        if figures:
            write_figures(figures, out / "dataset")


register_renderer(PngRenderer())
