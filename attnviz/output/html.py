"""HTML pages from Jinja templates (autoescape on): one page per example and the run index."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup

from attnviz.analysis import TokenScores
from attnviz.analysis.faithfulness import DEFAULT_BINS
from attnviz.analysis.pipeline import ExampleReport
from attnviz.analysis.words import merge_to_words
from attnviz.output.base import (
    DRAWN_VIEWS,
    HEAD_GRID_MAX_TOKENS,
    HEATMAP_MAX_TOKENS,
    MAX_TEXT_CHARS,
    display_label,
    drawable,
    register_renderer,
    write_text,
)
from attnviz.output.colors import PALETTE, hex_colour, level_classes, normalize, rgb, text_colour
from attnviz.output.summary import RunDocument
from attnviz.types import FULL, HEAD_MEAN, AttentionViews, TokenSeq

# Quantisation of the matrices the page's script draws: head means to 256 levels, single heads to 16.
MEAN_LEVELS, HEAD_LEVELS = 255, 15
# The script sources are filled in per page (hashes of its own inline scripts); nothing else may run, and with no
# 'unsafe-inline' in script-src neither inline handlers nor javascript: URLs run either. style-src keeps
# 'unsafe-inline' because heatmap cells and legends carry their colour in style="" attributes, which a hash or a
# nonce cannot allow (styles cannot run code or, with default-src 'none', load anything).
CSP_SCRIPTS = "attnviz-script-hashes"
CSP = (
    f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {CSP_SCRIPTS}; "
    "base-uri 'none'; form-action 'none'"
)


def templates_dir() -> Path:
    """The templates shipped in the wheel (``attnviz/templates``) or, in a source checkout, ``templates/``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "example.html.j2").is_file():
            return candidate
    raise FileNotFoundError(f"attnviz templates not found next to {here}")


@lru_cache(maxsize=1)
def environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    # autoescape=True (not select_autoescape): our templates end in .html.j2, which it would skip.
    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(csp=CSP, palette=PALETTE)
    env.globals["static"] = static_text
    env.filters["heat"] = lambda v: hex_colour(float(v or 0.0))
    env.filters["heat_text"] = lambda v: text_colour(float(v or 0.0))
    env.filters["shown"] = _shown
    # A value as the JSON it was read from (true, null, nested objects), as text for autoescape: tojson's output is
    # for script blocks, with < written \u003c.
    env.filters["json_text"] = lambda value: (
        value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    )
    env.filters["fmt"] = lambda value, digits=3: "–" if value is None or value != value else f"{value:.{digits}f}"
    # Scores whose scale is the method's own (relevancy's can all be under 0.001): significant digits, not decimals.
    env.filters["sig"] = lambda value, digits=3: "–" if value is None or value != value else f"{value:.{digits}g}"
    return env


@cache
def static_text(name: str) -> Markup:
    """A stylesheet or script template (no data in it), rendered and compacted once per process.

    Every page carries its own copy, so it is kept small; it is ours, not data, hence ``Markup``.
    """
    text = environment().get_template(name).render()
    return Markup(compact_css(text) if name.endswith(".css.j2") else compact_js(text))


def compact_css(text: str) -> str:
    """A stylesheet without comments and runs of whitespace (every page carries its own copy)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"\s*([{};:,>])\s*", r"\1", re.sub(r"\s+", " ", text)).strip()


def compact_js(text: str) -> str:
    """A script without its indentation and whole-line comments (our scripts only: no line starts inside a string)."""
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//"))


def render_template(name: str, **context: Any) -> str:
    """Render a page; its Content-Security-Policy allows exactly the inline scripts it holds, by hash."""
    page = str(environment().get_template(name).render(**context))
    return page.replace(CSP_SCRIPTS, script_sources(script_hashes(page)), 1)


def script_hashes(page: str) -> set[str]:
    """CSP hash sources of a page's inline scripts.

    Executable scripts come only from our templates: data reaches a page autoescaped (``<`` → ``&lt;``) or
    inside JSON blocks (``<`` → ``\u003c``), so every ``<script>`` tag (without attributes) is one we wrote.
    """
    return {script_hash(code) for code in re.findall(r"<script>(.*?)</script>", page, flags=re.S)}


def script_hash(code: str) -> str:
    """The CSP hash source that allows exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"


