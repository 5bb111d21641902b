"""HTML pages from Jinja templates (autoescape on): one page per example and the run index."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from attnviz.analysis import TokenScores
from attnviz.analysis.pipeline import ExampleReport
from attnviz.output.base import (
    DRAWN_VIEWS,
    HEAD_GRID_MAX_TOKENS,
    HEATMAP_MAX_TOKENS,
    drawable,
    register_renderer,
    write_text,
)
from attnviz.output.colors import PALETTE, hex_colour, normalize, text_colour
from attnviz.output.summary import RunDocument
from attnviz.types import FULL, HEAD_MEAN, AttentionViews, TokenSeq

# Above this many numbers the page embeds only head means (the full tensor would bloat the page).
MAX_EMBEDDED_WEIGHTS = 250_000
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
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
    env.filters["heat"] = lambda v: hex_colour(float(v or 0.0))
    env.filters["heat_text"] = lambda v: text_colour(float(v or 0.0))
    env.filters["fmt"] = lambda value, digits=3: "–" if value is None or value != value else f"{value:.{digits}f}"
    return env


def render_template(name: str, **context: Any) -> str:
    return str(environment().get_template(name).render(**context))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cell(value: float, vmax: float | None) -> dict[str, Any]:
    level = float(normalize(np.array([value]), vmax)[0])
    return {"value": float(value), "bg": hex_colour(level), "fg": text_colour(level)}


def token_units(report: ExampleReport, seq: TokenSeq, scores: TokenScores, stage: int) -> dict[str, list]:
    """Word view (sub-words merged) and token view of one method at one stage, with colours."""
    token_values = scores.at(stage)
    word_values = report.word_scores(scores, stage)
    vmax_tokens = float(token_values[~seq.special_mask].max()) if (~seq.special_mask).any() else None
    vmax_words = float(word_values.max()) if len(word_values) else None
    words, tokens, seen = [], [], set()
    for i, text in enumerate(seq.tokens):
        tokens.append(
            {
                "text": text,
                "special": seq.special[i],
                "segment": seq.segments[i],
                **_cell(token_values[i], vmax_tokens if not seq.special[i] else None),
            }
        )
        w = seq.word_ids[i]
        if w is None:
            words.append(
                {
                    "text": text,
                    "special": True,
                    "segment": seq.segments[i],
                    "value": float(token_values[i]),
                    "bg": "#eeeeee",
                    "fg": "#555555",
                }
            )
        elif w not in seen:
            seen.add(w)
            words.append(
                {
                    "text": seq.words[w],
                    "special": False,
                    "segment": seq.segments[i],
                    **_cell(word_values[w], vmax_words),
                }
            )
    return {"words": words, "tokens": tokens}


def _levels(values: np.ndarray, special: np.ndarray | None) -> list[float]:
    mask = ~special if special is not None else np.ones(len(values), dtype=bool)
    vmax = float(values[mask].max()) if mask.any() else None
    return [round(float(v), 4) for v in normalize(values, vmax)]


def _special_mass(values: np.ndarray, seq: TokenSeq) -> float | None:
    """Share of a score row held by special tokens (reported when they are hidden)."""
    total = float(np.abs(values).sum())
    return float(np.abs(values[seq.special_mask]).sum()) / total if total > 0 else None


def method_views(report: ExampleReport) -> list[dict[str, Any]]:
    """Per method: the default-stage view for the page, and every stage's levels for the script."""
    views = []
    for scores in report.token_scores:
        seq = report.capture.sequences[scores.sequence]
        stages = []
        for s in range(len(scores.stage_labels)):
            word_values = report.word_scores(scores, s)
            stages.append(
                {
                    "tokens": _levels(scores.at(s), seq.special_mask),
                    "words": _levels(word_values, None),
                    "token_values": [round(float(v), 4) for v in scores.at(s)],
                    "word_values": [round(float(v), 4) for v in word_values],
                }
            )
        views.append(
            {
                "method": scores.method,
                "label": scores.label,
                "note": scores.note,
                "stage_labels": list(scores.stage_labels),
                "default_stage": scores.default_stage,
                "units": token_units(report, seq, scores, scores.default_stage),
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
    ("auprc", "rationale AUPRC"),
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
        "ig_total": scalars.get("ig_total"),
    }


def task_panel(report: ExampleReport) -> dict[str, Any] | None:
    """What only this task shows: the answer span in its context (qa); prompt or source and output."""
    capture = report.capture
    details = capture.prediction.details
    if capture.task == "qa":
        context = capture.example.fields["context"]
        start, end = details["char_start"], details["char_end"]
        return {
            "kind": "qa",
            "question": capture.example.fields["question"],
            "before": context[:start],
            "answer": context[start:end],
            "after": context[end:],
        }
    if capture.task in ("lm", "seq2seq"):
        return {
            "kind": capture.task,
            "generated": details.get("generated", False),
            "source": capture.example.get("source") or capture.example.get("text"),
        }
    return None


def heatmap_table(att: AttentionViews, layer: int, rows: TokenSeq, cols: TokenSeq) -> dict[str, Any]:
    """The head-mean matrix of one layer as table cells (the script redraws other layers/heads)."""
    matrix = att.view(HEAD_MEAN)[layer]
    vmax = float(matrix.max()) or 1.0
    return {
        "rows": list(rows.tokens),
        "cols": list(cols.tokens),
        "row_breaks": rows.segment_starts,
        "col_breaks": cols.segment_starts,
        "cells": [[_cell(v, vmax) for v in row] for row in matrix],
        "layer": layer,
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


def attention_payload(att: AttentionViews) -> dict[str, Any]:
    """Numbers the script needs to redraw the heatmap: every head when small enough, else head means."""
    full = att.full is not None and att.full.size <= MAX_EMBEDDED_WEIGHTS
    weights = att.full if full else att.view(HEAD_MEAN)[:, None]
    return {"kind": att.kind, "full": full, "weights": np.round(weights.astype(np.float64), 4).tolist()}


def metric_tables(report: ExampleReport, kind: str) -> list[dict[str, Any]]:
    tables = []
    for metric in report.head_metrics:
        if metric.attention != kind:
            continue
        tables.append(
            {
                "name": metric.name,
                "label": metric.label,
                "note": metric.note,
                "rows": [[_cell(v, metric.vmax) for v in row] for row in metric.values],
                "heads": metric.values.shape[1],
            }
        )
    return tables


def example_page(report: ExampleReport, figures: Mapping[str, bytes], run: Mapping[str, Any]) -> str:
    """Render ``examples/<page>.html``."""
    from attnviz.output.png import figure_name

    capture = report.capture
    attentions = []
    # The attention the explanation is read from comes first (cross-attention for seq2seq).
    ordered = sorted(capture.attentions.values(), key=lambda a: a.kind != capture.explained.attention)
    for att in ordered:
        rows = capture.sequences[att.query]
        cols = capture.sequences[att.key]
        grids = [
            {"layer": layer + 1, "src": data_uri(figures[name])}
            for layer in range(att.num_layers)
            if (name := figure_name("heads", att.kind, f"layer{layer + 1}")) in figures
        ]
        metric_pngs = {
            m.name: data_uri(figures[n])
            for m in report.head_metrics
            if m.attention == att.kind and (n := figure_name(m.name, att.kind)) in figures
        }
        attentions.append(
            {
                "kind": att.kind,
                "layers": att.num_layers,
                "heads": att.num_heads,
                "query": att.query,
                "key": att.key,
                "causal": att.causal,
                "table": heatmap_table(att, att.num_layers - 1, rows, cols) if drawable(att) else None,
                "payload": attention_payload(att) if drawable(att) else None,
                "limits": view_limits(att),
                "grids": grids,
                "metrics": metric_tables(report, att.kind),
                "metric_pngs": metric_pngs,
            }
        )
    bars = {
        ts.method: data_uri(figures[n])
        for ts in report.token_scores
        if (n := figure_name("scores", ts.method)) in figures
    }
    prediction = capture.prediction
    return render_template(
        "example.html.j2",
        run=run,
        example=capture.example,
        task=capture.task,
        prediction=prediction,
        probabilities=sorted(prediction.probabilities.items(), key=lambda kv: -kv[1]),
        explained=capture.explained.labels,
        panel=task_panel(report),
        trust=trust_panel(report),
        messages=report.messages,
        correlations=report.method_correlations(),
        flags=report.flags,
        truncated=capture.truncated,
        original_length=capture.original_length,
        lengths={name: len(seq) for name, seq in capture.sequences.items()},
        methods=method_views(report),
        bars=bars,
        attentions=attentions,
        word_merge=report.word_merge,
        special_count=sum(sum(seq.special) for seq in capture.sequences.values()),
    )


def index_page(header: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """Render ``index.html`` from the run summary header and the short per-example rows."""
    return render_template("index.html.j2", summary=header, rows=rows, run=header["run"])


class HtmlRenderer:
    name = "html"
    description = "examples/<id>.html per example and index.html (self-contained, no network)"
    needs_figures = frozenset({"heads", "scores"})  # maps and the mean heatmap are HTML tables here
    needs = DRAWN_VIEWS

    def write_example(
        self, report: ExampleReport, figures: Mapping[str, bytes], out: Path, run: Mapping[str, Any]
    ) -> None:
        write_text(out / "examples" / f"{report.page}.html", example_page(report, figures, run))

    def write_run(self, summary: RunDocument, out: Path) -> None:
        write_text(out / "index.html", index_page(summary.header, summary.rows))


register_renderer(HtmlRenderer())
