"""PNG figures for one example, drawn with numpy and Pillow.

Each figure is a numpy array of palette indices: the cells come straight from the data through the colour scale
the HTML uses (``colors.normalize`` and ``colors.rgb``), upscaled nearest-neighbour; titles, token labels, colour
bars and axes are drawn once per figure as antialiased text masks from Pillow in DejaVu Sans (the font matplotlib
ships; it covers Latin, Greek and Cyrillic tokens). A new matplotlib figure per head made drawing, not the model,
the cost of a report; one byte per pixel also keeps the files small.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

from attnviz.analysis import HeadMetric
from attnviz.analysis.pipeline import ExampleReport
from attnviz.config import DEFAULT_PNG_LAYERS, PngLayers
from attnviz.errors import UsageError
from attnviz.output.base import DRAWN_VIEWS, display_label, drawable, example_dir, register_renderer
from attnviz.output.colors import normalize, rgb, text_colour
from attnviz.output.folder import replacing
from attnviz.output.summary import RunDocument
from attnviz.types import FULL, HEAD_MEAN, AttentionViews, TokenSeq

GRID_COLUMNS = 4
TITLE_PX, TEXT_PX, TICK_PX = 14, 12, 11  # font sizes
PAD = 10  # margin around the figure and between its parts
TICK = 4  # tick mark length
# Side lengths the cell size is chosen for, and its bounds (pixels per token).
MEAN_SIDE, HEAD_SIDE, MIN_CELL, MAX_CELL = 640, 300, 2, 24
BAR_WIDTH, MIN_BAR_HEIGHT = 14, 160  # colour bar
METRIC_CELL = (44, 22)  # a layer × head cell wide enough for "0.00"
MAX_ANNOTATED_CELLS = 400  # beyond this, values are not written into metric cells
SCORE_ROW, SCORE_WIDTH, MAX_SCORE_HEIGHT = 18, 480, 1800  # score bars: row height, plot width, plot height cap
BAR_LEVEL = 0.75  # score bars take this colour of the scale
# zlib level, measured on a 30-token MiniLM example's default set: 3 draws it in 25 ms at 139 KB, 7 in 43 ms at
# 101 KB (levels 4 and 5 are slower than 3 and no smaller than 5).
PNG_COMPRESSION = 3

# Every figure shares one palette: the colour scale at levels 0, 0.005, ..., 1 (so round levels get their exact
# colour), then shades from white to the HTML's dark text for antialiased text on white, then lines and text.
CELL_LEVELS, INK_SHADES = 201, 16
WHITE = CELL_LEVELS  # shade 0
INK = CELL_LEVELS + INK_SHADES - 1
FRAME, SEGMENT, LIGHT_TEXT = INK + 1, INK + 2, INK + 3
_WHITE_RGB, _INK_RGB = np.array([255.0, 255.0, 255.0]), np.array(ImageColor.getrgb(text_colour(0.0)), dtype=float)
PALETTE_RGB = np.concatenate(
    [
        rgb(np.linspace(0.0, 1.0, CELL_LEVELS)),
        np.round(_WHITE_RGB + (_INK_RGB - _WHITE_RGB) * np.linspace(0.0, 1.0, INK_SHADES)[:, None]),
        [ImageColor.getrgb(c) for c in ("#b0b7c0", "#c55a11", text_colour(1.0))],
    ]
).astype(np.uint8)
TEXT_ON_CELL = {text_colour(0.0): INK, text_colour(1.0): LIGHT_TEXT}
_SHADE_OF_COVERAGE = (WHITE + np.round(np.arange(256) / 255 * (INK_SHADES - 1))).astype(np.uint8)


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib  # only for the path of the DejaVu Sans it ships

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    # Basic layout: the same pixels with or without libraqm installed, and faster.
    return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)


def _line(font: ImageFont.FreeTypeFont) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent


def _text(text: str, font: ImageFont.FreeTypeFont) -> np.ndarray:
    """One line of text as coverage, (line height, width) uint8 with 255 = ink (read-only: it is shared)."""
    return _rendered(text, font.size)


@lru_cache(maxsize=4096)
def _rendered(text: str, size: int) -> np.ndarray:
    # Cell values ("0.12"), layer and head numbers and tokens recur across an example's figures and across
    # examples: each is drawn once.
    font = _font(size)
    mask = Image.new("L", (max(1, math.ceil(font.getlength(text))), _line(font)), 0)
    ImageDraw.Draw(mask).text((0, 0), text, fill=255, font=font)
    drawn = np.asarray(mask)
    drawn.flags.writeable = False
    return drawn


def _label_strip(labels: Sequence[str], cell: int) -> np.ndarray:
    """Labels right-aligned in rows ``cell`` px high, as coverage; every k-th one where they would overlap.

    Row i is centred ``_half_line() + (i + 1/2) · cell`` px from the top: the margin keeps the end labels whole.
    Rotated a quarter turn (``np.rot90``) the same strip labels columns, reading upwards and ending at the cells.
    """
    font, margin = _font(TICK_PX), _half_line()
    step = math.ceil(_line(font) / cell)
    shown = {i: display_label(labels[i]) for i in range(0, len(labels), step)}
    width = PAD + math.ceil(max((font.getlength(s) for s in shown.values()), default=0))
    mask = Image.new("L", (width, cell * len(labels) + 2 * margin), 0)
    draw = ImageDraw.Draw(mask)
    for i, text in shown.items():
        draw.text((width - PAD // 2, margin + i * cell + cell / 2), text, fill=255, font=font, anchor="rm")
    return np.asarray(mask)


def _ink(canvas: np.ndarray, coverage: np.ndarray, x: float, y: float) -> None:
    """Text onto a white part of the canvas, each pixel's coverage picking an ink shade."""
    x, y = round(x), round(y)
    region = canvas[y : y + coverage.shape[0], x : x + coverage.shape[1]]
    covered = coverage > 0
    region[covered] = _SHADE_OF_COVERAGE[coverage[covered]]


