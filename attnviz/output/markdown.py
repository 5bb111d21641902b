"""summary.md: a short Markdown summary of a run, sized for a pull-request comment.

Tokens, ids, labels and predictions are untrusted text. Markdown passes raw HTML through and treats
many characters as syntax, so every such value goes through the ``md`` filter, which backslash-escapes
the significant characters and turns line breaks into spaces: a token cannot add HTML, a link, a
heading or a table cell. The template environment is separate from the HTML one (autoescape off:
HTML escaping is the wrong escaping for Markdown).
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnviz.analysis.pipeline import ExampleReport
from attnviz.output.base import write_text
from attnviz.output.check import CheckResult, format_number
from attnviz.output.html import templates_dir
from attnviz.output.terminal import visible
from attnviz.types import Needs

if TYPE_CHECKING:
    from jinja2 import Environment

    from attnviz.output.summary import RunDocument

WORST_EXAMPLES = 5
MAX_TEXT = 60
# Markdown/HTML-significant ASCII characters; CommonMark lets a backslash escape any ASCII punctuation.
_SIGNIFICANT = re.compile(r"([\\`*_\[\]<>|#~&])")
_LINE_BREAKS = re.compile(r"[\r\n\v\f\u0085\u2028\u2029]+")
# Where GitHub would make a link of plain text: after a URL scheme's ":" (autolinked http://, https://, ftp://),
# inside "www." (autolinked domains), after "@" (mentions and e-mail addresses) and "#" (issue references). A word
# joiner (U+2060, invisible) there breaks the pattern and leaves the text as it reads.
_AUTOLINK_POINTS = re.compile(r"(?i)(?<=:)(?=//)|(?<=www)(?=\.)|(?<=[@#])")
# Scores that measure the prediction's confidence, so the lowest ones are the first to look at.
KEY_METRICS = (
    ("accuracy", "accuracy"),
    ("mean_entropy", "mean head entropy"),
    ("diffuse_head_share", "diffuse head share"),
    ("sink_head_share", "sink-bound head share"),
)
FAITHFULNESS_COLUMNS = (
    ("comprehensiveness", "comprehensiveness ↑"),
    ("sufficiency", "sufficiency ↓"),
    ("comprehensiveness_margin", "margin over random ↑"),
    ("agreement_ig", "τ vs IG"),
    ("plausibility_f1", "rationale F1"),
)


def md_escape(value: Any) -> str:
    """Untrusted text as literal Markdown text on one line.

    Backslash-escapes ``\\ ` * _ [ ] < > | # ~ &`` (``<`` stops raw HTML, ``|`` a new table cell, ``[`` a
    link or image, ``&`` an entity) and turns line breaks into spaces. A word joiner goes where GitHub would
    autolink plain text (``http://``, ``www.``, ``@someone``, ``#123``, ``a@b.example``), so posted as a comment
    it links, mentions and notifies no one. Control and bidirectional-override characters are shown as escapes
    (``\\x1b``), as on the terminal: ``cat summary.md`` must not run them, nor a comment reorder a line.
    """
    text = _LINE_BREAKS.sub(" ", "" if value is None else str(value))
    return visible(_AUTOLINK_POINTS.sub("\u2060", _SIGNIFICANT.sub(r"\\\1", text)))


def shorten(text: str, limit: int = MAX_TEXT) -> str:
    """Cut long text (generated continuations, long ids) so a table row stays one screen wide."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value: Any, digits: int = 3) -> str:
    """A metric for display: ``–`` when missing, integers as integers, else ``digits`` decimals."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _with_spread(mean: Any, spread: Any) -> str:
    return number(mean) if spread is None or mean is None else f"{number(mean)} ± {number(spread)}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = lambda value, limit=MAX_TEXT: md_escape(shorten(str(value), limit))
    return env


def _methods(document: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[str]:
    """Methods with faithfulness numbers: the run's order first, then any others by name."""
    families = {key for key, _ in FAITHFULNESS_COLUMNS}
    scored = {name.split(".", 1)[1] for name in metrics if name.split(".", 1)[0] in families and "." in name}
    ordered = [m for m in document.get("run", {}).get("options", {}).get("methods", []) if m in scored]
    return ordered + sorted(scored - set(ordered))


def _faithfulness(
    document: Mapping[str, Any], metrics: Mapping[str, Any], spread: Mapping[str, Any]
) -> dict[str, Any] | None:
    methods = _methods(document, metrics)
    columns = [(key, label) for key, label in FAITHFULNESS_COLUMNS if any(f"{key}.{m}" in metrics for m in methods)]
    if not columns:
        return None
    rows = [
        {
            "method": method,
            "cells": [
                _with_spread(metrics.get(f"{key}.{method}"), spread.get(f"{key}.{method}")) for key, _ in columns
            ],
        }
        for method in methods
    ]
    return {"columns": [label for _, label in columns], "rows": rows}


def _count(n: int, noun: str) -> str:
    return f"1 {noun} was" if n == 1 else f"{n} {noun}s were"


def _flags(document: Mapping[str, Any], metrics: Mapping[str, Any], methods: Sequence[str]) -> list[str]:
    """Things a reviewer should know before trusting the numbers, as plain sentences."""
    flags = []
    if document.get("status") == "failed":
        flags.append(f"The run stopped early: {document.get('error') or 'unknown error'}.")
    counts = document.get("counts", {})
    if counts.get("skipped"):
        flags.append(f"{_count(counts['skipped'], 'input line')} skipped (listed in summary.json).")
    if counts.get("truncated"):
        max_length = document.get("run", {}).get("options", {}).get("max_length")
        at = f" at {max_length} tokens" if max_length else ""
        flags.append(f"{_count(counts['truncated'], 'example')} truncated{at}.")
    weak = (document.get("dataset") or {}).get("not_clearly_above_random")
    if weak is None:  # documents from before the field existed: the mean alone
        weak = [
            method
            for method in methods
            if isinstance(margin := metrics.get(f"comprehensiveness_margin.{method}"), (int, float)) and margin <= 0
        ]
    if weak:
        # One line for all of them keeps the comment short however many methods ran; the index and the terminal
        # read the same list.
        flags.append(
            "Not clearly above random at comprehensiveness (the 95 % interval of the margin over random orders "
            f"includes 0): {', '.join(str(method) for method in weak)}."
        )
    return flags


def _min_spearman(entry: Mapping[str, Any]) -> float | None:
    """The lowest rank correlation between two methods on this example (None without two methods)."""
    pairs = [c for c in entry.get("method_correlations") or [] if isinstance(c, Mapping)]
    rhos = [float(c["spearman"]) for c in pairs if isinstance(c.get("spearman"), (int, float))]
    return min(rhos) if rhos else None


def _worst(examples: Iterable[Mapping[str, Any]], by_score: bool, primary: Any) -> dict[str, Any]:
    """The examples to look at first: wrong predictions, then (when the task's score is a confidence) the least
    confident, then the lowest agreement between methods. Streams ``examples`` once, keeping only the few it shows."""

    def key(entry: Mapping[str, Any]) -> tuple[bool, float, float, int]:
        prediction = entry.get("prediction") or {}
        score = prediction.get("score")
        agreement = _min_spearman(entry)
        return (
            prediction.get("correct") is not False,
            score if by_score and isinstance(score, (int, float)) else math.inf,
            math.inf if agreement is None else agreement,
            entry.get("index", 0),
        )

    rows = []
    for entry in heapq.nsmallest(WORST_EXAMPLES, examples, key=key):
        prediction = entry.get("prediction") or {}
        scores = entry.get("scores") or {}
        scored: Mapping[str, Any] = scores.get(primary) or next(iter(scores.values()), {})
        correct = prediction.get("correct")
        rows.append(
            {
                "id": entry.get("id", ""),
                "prediction": prediction.get("text") or "",
                "score": number(prediction.get("score")),
                "gold": "" if entry.get("label") is None else entry["label"],
                "mark": "✗" if correct is False else ("✓" if correct else ""),
                "top_words": ", ".join(str(w[0]) for w in scored.get("top_words") or [] if w),
                "agreement": number(_min_spearman(entry)),
            }
        )
    order = "wrong predictions first, then lowest prediction score" if by_score else "lowest agreement between methods"
    return {"rows": rows, "order": order, "method": primary}


def _sample_note(run: Mapping[str, Any], dataset: Mapping[str, Any]) -> str | None:
    """A sentence when the trust checks ran on a sample: on how many, and that thresholds use the estimate."""
    sample = (run.get("options") or {}).get("trust_sample") or {}
    if not isinstance(sample, Mapping) or not sample.get("sampled"):
        return None
    measured = (dataset.get("counts") or {}).get("comprehensiveness_margin")
    return (
        f"Trust checks ran on a seeded random sample of {sample.get('size')} of {sample.get('records')} input records"
        f"{'' if measured is None else f' ({measured} measured)'}: faithfulness and agreement numbers are sample "
        "estimates (95 % t-intervals in summary.json), and thresholds on them check the estimate."
    )


def summary_markdown(document: Mapping[str, Any], check: CheckResult | None = None) -> str:
    """A PR-comment-sized Markdown summary of a summary.json document (about 60 lines at most).

    Args:
        document: the summary.json document; ``examples`` may be any iterable (it is read once), so a
            streamed run can pass a generator.
        check: thresholds from ``attnviz check`` to report with pass/fail, if any.

    Returns:
        Markdown text ending in a newline.
    """
    run = document.get("run") or {}
    dataset = document.get("dataset") or {}
    metrics = dataset.get("metrics") or {}
    spread = dataset.get("spread") or {}
    counts = document.get("counts") or {}
    faithfulness = _faithfulness(document, metrics, spread)
    key_rows = [(label, name, _with_spread(metrics.get(name), spread.get(name))) for name, label in KEY_METRICS]
    context = {
        "model": run.get("model", ""),
        "revision": run.get("revision"),
        "task": run.get("task", ""),
        "inputs": ", ".join(str(i) for i in run.get("inputs") or []),
        "methods": ", ".join(str(m) for m in (run.get("options") or {}).get("methods") or []),
        "counts": {name: counts.get(name, 0) for name in ("examples", "skipped", "truncated")},
        "status": document.get("status", ""),
        "key_rows": [row for row in key_rows if row[1] in metrics],
        "faithfulness": faithfulness,
        "sample": _sample_note(run, dataset),
        "flags": _flags(document, metrics, _methods(document, metrics)),
        "worst": _worst(
            document.get("examples") or [],
            # Documents from before the field existed: every task but encode scored a confidence.
            bool(run.get("score_is_confidence", True)),
            dataset.get("headline_method") or dataset.get("primary_method"),
        ),
        "disagreements": [
            (d.get("id", ""), number(d.get("min_spearman")))
            for d in dataset.get("disagreements") or []
            if isinstance(d, Mapping)
        ][:WORST_EXAMPLES],
        "check": check,
        "format_number": format_number,
    }
    return environment().get_template("summary.md.j2").render(**context)


class MarkdownRenderer:
    """Writes ``summary.md`` at the end of the run (nothing per example)."""

    name = "markdown"
    description = "summary.md: a short Markdown summary for a pull-request comment"
    needs_figures: frozenset[str] = frozenset()
    needs = Needs()

    def write_example(
        self, report: ExampleReport, figures: Mapping[str, bytes], out: Path, run: Mapping[str, Any]
    ) -> None:
        """Everything goes into summary.md at the end of the run."""

    def write_run(self, summary: RunDocument, out: Path) -> None:
        document = {**summary.header, "examples": summary.examples()}
        write_text(out / "summary.md", summary_markdown(document, summary.check))
