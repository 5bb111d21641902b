"""The machine-readable summary: one entry per example plus run metadata (schema in summary.schema.json)."""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.analysis.pipeline import ExampleReport
from attnviz.output.folder import replacing
from attnviz.types import SkippedRecord

if TYPE_CHECKING:
    from attnviz.output.check import CheckResult

SCHEMA_VERSION = "1.0"
DIGITS = 6


def json_number(value: float | None) -> float | None:
    """A number as summary.json holds it: rounded to ``DIGITS``, and None where it is not finite (a rank correlation
    over one token, say), so the file stays valid JSON. The one place non-finite numbers are turned into null."""
    return None if value is None or not math.isfinite(float(value)) else round(float(value), DIGITS)


def _matrix(values: np.ndarray) -> list[list[float]]:
    return [[json_number(v) for v in row] for row in values]


def versions() -> dict[str, str]:
    import importlib.metadata as md

    found = {}
    for package in ("attnviz", "torch", "transformers", "numpy"):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            found[package] = "unknown"
    found["python"] = platform.python_version()
    return found


def page_path(page: str) -> str:
    """Where an example's page is, relative to the report folder, from its page name (``page_name`` of its id)."""
    return f"examples/{page}.html"


def example_summary(report: ExampleReport) -> dict[str, Any]:
    """Per-example entry: tokens, prediction, top words and per-head diagnostics."""
    capture = report.capture
    example = capture.example
    prediction = capture.prediction
    correct = None
    if example.label is not None and prediction.probabilities:
        correct = example.label == prediction.text
    scores: dict[str, Any] = {}
    for ts in report.token_scores:
        scores[ts.method] = {
            "label": ts.label,
            "stage": ts.stage_labels[ts.default_stage],
            "sequence": ts.sequence,
            "tokens": [json_number(v) for v in ts.at()],
            "words": [json_number(v) for v in report.word_scores(ts)],
            "top_words": [[w, json_number(s)] for w, s in report.top_words(ts, 3)],
            "rows": [
                {
                    "row": v["row"],
                    "top_words": [[w, json_number(s)] for w, s in v["top"]],
                    "first_token": json_number(v["first_token"]),
                }
                for v in report.row_views(ts)
            ],
        }
    heads: dict[str, dict[str, Any]] = {}
    for metric in report.head_metrics:
        heads.setdefault(metric.attention, {})[metric.name] = _matrix(metric.values)
    main = capture.explained.attention
    entropy = report.head_metric("entropy", main)
    special = report.head_metric("special_share", main)
    return {
        "id": example.id,
        "index": report.index,
        "page": page_path(report.page),
        "source": example.source,
        "label": example.label,
        "prediction": {
            "text": prediction.text,
            "score": None if prediction.score is None else json_number(prediction.score),
            "probabilities": {k: json_number(v) for k, v in prediction.probabilities.items()},
            "correct": correct,
            "details": _plain(prediction.details),
        },
        "truncated": capture.truncated,
        "original_length": capture.original_length,
        "sequences": {
            name: {"tokens": list(seq.tokens), "words": list(seq.words), "special": list(seq.special)}
            for name, seq in capture.sequences.items()
        },
        "explained": list(capture.explained.labels),
        "scores": scores,
        "heads": heads,
        "flags": {name: [[layer + 1, head + 1] for layer, head in pairs] for name, pairs in report.flags.items()},
        "metrics": {name: json_number(value) for name, value in report.scalars.items()},
        "messages": report.messages,
        "method_correlations": [
            {"a": a, "b": b, "spearman": None if np.isnan(rho) else json_number(rho)}
            for a, b, rho in report.method_correlations()
        ],
        "explained_attention": main,
        "mean_entropy": None if entropy is None else json_number(entropy.values.mean()),
        "mean_special_share": None if special is None else json_number(special.values.mean()),
    }


def _plain(value: Any) -> Any:
    """Task details as JSON-ready values with floats rounded like everything else."""
    if isinstance(value, float):
        return json_number(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def skipped_summary(record: SkippedRecord) -> dict[str, Any]:
    return {"source": record.source, "field": record.field, "reason": record.reason, "index": record.index}


def run_header(
    run: Mapping[str, Any],
    dataset: Mapping[str, Any],
    skipped: Sequence[Mapping[str, Any]],
    *,
    status: str,
    error: str | None = None,
    timing: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """summary.json without its example entries (``examples`` is filled from the spool when written).

    ``timing`` is the only field that varies between identical runs.
    """
    metrics = dataset["metrics"]
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "render",
        "status": status,
        "error": error,
        "run": dict(run),
        "counts": {"examples": metrics["examples"], "skipped": len(skipped), "truncated": metrics["truncated"]},
        "dataset": dict(dataset),
        "examples": None,
        "skipped": list(skipped),
        "timing": dict(timing or {}),
    }


@dataclass
class RunDocument:
    """A finished run: the summary header, its example entries (one JSON line each in a spool file, so
    memory does not grow with the run), one short row per example for the index, and the outcome of the
    run's thresholds (``--min``/``--max``) for summary.md, if any."""

    header: dict[str, Any]
    spool: Path
    rows: list[dict[str, Any]]
    check: CheckResult | None = None

    def examples(self) -> Iterator[dict[str, Any]]:
        with self.spool.open(encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)

    def as_dict(self) -> dict[str, Any]:
        """The whole summary.json document in memory (for library callers and tests)."""
        return {**self.header, "examples": list(self.examples())}

    def write_json(self, path: Path) -> None:
        """Stream summary.json: the header indented, then one example entry per line."""
        with replacing(path) as tmp, tmp.open("w", encoding="utf-8") as out:
            out.write("{\n")
            items = list(self.header.items())
            for i, (key, value) in enumerate(items):
                out.write(f" {json.dumps(key)}: ")
                if key == "examples":
                    out.write("[")
                    for j, entry in enumerate(self.examples()):
                        out.write(("," if j else "") + "\n  " + json.dumps(entry, ensure_ascii=False, allow_nan=False))
                    out.write("\n ]")
                else:
                    out.write(json.dumps(value, indent=1, ensure_ascii=False, allow_nan=False).replace("\n", "\n "))
                out.write(",\n" if i < len(items) - 1 else "\n")
            out.write("}\n")
