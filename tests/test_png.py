"""PNG figures: pixels of hand-made attention, labels, colour bar, --png-layers file names, valid and stable files."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageColor
from scipy import ndimage
from typer.testing import CliRunner

from attnviz.analysis import HeadMetric
from attnviz.api import render_reports
from attnviz.cli import app
from attnviz.config import DEFAULT_PNG_LAYERS, PNG_LAYERS_FORMS, RenderOptions, parse_png_layers
from attnviz.output import png
from attnviz.output.base import MAX_LABEL_CHARS, display_label
from attnviz.output.colors import PALETTE, rgb, text_colour
from attnviz.types import AttentionViews, TokenSeq

LOW, HIGH = ImageColor.getrgb(PALETTE[0]), ImageColor.getrgb(PALETTE[-1])
INK, LIGHT = ImageColor.getrgb(text_colour(0.0)), ImageColor.getrgb(text_colour(1.0))
FRAME, SEGMENT = tuple(png.PALETTE_RGB[png.FRAME]), tuple(png.PALETTE_RGB[png.SEGMENT])


def pixels(data: bytes) -> np.ndarray:
    """(height, width, 3) RGB of a PNG."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def where(image: np.ndarray, colour: tuple[int, ...]) -> np.ndarray:
    return (image == np.array(colour, dtype=np.uint8)).all(axis=-1)


def seq(tokens: list[str], segments: list[int] | None = None) -> TokenSeq:
    n = len(tokens)
    return TokenSeq(
        tokens=tuple(tokens),
        pieces=tuple(tokens),
        special=(False,) * n,
        word_ids=tuple(range(n)),
        words=tuple(tokens),
        segments=tuple(segments or [0] * n),
    )


def top_left(image: np.ndarray, colour: tuple[int, ...]) -> tuple[int, int]:
    """(y, x) of the leftmost, then topmost pixel of a colour: the matrices here have it in their first cell."""
    ys, xs = np.nonzero(where(image, colour))
    x = int(xs.min())
    return int(ys[xs == x].min()), x


def test_heatmap_cells_take_the_shared_colour_scale() -> None:
    matrix = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.25, 0.0, 1.0]])
    image = pixels(png.heatmap(matrix, seq(["a", "b", "c"]), seq(["a", "b", "c"]), "test"))
    y0, x0 = top_left(image, HIGH)
    cell = int(where(image[y0], HIGH)[x0:].argmin())  # the first cell's run of the top colour
    assert cell == png.MAX_CELL  # three tokens: the largest cell
    for (i, j), value in np.ndenumerate(matrix):
        block = image[y0 + i * cell : y0 + (i + 1) * cell, x0 + j * cell : x0 + (j + 1) * cell]
        assert (block == rgb(value)).all(), (i, j)  # one flat colour per cell, the HTML's colour for the level
    assert tuple(image[y0, x0]) == HIGH and tuple(image[y0 + cell, x0]) == LOW  # max: top of palette; 0: bottom


def test_colour_bar_spans_the_scale_with_ticks() -> None:
    matrix = np.array([[0.4, 0.1], [0.0, 0.2]])
    image = pixels(png.heatmap(matrix, seq(["a", "b"]), seq(["a", "b"]), "test"))
    x = int(np.nonzero(where(image, HIGH).any(axis=0))[0].max())  # the bar is right of the cells
    column = image[:, x]
    ink = np.nonzero(where(column[:, None], INK)[:, 0])[0]
    scale = column[ink.min() + 1 : ink.max()]  # inside the frame
    assert len(scale) >= png.MIN_BAR_HEIGHT
    assert tuple(scale[0]) == HIGH and tuple(scale[-1]) == LOW
    assert (np.diff(scale.astype(int).sum(axis=1)) >= 0).all()  # lighter all the way down
    beside = image[ink.min() : ink.max() + 1, x + 1 :]
    assert where(beside, INK).sum() > 50  # tick numbers and the label


def test_segment_start_is_marked_across_the_heatmap() -> None:
    tokens = seq(["q", "q", "c", "c"], segments=[0, 0, 1, 1])
    matrix = np.eye(4)
    image = pixels(png.heatmap(matrix, tokens, tokens, "pair"))
    y0, x0 = top_left(image, HIGH)
    cell = png.MAX_CELL
    assert where(image[y0 + 2 * cell, x0 : x0 + 4 * cell], SEGMENT).all()
    assert where(image[y0 : y0 + 4 * cell, x0 + 2 * cell], SEGMENT).all()
    assert where(image, SEGMENT).sum() == 2 * 4 * cell - 1  # the two lines and nothing else