def script_sources(hashes: set[str]) -> str:
    """The ``script-src`` sources for these hashes (none: no script may run)."""
    return " ".join(sorted(hashes)) or "'none'"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cells(values: np.ndarray, vmax: float | None, digits: int) -> list[dict[str, Any]]:
    """Values with the palette class of their level (colours live in the stylesheet, not on every cell) and as
    text with ``digits`` decimals (formatted here: a page holds hundreds of them)."""
    values = np.asarray(values, dtype=np.float64)
    classes = level_classes(normalize(values, vmax))
    return [
        {"value": v, "cls": c, "text": "–" if v != v else f"{v:.{digits}f}"}
        for v, c in zip(values.tolist(), classes, strict=True)
    ]


def word_units(report: ExampleReport, seq: TokenSeq, scores: TokenScores) -> list[dict[str, Any]]:
    """The shaded words of one method at its default stage (sub-words merged; special tokens as they are).

    The page's script builds the token view from the same numbers; with scripts off the words are shown.
    """
    word_cells = _cells(report.word_scores(scores), None, 4)
    token_values = scores.at()
    units, seen = [], set()
    for i, text in enumerate(seq.tokens):
        w = seq.word_ids[i]
        if w is None:
            value = float(token_values[i])
            units.append(
                {
                    "text": _shown(text),
                    "special": True,
                    "segment": seq.segments[i],
                    "title": _titled(text, f"{value:.4f}"),
                }
            )
        elif w not in seen:
            seen.add(w)
            cell = word_cells[w]
            units.append(
                {
                    "text": _shown(seq.words[w]),
                    "special": False,
                    "segment": seq.segments[i],
                    "cls": cell["cls"],
                    "title": _titled(seq.words[w], cell["text"]),
                }
            )
    return units


def _shown(text: str) -> str:
    """A token or word as the page shows it in running text: cut at ``MAX_TEXT_CHARS`` so its cost is bounded."""
    return display_label(text, MAX_TEXT_CHARS)


def _titled(text: str, score: str) -> str:
    """The hover text of a unit: its score, and the full text when the page shows it cut."""
    return score if _shown(text) == text else f"{text} · {score}"


def _rounded(values: np.ndarray) -> list[float]:
    """Scores for the page's script: 3 significant digits are more than a colour shows (summary.json has 6).

    ``round(v · 10^e) / 10^e`` with integer operands is the double nearest the decimal, so JSON prints it short.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float64))
    scale = 10.0 ** (2 - np.floor(np.log10(np.where(v == 0, 1.0, np.abs(v)))))
    return (np.round(v * scale) / scale).tolist()


def _special_mass(values: np.ndarray, seq: TokenSeq) -> float | None:
    """Share of a score row held by special tokens (reported when they are hidden)."""
    total = float(np.abs(values).sum())
    return float(np.abs(values[seq.special_mask]).sum()) / total if total > 0 else None


def method_views(report: ExampleReport) -> list[dict[str, Any]]:
    """Per method: the default-stage view for the page, and every stage's levels for the script."""
    views = []
    for scores in report.token_scores:
        seq = report.capture.sequences[scores.sequence]
        # Values only: the script normalises them as the page does (tokens by the largest non-special one).
        tokens = scores.values.mean(axis=1)  # (S, k): each stage's scores, explained rows averaged (``at``)
        words = merge_to_words(tokens, seq, report.word_merge)  # (S, w), every stage in one pass
        stages = [{"tokens": _rounded(t), "words": _rounded(w)} for t, w in zip(tokens, words, strict=True)]
        views.append(
            {
                "method": scores.method,
                "label": scores.label,
                "note": scores.note,
                "stage_labels": list(scores.stage_labels),
                "default_stage": scores.default_stage,
                "sequence": scores.sequence,
                "units": word_units(report, seq, scores),
                "top": report.top_words(scores, 5),
                "special_mass": _special_mass(scores.at(), seq),
                "below_random": (report.scalars.get(f"comprehensiveness_margin.{scores.method}") or 1.0) <= 0,
                "rows": report.row_views(scores),
                "stages": stages,
            }
        )
    return views