def _frame(canvas: np.ndarray, x0: int, y0: int, x1: int, y1: int, colour: int) -> None:
    """A one-pixel rectangle outline with corners (x0, y0) and (x1, y1), both included."""
    canvas[[y0, y1], x0 : x1 + 1] = colour
    canvas[y0 : y1 + 1, [x0, x1]] = colour


def _ticks(low: float, high: float) -> list[float]:
    """About five round values in [low, high], spaced 1, 2, 2.5 or 5 × 10^k apart."""
    if not high > low:
        return [low]
    raw = (high - low) / 4
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def _half_line() -> int:
    """Half a line of tick text: how far a label centred on a position reaches past it."""
    return _line(_font(TICK_PX)) // 2


def _plot_top(height: int, y_name: np.ndarray) -> int:
    """Where a plot starts in its figure body: below the colour bar's top tick text, and low enough for the
    axis name centred beside it."""
    return max(_half_line(), math.ceil((y_name.shape[0] - height) / 2))


def _colour_bar(height: int, top: float, label: str) -> np.ndarray:
    """The colour scale from 0 (bottom) to ``top`` in a frame, round ticks and the label rotated beside it.

    The scale's top row is ``_half_line()`` px below the array's top edge.
    """
    font = _font(TICK_PX)
    name = np.rot90(_text(label, _font(TEXT_PX)))
    height = max(height, MIN_BAR_HEIGHT, name.shape[0])
    ticks = [(value, _text(f"{value:g}", font)) for value in _ticks(0.0, top)]
    text_w = max(t.shape[1] for _, t in ticks)
    y0, right = _half_line(), BAR_WIDTH + 2  # the frame's right edge
    bar = np.full((height + 2 * y0, right + TICK + 2 + text_w + PAD + name.shape[1]), WHITE, dtype=np.uint8)
    bar[y0 : y0 + height, 1 : BAR_WIDTH + 1] = np.rint(np.linspace(CELL_LEVELS - 1, 0, height))[:, None]  # max on top
    _frame(bar, 0, y0 - 1, BAR_WIDTH + 1, y0 + height, INK)
    for value, text in ticks:
        y = y0 + round((1 - value / top) * (height - 1))
        bar[y, right : right + TICK] = INK
        _ink(bar, text, right + TICK + 2, y - text.shape[0] // 2)
    _ink(bar, name, bar.shape[1] - name.shape[1], y0 + (height - name.shape[0]) / 2)
    return bar


def _cells(levels: np.ndarray, width: int, height: int) -> np.ndarray:
    """(r, c) levels in [0, 1] → palette indices of r × c blocks of width × height px."""
    index = np.rint(levels * (CELL_LEVELS - 1)).astype(np.uint8)
    return np.repeat(np.repeat(index, height, axis=0), width, axis=1)


def _segment_lines(canvas: np.ndarray, row_seq: TokenSeq, col_seq: TokenSeq, x0: int, y0: int, cell: int) -> None:
    """Mark where the second segment (text pair, context, continuation) starts."""
    width, height = len(col_seq) * cell, len(row_seq) * cell
    for i in row_seq.segment_starts:
        canvas[y0 + i * cell, x0 : x0 + width] = SEGMENT
    for j in col_seq.segment_starts:
        canvas[y0 : y0 + height, x0 + j * cell] = SEGMENT


def _cell_size(tokens: int, side: int) -> int:
    return max(MIN_CELL, min(MAX_CELL, side // max(tokens, 1)))


def _white(height: int, width: int) -> np.ndarray:
    return np.full((height, width), WHITE, dtype=np.uint8)


def _with_title(title: str, body: np.ndarray) -> bytes:
    """The figure: a title line above the body, a white margin around both, encoded as a palette PNG."""
    text = _text(title, _font(TITLE_PX))
    top = PAD + text.shape[0] + PAD
    width = max(body.shape[1], text.shape[1]) + 2 * PAD
    canvas = _white(top + body.shape[0] + PAD, width)
    _ink(canvas, text, (width - text.shape[1]) / 2, PAD)
    canvas[top : top + body.shape[0], PAD : PAD + body.shape[1]] = body
    image = Image.fromarray(canvas)
    image.putpalette(PALETTE_RGB.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESSION)
    return buffer.getvalue()


def _matrix_figure(
    title: str,
    levels: np.ndarray,
    top: float,
    row_seq: TokenSeq,
    col_seq: TokenSeq,
    cell: int,
    captions: Sequence[str] = (),
) -> bytes:
    """Heatmaps of (t, q, k) levels, up to ``GRID_COLUMNS`` a row, sharing token labels and one colour bar.

    Query tokens label each row of tiles on the left, key tokens the columns along the bottom.
    """
    count, q, k = levels.shape
    ncols = min(GRID_COLUMNS, count)
    nrows = math.ceil(count / ncols)
    tick, text = _font(TICK_PX), _font(TEXT_PX)
    row_strip = _label_strip(row_seq.tokens, cell)
    col_strip = np.rot90(_label_strip(col_seq.tokens, cell))
    y_name = np.rot90(_text("query (attending)", text))
    x_name = _text("key (attended to)", text)
    caption_h = _line(tick) + 2 if captions else 0
    gap = PAD + 2 if count > 1 else 0
    tile_w, tile_h = k * cell, q * cell
    grid_w = ncols * tile_w + (ncols - 1) * gap
    grid_h = nrows * (caption_h + tile_h) + (nrows - 1) * gap
    grid_x, grid_y = y_name.shape[1] + PAD + row_strip.shape[1], _plot_top(grid_h, y_name)
    bar = _colour_bar(grid_h, top, "attention weight")
    bottom = grid_y + grid_h
    names_y = bottom + 1 + col_strip.shape[0] + PAD
    height = max(names_y + x_name.shape[0], grid_y - _half_line() + bar.shape[0], bottom + y_name.shape[0] // 2)
    body = _white(height, grid_x + grid_w + 2 * PAD + bar.shape[1])
    for t in range(count):
        r, c = divmod(t, ncols)
        x, y = grid_x + c * (tile_w + gap), grid_y + r * (caption_h + tile_h + gap) + caption_h
        body[y : y + tile_h, x : x + tile_w] = _cells(levels[t], cell, cell)
        if count > 1:
            _frame(body, x - 1, y - 1, x + tile_w, y + tile_h, FRAME)
        _segment_lines(body, row_seq, col_seq, x, y, cell)
        if captions:
            caption = _text(captions[t], tick)
            _ink(body, caption, x + (tile_w - caption.shape[1]) / 2, y - caption_h)
        if c == 0:
            _ink(body, row_strip, grid_x - row_strip.shape[1], y - _half_line())
    for c in range(ncols):
        _ink(body, col_strip, grid_x + c * (tile_w + gap) - _half_line(), bottom + 1)
    _ink(body, y_name, 0, grid_y + (grid_h - y_name.shape[0]) / 2)
    _ink(body, x_name, grid_x + (grid_w - x_name.shape[1]) / 2, names_y)
    body[grid_y - _half_line() : grid_y - _half_line() + bar.shape[0], -bar.shape[1] :] = bar
    return _with_title(title, body)


def head_grid(att: AttentionViews, layer: int, row_seq: TokenSeq, col_seq: TokenSeq) -> bytes:
    """All heads of one layer as a grid of heatmaps sharing one colour bar (0 to the layer's max)."""
    weights = att.view(FULL)[layer]  # (H, q, k)
    top = float(weights.max()) or 1.0
    return _matrix_figure(
        f"{att.kind} attention, layer {layer + 1} (rows: queries, columns: keys)",
        normalize(weights, top),
        top,
        row_seq,
        col_seq,
        _cell_size(max(weights.shape[1:]), HEAD_SIDE),
        [f"head {h + 1}" for h in range(weights.shape[0])],
    )


def heatmap(matrix: np.ndarray, row_seq: TokenSeq, col_seq: TokenSeq, title: str) -> bytes:
    """One full-size labelled heatmap of a (q, k) matrix (0 to its max)."""
    top = float(matrix.max()) or 1.0
    cell = _cell_size(max(matrix.shape), MEAN_SIDE)
    return _matrix_figure(title, normalize(matrix, top)[None], top, row_seq, col_seq, cell)


def metric_map(metric: HeadMetric) -> bytes:
    """A layer × head map of one head metric, with the values written in the cells when they fit."""
    layers, heads = metric.values.shape
    top = metric.vmax if metric.vmax is not None else float(np.nanmax(metric.values, initial=0.0)) or 1.0
    levels = normalize(metric.values, top)
    annotated = layers * heads <= MAX_ANNOTATED_CELLS
    cell_w, cell_h = METRIC_CELL if annotated else (_cell_size(heads, MEAN_SIDE), _cell_size(layers, MEAN_SIDE))
    tick, text = _font(TICK_PX), _font(TEXT_PX)
    layer_strip = _label_strip([str(i + 1) for i in range(layers)], cell_h)
    y_name = np.rot90(_text("layer", text))
    x_name = _text("head", text)
    map_w, map_h = heads * cell_w, layers * cell_h
    map_x, map_y = y_name.shape[1] + PAD + layer_strip.shape[1], _plot_top(map_h, y_name)
    bar = _colour_bar(map_h, top, metric.label)
    numbers_y = map_y + map_h + TICK
    names_y = numbers_y + _line(tick) + PAD // 2
    height = max(names_y + x_name.shape[0], map_y - _half_line() + bar.shape[0], map_y + map_h + y_name.shape[0] // 2)
    body = _white(height, map_x + map_w + 2 * PAD + bar.shape[1])
    body[map_y : map_y + map_h, map_x : map_x + map_w] = _cells(levels, cell_w, cell_h)
    if annotated:
        for (row, h), value in np.ndenumerate(metric.values):
            number = _text("–" if np.isnan(value) else f"{value:.2f}", tick)
            x = map_x + h * cell_w + (cell_w - number.shape[1]) // 2
            y = map_y + row * cell_h + (cell_h - number.shape[0]) // 2
            # One colour per glyph pixel: an antialiased edge would need a shade of every cell colour.
            region = body[y : y + number.shape[0], x : x + number.shape[1]]
            region[number >= 128] = TEXT_ON_CELL[text_colour(float(levels[row, h]))]
    step = math.ceil((tick.getlength(str(heads)) + 2) / cell_w)  # numbers 2 px apart at least
    for h in range(0, heads, step):
        number = _text(str(h + 1), tick)
        _ink(body, number, map_x + h * cell_w + (cell_w - number.shape[1]) / 2, numbers_y)
    _ink(body, layer_strip, map_x - layer_strip.shape[1], map_y - _half_line())
    _ink(body, y_name, 0, map_y + (map_h - y_name.shape[0]) / 2)
    _ink(body, x_name, map_x + (map_w - x_name.shape[1]) / 2, names_y)
    body[map_y - _half_line() : map_y - _half_line() + bar.shape[0], -bar.shape[1] :] = bar
    return _with_title(f"{metric.label} ({metric.attention} attention)", body)


def score_bars(words: Sequence[str], values: np.ndarray, title: str) -> bytes:
    """Horizontal bar chart of word scores, in text order, on an axis that includes 0."""
    row = max(MIN_CELL, min(SCORE_ROW, MAX_SCORE_HEIGHT // max(len(words), 1)))
    values = np.nan_to_num(values, nan=0.0)  # a missing score draws no bar
    low, high = min(0.0, float(values.min(initial=0.0))), max(0.0, float(values.max(initial=0.0)))
    high = high if high > low else low + 1.0
    tick, text = _font(TICK_PX), _font(TEXT_PX)
    word_strip = _label_strip(words, row)
    x_name = _text("score", text)
    ticks = [(value, _text(f"{value:g}", tick)) for value in _ticks(low, high)]
    reach = max(t.shape[1] for _, t in ticks) // 2 + 1  # the end ticks' numbers reach past the plot
    plot_x, plot_y = max(word_strip.shape[1], reach), _half_line()
    axis_y = plot_y + row * len(words)
    numbers_y = axis_y + TICK + 1
    body = _white(numbers_y + _line(tick) + PAD + x_name.shape[0], plot_x + SCORE_WIDTH + reach)

    def x_of(value: float) -> int:
        return plot_x + round((value - low) / (high - low) * (SCORE_WIDTH - 1))

    colour = round(BAR_LEVEL * (CELL_LEVELS - 1))
    gap = row // 6  # white between neighbouring bars
    for i, value in enumerate(values):
        left, right = sorted((x_of(0.0), x_of(float(value))))
        body[plot_y + i * row + gap : plot_y + (i + 1) * row - gap, left : right + 1] = colour
    body[plot_y:axis_y, x_of(0.0)] = INK
    body[axis_y, plot_x : plot_x + SCORE_WIDTH] = INK
    for value, number in ticks:
        body[axis_y : axis_y + TICK + 1, x_of(value)] = INK
        _ink(body, number, x_of(value) - number.shape[1] / 2, numbers_y)
    _ink(body, word_strip, plot_x - word_strip.shape[1], 0)  # its margin is the plot's
    _ink(body, x_name, plot_x + (SCORE_WIDTH - x_name.shape[1]) / 2, numbers_y + _line(tick) + PAD)
    return _with_title(title, body)


def figure_name(*parts: str) -> str:
    return "_".join(parts) + ".png"


FIGURE_GROUPS = frozenset({"heads", "mean", "metrics", "scores"})
# Head metrics drawn as PNG too; the others are tables on the page and numbers in summary.json.
PNG_METRICS = ("entropy", "special_share", "sink_share")


def grid_layers(selection: PngLayers, num_layers: int) -> list[int]:
    """0-based layers of a model with ``num_layers`` whose head grid is drawn; numbers past it are left out."""
    if selection == "all":
        return list(range(num_layers))
    if selection == "last":
        return [num_layers - 1]
    return [n - 1 for n in selection if n <= num_layers]


def draw_example(
    report: ExampleReport, groups: frozenset[str] = FIGURE_GROUPS, head_layers: PngLayers = DEFAULT_PNG_LAYERS
) -> dict[str, bytes]:
    """The example's figures in the requested groups, by file name (deterministic order).

    Groups: ``heads`` (every head of each layer in ``head_layers``), ``mean`` (last layer, mean of heads,
    labelled), ``metrics`` (layer × head maps), ``scores`` (word-score bars).

    Raises:
        ValueError: ``head_layers`` names a layer that no attention kind of the model has.
    """
    capture = report.capture
    if "heads" in groups and isinstance(head_layers, tuple):
        deepest = max(att.num_layers for att in capture.attentions.values())
        if max(head_layers) > deepest:
            raise UsageError(f"--png-layers: layer {max(head_layers)} asked for, the model has {deepest} layers")
    figures: dict[str, bytes] = {}
    for att in capture.attentions.values():
        rows = capture.sequences[att.query]
        cols = capture.sequences[att.key]
        # Head grids need every head's matrix, captured only for inputs short enough to draw.
        if "heads" in groups and att.full is not None:
            for layer in grid_layers(head_layers, att.num_layers):
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
    for name, data in figures.items():
        with replacing(folder / name) as tmp:
            tmp.write_bytes(data)


class PngRenderer:
    name = "png"
    description = (
        "examples/<id>/*.png: head grids of the --png-layers layers, head-metric maps, score bars, mean heatmap"
    )
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