def test_head_grid_places_every_head_in_order_with_labels() -> None:
    heads = 6
    full = np.zeros((2, heads, 3, 3))
    full[1] = (np.arange(heads) / 10)[:, None, None]  # head h of layer 2 is flat at h/10; the layer's max is 0.5
    att = AttentionViews(kind="self", query="input", key="input", shape=full.shape, full=full)
    tokens = seq(["one", "two", "three"])
    image = pixels(png.head_grid(att, 1, tokens, tokens))
    frames, count = ndimage.label(where(image, FRAME))
    assert count == heads
    boxes = sorted(ndimage.find_objects(frames), key=lambda b: (b[0].start, b[1].start))
    side = 3 * png._cell_size(3, png.HEAD_SIDE) + 2
    assert all(b[0].stop - b[0].start == side and b[1].stop - b[1].start == side for b in boxes)
    rows = [b[0].start for b in boxes]
    cols = [b[1].start for b in boxes]
    assert rows[:4] == [rows[0]] * 4 and rows[4:] == [rows[4]] * 2 and rows[4] > rows[0] + side  # 4 to a row
    assert cols[4:] == cols[:2] and cols[:4] == sorted(cols[:4])
    for h, (ys, xs) in enumerate(boxes):
        centre = image[(ys.start + ys.stop) // 2, (xs.start + xs.stop) // 2]
        assert (centre == rgb(h / 5)).all(), h  # levels are h/10 over the layer's max 0.5
        above = image[ys.start - png._line(png._font(png.TICK_PX)) : ys.start, xs]
        assert where(above, INK).any(), f"no caption over head {h + 1}"
        if xs.start == cols[0]:
            assert where(image[ys, : xs.start], INK).any(), "no token labels left of a row of heads"
    assert where(image[rows[4] + side :, cols[0] : cols[0] + side], INK).any(), "no token labels under the grid"


def test_crowded_token_labels_are_thinned_not_overlapped() -> None:
    n = 200
    tokens = seq([f"w{i}" for i in range(n)])
    image = pixels(png.heatmap(np.eye(n), tokens, tokens, "long"))
    y0, x0 = top_left(image, HIGH)
    strip = where(image[y0 : y0 + n * png._cell_size(n, png.MEAN_SIDE), :x0], INK).any(axis=1)
    runs, count = ndimage.label(strip)
    heights = np.bincount(runs)[1:]
    line = png._line(png._font(png.TICK_PX))
    assert 20 < count < n and heights.max() <= line  # every k-th label, each on its own


def test_long_token_is_shortened_and_keeps_the_image_size() -> None:
    assert display_label("x" * 100) == "x" * (MAX_LABEL_CHARS - 1) + "…"
    assert display_label("a\nb") == "a\\nb" and display_label("короткий") == "короткий"
    matrix = np.full((3, 3), 1 / 3)

    def size(token: str) -> tuple[int, int]:
        tokens = seq(["a", token, "c"])
        return Image.open(io.BytesIO(png.heatmap(matrix, tokens, tokens, "t"))).size

    cut = "y" * MAX_LABEL_CHARS
    assert size(cut + "y") == size(cut + "y" * 100_000) == size(display_label(cut + "y"))


def test_metric_map_writes_values_in_contrasting_text() -> None:
    values = np.array([[0.0, 0.5, 1.0], [0.25, 0.75, np.nan]])
    image = pixels(png.metric_map(HeadMetric("entropy", "entropy", values, "self")))
    width, height = png.METRIC_CELL
    y0, x = top_left(image, HIGH)
    x0 = x - 2 * width  # the top colour is the third cell of the first layer
    for (row, h), value in np.ndenumerate(values):
        block = image[y0 + row * height : y0 + (row + 1) * height, x0 + h * width : x0 + (h + 1) * width]
        assert (block[0, 0] == rgb(np.nan_to_num(value))).all(), (row, h)
        text = LIGHT if value > 0.55 else INK
        glyphs = where(block, text).sum()  # the number (a dash where none), in the HTML's text colour for the level
        assert glyphs > (0 if np.isnan(value) else 10), (row, h)


def test_score_bars_are_proportional_from_zero() -> None:
    values = np.array([1.0, -0.5, 0.25])
    image = pixels(png.score_bars(["good", "bad", "meh"], values, "scores"))
    bars = where(image, tuple(rgb(png.BAR_LEVEL)))
    labels, count = ndimage.label(bars)
    assert count == 3
    spans = sorted((s[0].start, s[1].start, s[1].stop) for s in ndimage.find_objects(labels))
    lengths = [stop - start for _, start, stop in spans]
    unit = png.SCORE_WIDTH / 1.5  # the axis runs from -0.5 to 1
    assert lengths == pytest.approx([unit, 0.5 * unit, 0.25 * unit], abs=2)
    assert spans[1][2] <= spans[0][1] == spans[2][1]  # the negative bar ends where the positive ones start


def test_ticks_are_round_numbers() -> None:
    assert png._ticks(0.0, 0.62) == [0.0, 0.2, 0.4, 0.6]
    assert png._ticks(0.0, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert png._ticks(-0.5, 1.0) == [-0.5, 0.0, 0.5, 1.0]


def test_png_layers_parsing() -> None:
    assert parse_png_layers("last") == "last" and parse_png_layers("all") == "all"
    assert parse_png_layers("2,1,2") == (1, 2) and parse_png_layers(" 3") == (3,)
    for bad in ("0", "first", "1,,2", "-1", ""):
        with pytest.raises(ValueError, match="last, all, or 1-based"):
            parse_png_layers(bad)
    with pytest.raises(ValueError, match="png_layers"):
        RenderOptions(png_layers=(0,))
    assert RenderOptions().png_layers == DEFAULT_PNG_LAYERS == "last"


@pytest.fixture(scope="module")
def rendered(tiny_loaded: Callable, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``rendered(png_layers, tag="")`` → the PNG folder of one example rendered by the 2-layer tiny BERT."""
    cache: dict[tuple[object, str], Path] = {}

    def get(png_layers: object, tag: str = "") -> Path:
        if (png_layers, tag) not in cache:
            out = tmp_path_factory.mktemp("png")
            options = RenderOptions(out_dir=out, methods=("attention",), formats=("png",), png_layers=png_layers)
            render_reports(["the film was a quiet delight"], options, loaded=tiny_loaded("bert-classifier"))
            (cache[png_layers, tag],) = (out / "examples").iterdir()
        return cache[png_layers, tag]

    return get


@pytest.mark.parametrize(
    ("png_layers", "grids"),
    [("last", ["layer2"]), ("all", ["layer1", "layer2"]), ((1,), ["layer1"]), ((1, 2), ["layer1", "layer2"])],
)
def test_png_layers_choose_the_head_grids(rendered: Callable, png_layers: object, grids: list[str]) -> None:
    names = sorted(p.name for p in rendered(png_layers).glob("*.png"))
    others = ["mean_self.png", "scores_attention.png"]  # no head metrics: the heads analysis did not run
    assert names == sorted([*(f"heads_self_{g}.png" for g in grids), *others])


def test_pngs_are_valid_and_the_same_bytes_every_time(rendered: Callable) -> None:
    first, again = rendered("all"), rendered("all", "again")
    for path in first.glob("*.png"):
        Image.open(path).verify()
        assert path.read_bytes() == (again / path.name).read_bytes(), path.name


def test_png_layer_past_the_model_is_refused(tiny_loaded: Callable, tmp_path: Path) -> None:
    options = RenderOptions(out_dir=tmp_path, methods=("attention",), formats=("png",), png_layers=(3,))
    with pytest.raises(ValueError, match="layer 3 asked for, the model has 2 layers"):
        render_reports(["short"], options, loaded=tiny_loaded("bert-classifier"))


@pytest.mark.parametrize("bad", ["0", "first", "1,,2"])
def test_cli_bad_png_layers_is_a_usage_error_listing_the_forms(bad: str) -> None:
    result = CliRunner().invoke(app, ["render", "hello", "--png-layers", bad])
    assert result.exit_code == 2 and PNG_LAYERS_FORMS in " ".join(result.stderr.replace("│", " ").split())


def test_cli_help_states_the_png_layers_default() -> None:
    import typer.main

    command = typer.main.get_command(app).commands["render"]  # type: ignore[attr-defined]
    (option,) = [p for p in command.params if "--png-layers" in p.opts]
    assert PNG_LAYERS_FORMS in option.help and f"Default: {DEFAULT_PNG_LAYERS} " in option.help