TRUST_COLUMNS = (
    ("comprehensiveness", "comprehensiveness ↑"),
    ("sufficiency", "sufficiency ↓"),
    ("comprehensiveness_margin", "margin over random ↑"),
    ("agreement_ig", "τ vs IG"),
    ("agreement_ixg", "τ vs I×G"),
    ("plausibility_f1", "rationale F1"),
    ("auprc", "rationale AUPRC (average precision)"),
)


def trust_panel(report: ExampleReport) -> dict[str, Any] | None:
    """Per method: faithfulness, its margin over random orders, agreement and plausibility."""
    scalars = report.scalars
    if not any(key.startswith(("comprehensiveness.", "agreement_ig.")) for key in scalars):
        return None
    rows = []
    for scores in report.token_scores:
        values = {name: scalars.get(f"{name}.{scores.method}") for name, _ in TRUST_COLUMNS}
        margin = values["comprehensiveness_margin"]
        rows.append(
            {
                "method": scores.method,
                "label": scores.label,
                "cells": values,
                "below_random": margin is not None and margin <= 0,
            }
        )
    columns = [(name, label) for name, label in TRUST_COLUMNS if any(r["cells"][name] is not None for r in rows)]
    return {
        "columns": columns,
        "rows": rows,
        "random": {
            "comprehensiveness": scalars.get("random_comprehensiveness"),
            "sufficiency": scalars.get("random_sufficiency"),
        },
        "full_score": scalars.get("full_score"),
        "calls": scalars.get("erasure_model_calls"),
        "ig_delta": scalars.get("ig_delta"),
        "random_orders": scalars.get("random_orders"),
        "bins": [f"{100 * b:g}" for b in DEFAULT_BINS],
        "ig_total": scalars.get("ig_total"),
    }


def heatmap(att: AttentionViews, rows: TokenSeq, cols: TokenSeq) -> dict[str, Any]:
    """The labelled heatmap of one attention kind: token labels as text, a static 1-pixel-per-cell image of the
    last layer's head mean (what shows with scripts off), and the numbers the script draws every layer and
    head from."""
    last = att.num_layers - 1
    return {
        "rows": [display_label(t) for t in rows.tokens],
        "cols": [display_label(t) for t in cols.tokens],
        "row_titles": list(rows.tokens),
        "col_titles": list(cols.tokens),
        "row_breaks": rows.segment_starts,
        "col_breaks": cols.segment_starts,
        "layer": last,
        "cell": cell_pixels(max(att.shape[2:])),
        "static": data_uri(pixel_png(normalize(att.view(HEAD_MEAN)[last]))),
        "payload": attention_payload(att),
    }


