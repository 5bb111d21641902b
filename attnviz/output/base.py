"""The renderer interface and registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from attnviz.analysis.pipeline import ExampleReport
from attnviz.errors import OutputError
from attnviz.output.folder import replacing
from attnviz.output.summary import RunDocument
from attnviz.registry import Registry
from attnviz.types import FULL, HEAD_MEAN, AttentionViews, Needs

#: Every head's full matrix is captured, drawn and embedded for inputs up to this many tokens; longer
#: inputs show head means per layer and per-head statistics (the full matrices grow as n²).
HEAD_GRID_MAX_TOKENS = 64

#: Heatmaps (the page's table and the mean PNG) are drawn for inputs up to this many tokens; past it a cell is
#: too small to read and the page would hold n² numbers.
HEATMAP_MAX_TOKENS = 256

#: What pages and figures read from capture: the head mean of every layer, every head where short enough.
DRAWN_VIEWS = Needs(
    attention=frozenset({HEAD_MEAN, FULL}), up_to={HEAD_MEAN: HEATMAP_MAX_TOKENS, FULL: HEAD_GRID_MAX_TOKENS}
)


#: Token labels longer than this are cut with an ellipsis on heatmaps and figures (the full text stays in titles
#: and summary.json), so a label's cost and width do not grow with the token.
MAX_LABEL_CHARS = 24
#: The same for tokens and words in running text on pages (the token rows, top words).
MAX_TEXT_CHARS = 64


def display_label(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """A token as a label: control characters escaped, at most ``limit`` characters."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[: limit + 1])
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def drawable(att: AttentionViews) -> bool:
    """Whether an attention kind is short enough for heatmaps."""
    return max(att.shape[2:]) <= HEATMAP_MAX_TOKENS


class Renderer(Protocol):
    """Writes one output format: per example as the run goes, then once for the whole run.

    ``needs_figures`` names the figure groups (see ``output.png.draw_example``) the pipeline must draw;
    figures are drawn once per example and shared by every renderer. ``needs`` is what it reads from capture.
    """

    name: str
    description: str
    needs_figures: frozenset[str]
    needs: Needs

    def write_example(
        self, report: ExampleReport, figures: Mapping[str, bytes], out: Path, run: Mapping[str, Any]
    ) -> None: ...

    def write_run(self, summary: RunDocument, out: Path) -> None: ...


RENDERERS: Registry[Renderer] = Registry("format")


def register_renderer(renderer: Renderer) -> Renderer:
    return RENDERERS.register(renderer.name)(renderer)


def get_renderer(name: str) -> Renderer:
    return RENDERERS.get(name)


def list_renderers() -> list[str]:
    return RENDERERS.names()


def write_run_files(renderers: Sequence[Renderer], summary: RunDocument, out: Path) -> None:
    """Every renderer's run-level files (index, summary.json, summary.md, dataset maps), for render and merge.

    Raises:
        OutputError: a file cannot be written (exit 5).
    """
    try:
        for renderer in renderers:
            renderer.write_run(summary, out)
    except OSError as err:
        raise OutputError(f"cannot write run files in '{out}': {err}") from None


def example_dir(out: Path, report: ExampleReport) -> Path:
    return out / "examples" / report.page


def write_text(path: Path, text: str) -> None:
    """Write atomically (temp file + rename) so an interrupted run never leaves half a page."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