def cell_pixels(tokens: int) -> int:
    """Cell size of a heatmap so that it fits about 640 px, between 3 and 18 px."""
    return max(3, min(18, 640 // max(tokens, 1)))


def pixel_png(levels: np.ndarray) -> bytes:
    """An image with one pixel per cell in the shared palette (the page scales it with ``image-rendering``)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb(levels), mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def attention_payload(att: AttentionViews) -> dict[str, Any]:
    """Every layer's head mean (256 levels) and, for short inputs, every head (16 levels), quantised per cell.

    Each matrix is scaled by its own maximum (value = level / levels · scale), packed once and deflated:
    16 levels are more than the palette's 10 colours show, and keep every head of a 30-token MiniLM page
    to about 17 KB.
    """
    packed = {
        "mean": _quantised(att.view(HEAD_MEAN)[:, None], MEAN_LEVELS),
        "heads": None if att.full is None else _quantised(att.full, HEAD_LEVELS),
    }
    q, k = att.shape[2:]
    return {"kind": att.kind, "num_layers": att.num_layers, "num_heads": att.num_heads, "q": q, "k": k, **packed}


def _quantised(matrices: np.ndarray, levels: int) -> dict[str, Any]:
    """(L, H, q, k) → per-matrix scales and the base64 of the deflated cells, one byte each (layer, head, row,
    column), in ``levels`` steps of the matrix's maximum."""
    import zlib

    values = np.asarray(matrices, dtype=np.float64)
    scale = values.max(axis=(2, 3))  # (L, H)
    safe = np.where(scale > 0, scale, 1.0)[:, :, None, None]
    cells = np.clip(np.round(values / safe * levels), 0, levels).astype(np.uint8)
    return {
        "levels": levels,
        "scale": [[float(f"{v:.6g}") for v in row] for row in scale],
        # zlib level 4: measured on 30 tokens, a quarter of level 6's time for 9 % more bytes.
        "data": base64.b64encode(zlib.compress(cells.tobytes(), 4)).decode("ascii"),
    }


def view_limits(att: AttentionViews) -> list[str]:
    """Plain sentences for what the page leaves out of a long input, and why."""
    notes = []
    if not drawable(att):
        notes.append(
            f"The heatmap is drawn for inputs up to {HEATMAP_MAX_TOKENS} tokens; this one has {max(att.shape[2:])}. "
            "The token scores and the per-head tables above cover every token."
        )
    if FULL in att.omitted:
        notes.append(
            f"Every head's own matrix is drawn for inputs up to {HEAD_GRID_MAX_TOKENS} tokens: {att.omitted[FULL]}."
        )
    return notes


def _rows_of(items: list[Any], width: int) -> list[list[Any]]:
    return [items[i : i + width] for i in range(0, len(items), width)]


def metric_tables(report: ExampleReport, kind: str) -> list[dict[str, Any]]:
    return [
        {
            "name": metric.name,
            "label": metric.label,
            "note": metric.note,
            "rows": _rows_of(_cells(metric.values.ravel(), metric.vmax, 2), metric.values.shape[1]),
            "heads": metric.values.shape[1],
        }
        for metric in report.head_metrics
        if metric.attention == kind
    ]


def example_page(report: ExampleReport, run: Mapping[str, Any]) -> str:
    """Render ``examples/<page>.html``: no image but the small static heatmaps; the script draws the rest."""
    capture = report.capture
    attentions = []
    # The attention the explanation is read from comes first (cross-attention for seq2seq).
    ordered = sorted(capture.attentions.values(), key=lambda a: a.kind != capture.explained.attention)
    for att in ordered:
        attentions.append(
            {
                "kind": att.kind,
                "layers": att.num_layers,
                "heads": att.num_heads,
                "query": att.query,
                "key": att.key,
                "causal": att.causal,
                "heatmap": heatmap(att, capture.sequences[att.query], capture.sequences[att.key])
                if drawable(att)
                else None,
                "limits": view_limits(att),
                "metrics": metric_tables(report, att.kind),
            }
        )
    prediction = capture.prediction
    return render_template(
        "example.html.j2",
        run=run,
        example=capture.example,
        task=capture.task,
        prediction=prediction,
        probabilities=sorted(prediction.probabilities.items(), key=lambda kv: -kv[1]),
        explained=capture.explained.labels,
        panel=capture.panel,
        trust=trust_panel(report),
        messages=report.messages,
        correlations=report.method_correlations(),
        flags=report.flags,
        truncated=capture.truncated,
        original_length=capture.original_length,
        lengths={name: len(seq) for name, seq in capture.sequences.items()},
        methods=method_views(report),
        # What the script needs to draw the token views: each scored sequence's tokens and their kinds.
        sequences={
            name: {
                "tokens": [_shown(t) for t in seq.tokens],
                "special": list(seq.special),
                "segments": list(seq.segments),
            }
            for name, seq in capture.sequences.items()
            if any(ts.sequence == name for ts in report.token_scores)
        },
        attentions=attentions,
        word_merge=report.word_merge,
        special_count=sum(sum(seq.special) for seq in capture.sequences.values()),
    )


# The index writes this many example rows as HTML (what a reader sees with scripts off); its script pages,
# sorts and filters all rows from one JSON block (``INDEX_FIELDS`` per row, in this order).
INDEX_PAGE_ROWS = 100
INDEX_FIELDS = (
    "index",
    "id",
    "page",
    "prediction",
    "score",
    "label",
    "correct",
    "top_words",
    "mean_entropy",
    "special_share",
    "margin",
    "truncated",
    "original_length",
)


def _index_href(page: Any) -> str:
    """A row's link, or ``""``: only relative paths (a merged or hand-edited summary could carry ``javascript:``)."""
    from urllib.parse import urlsplit

    text = str(page or "")
    parts = urlsplit(text)
    return "" if parts.scheme or parts.netloc or text.startswith(("/", "\\")) else text


def _index_number(value: Any) -> float | None:
    import math

    return None if value is None or not math.isfinite(float(value)) else float(value)


def _index_record(row: Mapping[str, Any]) -> list[Any]:
    """One index row as the JSON list the page script reads (``INDEX_FIELDS``)."""
    prediction = row["prediction"]
    return [
        row["index"],
        str(row["id"]),
        _index_href(row["page"]),
        prediction["text"],
        _index_number(prediction["score"]),
        row["label"],
        prediction["correct"],
        [_shown(str(word[0])) for word in row["top_words"]],
        _index_number(row["mean_entropy"]),
        _index_number(row["mean_special_share"]),
        _index_number(row["comprehensiveness_margin"]),
        bool(row["truncated"]),
        row["original_length"],
    ]


def index_page(header: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """Render ``index.html`` from the run summary header and the short per-example rows.

    The examples table holds the first ``INDEX_PAGE_ROWS`` rows as HTML; every row is in one
    ``<script type="application/json">`` block (escaped by ``htmlsafe_json_dumps``: no ``<``, ``>``, ``&``
    or ``'`` in it) that the page's script pages, sorts and filters, so the page stays light for big runs.
    """
    from jinja2.utils import htmlsafe_json_dumps

    data = htmlsafe_json_dumps(
        {"fields": INDEX_FIELDS, "rows": [_index_record(row) for row in rows]},
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    first = [{**row, "page": _index_href(row["page"])} for row in rows[:INDEX_PAGE_ROWS]]
    return render_template(
        "index.html.j2",
        summary=header,
        rows=first,
        total=len(rows),
        page_rows=INDEX_PAGE_ROWS,
        notes_column=any(row["truncated"] for row in rows),
        examples_data=data,
        run=header["run"],
    )


class HtmlRenderer:
    name = "html"
    description = "examples/<id>.html per example and index.html (self-contained, no network)"
    needs_figures: frozenset[str] = frozenset()  # the page draws its own heatmaps; it embeds no PNG file
    needs = DRAWN_VIEWS

    def write_example(
        self, report: ExampleReport, figures: Mapping[str, bytes], out: Path, run: Mapping[str, Any]
    ) -> None:
        write_text(out / "examples" / f"{report.page}.html", example_page(report, run))

    def write_run(self, summary: RunDocument, out: Path) -> None:
        write_text(out / "index.html", index_page(summary.header, summary.rows))


register_renderer(HtmlRenderer())
